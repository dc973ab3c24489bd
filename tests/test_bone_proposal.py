"""Bone maps proposed from names and hierarchy for skeletons no preset knows (pure python, hand-written oracles)."""

from __future__ import annotations

import pytest
from rig_builders import MIXAMO

from shared.motion.bone_proposal import parse_name, propose_bone_map
from shared.motion.skeleton import JOINT_NAMES, PARENTS


def _chain(names: tuple[str, ...], extra: dict[str, str | None] | None = None) -> dict[str, str | None]:
    """{bone: parent} of a skeleton with SMPL's hierarchy under these names, plus extra bones."""
    parents = {n: (names[PARENTS[j]] if PARENTS[j] >= 0 else None) for j, n in enumerate(names)}
    parents.update(extra or {})
    return parents


@pytest.mark.parametrize(
    ("name", "side", "tokens"),
    [
        ("mixamorig1:LeftUpLeg", "L", ("up", "leg")),
        ("thigh.L", "L", ("thigh",)),
        ("hand.R.001", "R", ("hand",)),
        ("calf_r", "R", ("calf",)),
        ("L_Clavicle", "L", ("clavicle",)),
        ("Bip01 R Forearm", "R", ("forearm",)),
        ("upperarm_twist_01_l", "L", ("upperarm", "twist")),
        ("lShin", "L", ("shin",)),
        ("Spine2", "", ("spine",)),
    ],
)
def test_names_are_cut_into_side_and_tokens(name, side, tokens) -> None:
    parsed = parse_name(name)
    assert (parsed.side, parsed.tokens) == (side, tokens)


def test_mixamo_names_with_a_prefix_and_fingers() -> None:
    names = tuple(f"mixamorig1:{n}" for n in MIXAMO)
    extra = {"mixamorig1:LeftHandIndex1": "mixamorig1:LeftHand", "mixamorig1:HeadTop_End": "mixamorig1:Head"}
    proposal = propose_bone_map(list(_chain(names, extra)), _chain(names, extra))
    assert proposal.complete and proposal.bones == names  # LeftShoulder is the collar, LeftArm the upper arm


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
    proposal = propose_bone_map(list(parents), parents)
    want = dict(zip(JOINT_NAMES, proposal.bones, strict=True))
    assert want["spine1"] == "spine_01" and want["spine2"] == "spine_03" and want["spine3"] == "spine_05"
    assert want["left_hip"] == "thigh_l" and want["right_knee"] == "calf_r" and want["left_foot"] == "ball_l"
    assert want["left_shoulder"] == "upperarm_l" and want["right_elbow"] == "lowerarm_r"  # not the twist bones
    assert want["neck"] == "neck_01" and want["head"] == "head" and proposal.complete


def test_3ds_max_biped_names_and_hierarchy() -> None:
    b = "Bip01 "
    parents = {b + "Pelvis": None, b + "Spine": b + "Pelvis", b + "Spine1": b + "Spine", b + "Spine2": b + "Spine1",
               b + "Neck": b + "Spine2", b + "Head": b + "Neck"}  # fmt: skip
    for s in ("L", "R"):  # Biped hangs the thighs off the spine and the clavicles off the neck
        parents |= {f"{b}{s} Thigh": b + "Spine", f"{b}{s} Calf": f"{b}{s} Thigh", f"{b}{s} Foot": f"{b}{s} Calf",
                    f"{b}{s} Toe0": f"{b}{s} Foot", f"{b}{s} Clavicle": b + "Neck",
                    f"{b}{s} UpperArm": f"{b}{s} Clavicle", f"{b}{s} Forearm": f"{b}{s} UpperArm",
                    f"{b}{s} Hand": f"{b}{s} Forearm"}  # fmt: skip
    proposal = propose_bone_map(list(parents), [parents[n] for n in parents])
    assert proposal.complete
    got = dict(zip(JOINT_NAMES, proposal.bones, strict=True))
    assert got["pelvis"] == "Bip01 Pelvis" and got["spine3"] == "Bip01 Spine2" and got["right_foot"] == "Bip01 R Toe0"
    assert got["left_collar"] == "Bip01 L Clavicle" and got["left_wrist"] == "Bip01 L Hand"


def test_mixed_conventions_and_synonyms() -> None:
    names = ("Hips", "L_upperleg", "R_upperleg", "Abdomen", "L_lowerleg", "R_lowerleg", "Chest", "L_ankle",
             "R_ankle", "UpperChest", "L_ball", "R_ball", "Neck", "L_collar", "R_collar", "Head", "L_humerus",
             "R_humerus", "L_elbow", "R_elbow", "L_wrist", "R_wrist")  # fmt: skip
    proposal = propose_bone_map(list(_chain(names)), _chain(names))
    assert proposal.complete and proposal.bones == names


def test_unrecognisable_names_leave_joints_empty_with_reasons() -> None:
    names = tuple(f"bone{j:02d}" for j in range(22))
    proposal = propose_bone_map(list(_chain(names)), _chain(names))
    assert not proposal.complete
    assert "left_hip" in proposal.missing and "thigh" in proposal.reasons[JOINT_NAMES.index("left_hip")]
    with pytest.raises(ValueError, match="proposal incomplete"):
        proposal.bone_map()
