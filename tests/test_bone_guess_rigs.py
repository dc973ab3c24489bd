"""`bone_guess.propose_bone_map` on the armatures animators bring (Mixamo, Unreal with twist bones, mixed
conventions): the draft the add-on's Bone Mapping panel proposes, against hand-written oracles."""

from __future__ import annotations

from rig_builders import MIXAMO

from shared.motion.bone_guess import propose_bone_map
from shared.motion.skeleton import JOINT_NAMES, PARENTS


def _chain(names: tuple[str, ...], extra: dict[str, str | None] | None = None) -> dict[str, str | None]:
    """{bone: parent} of a skeleton with SMPL's hierarchy under these names, plus extra bones."""
    parents = {n: (names[PARENTS[j]] if PARENTS[j] >= 0 else None) for j, n in enumerate(names)}
    parents.update(extra or {})
    return parents


def _propose(parents: dict[str, str | None]) -> tuple[str | None, ...]:
    """The proposal as one bone per SMPL joint (None: not found, or not a joint of its own)."""
    names = list(parents)
    index = [names.index(parents[n]) if parents[n] is not None else -1 for n in names]
    sources = propose_bone_map(names, index).sources
    return tuple(s.bones[0] if s is not None and s.kind == "joint" else None for s in sources)


def test_mixamo_names_with_a_prefix_and_fingers() -> None:
    names = tuple(f"mixamorig1:{n}" for n in MIXAMO)
    extra = {"mixamorig1:LeftHandIndex1": "mixamorig1:LeftHand", "mixamorig1:HeadTop_End": "mixamorig1:Head"}
    assert _propose(_chain(names, extra)) == names  # LeftShoulder is the collar, LeftArm the upper arm


def test_unreal_names_with_twist_bones_and_five_spine_bones() -> None:
    parents = {"root": None, "pelvis": "root", "spine_01": "pelvis", "spine_02": "spine_01", "spine_03": "spine_02",
               "spine_04": "spine_03", "spine_05": "spine_04", "neck_01": "spine_05", "neck_02": "neck_01",
               "head": "neck_02"}  # fmt: skip
    for s in ("l", "r"):
        parents |= {f"thigh_{s}": "pelvis", f"thigh_twist_01_{s}": f"thigh_{s}", f"calf_{s}": f"thigh_{s}",
                    f"calf_twist_01_{s}": f"calf_{s}", f"foot_{s}": f"calf_{s}", f"ball_{s}": f"foot_{s}",
                    f"clavicle_{s}": "spine_05", f"upperarm_{s}": f"clavicle_{s}",
                    f"upperarm_twist_01_{s}": f"upperarm_{s}", f"lowerarm_{s}": f"upperarm_{s}",
                    f"lowerarm_twist_01_{s}": f"lowerarm_{s}", f"hand_{s}": f"lowerarm_{s}",
                    f"index_01_{s}": f"hand_{s}", f"ik_foot_{s}": "root"}  # fmt: skip
    want = dict(zip(JOINT_NAMES, _propose(parents), strict=True))
    assert want["spine1"] == "spine_01" and want["spine2"] == "spine_03" and want["spine3"] == "spine_05"
    assert want["left_hip"] == "thigh_l" and want["right_knee"] == "calf_r" and want["left_foot"] == "ball_l"
    assert want["left_shoulder"] == "upperarm_l" and want["right_elbow"] == "lowerarm_r"  # not the twist bones
    assert want["neck"] == "neck_01" and want["head"] == "head" and None not in want.values()


def test_mixed_conventions_and_synonyms() -> None:
    names = ("Hips", "L_upperleg", "R_upperleg", "Abdomen", "L_lowerleg", "R_lowerleg", "Chest", "L_ankle",
             "R_ankle", "UpperChest", "L_ball", "R_ball", "Neck", "L_collar", "R_collar", "Head", "L_humerus",
             "R_humerus", "L_elbow", "R_elbow", "L_wrist", "R_wrist")  # fmt: skip
    assert _propose(_chain(names)) == names


def test_unrecognisable_names_leave_the_joints_open() -> None:
    names = tuple(f"bone{j:02d}" for j in range(22))
    assert _propose(_chain(names)) == (None,) * 22
