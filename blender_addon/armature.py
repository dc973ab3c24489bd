"""The SMPL-22 armature: HumanML3D rest skeleton (T-pose, metres, Z-up, facing −Y) with SMPL joint names and parents."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import bpy
import numpy as np
from mathutils import Vector

from ._shared import (
    BoneMap,
    BoneMapError,
    RigMatch,
    axes,
    bundled_presets,
    describe_unmapped,
    detect_rig_map,
    match_preset,
    parse_bone_map,
    propose_bone_map,
    retarget,
    skeleton,
)
from .action_io import armature_data, current_scene, pose_bones
from .rig_math import RigTarget, rig_target

PROP_BONE_MAP = "motiongpt3_bone_map"  # on the Armature data: the JSON of a mapping chosen in the mapping editor

JOINT_NAMES = list(skeleton.JOINT_NAMES)
LEAF_LENGTH = 0.08  # metres: tail length of bones without a child (feet, head, wrists)


def rest_heads() -> np.ndarray:
    """(22, 3) rest joint positions in Blender axes: `TPOSE_OFFSETS` accumulated, lowest joint on the ground."""
    joints = skeleton.tpose_joints()
    joints[:, 1] -= joints[:, 1].min()
    return axes.yup_to_zup(joints)


def rest_tails(heads: np.ndarray) -> np.ndarray:
    """(22, 3) tails: the main child's head (pelvis → spine1, spine3 → neck); leaves continue their parent bone."""
    main_child = {0: 3, 9: 12}
    tails = np.empty_like(heads)
    for j in range(skeleton.NUM_JOINTS):
        children = skeleton.children_of(j)
        if children:
            tails[j] = heads[main_child.get(j, children[0])]
        elif j == 15:  # head: straight up
            tails[j] = heads[j] + np.array([0.0, 0.0, 2 * LEAF_LENGTH])
        else:
            direction = heads[j] - heads[skeleton.PARENTS[j]]
            tails[j] = heads[j] + LEAF_LENGTH * direction / np.linalg.norm(direction)
    return tails


def create_smpl_armature(context: bpy.types.Context, name: str = "SMPL-22") -> bpy.types.Object:
    """A new armature object linked to the scene collection, made active, bones in quaternion rotation mode.

    Rolls are deterministic: each bone's Z axis faces forward (−Y), or up for bones that point forward (feet).
    """
    heads = rest_heads()
    tails = rest_tails(heads)
    scene, view_layer = context.scene, context.view_layer
    if scene is None or view_layer is None:
        raise RuntimeError("no active scene / view layer to add the armature to")
    data = bpy.data.armatures.new(name)
    obj = bpy.data.objects.new(name, data)
    scene.collection.objects.link(obj)
    for other in view_layer.objects.selected:
        other.select_set(False)
    view_layer.objects.active = obj
    obj.select_set(True)
    if context.mode != "OBJECT":
        bpy.ops.object.mode_set(mode="OBJECT")
    bpy.ops.object.mode_set(mode="EDIT")
    edit_bones = []
    for j, bone_name in enumerate(JOINT_NAMES):
        eb = data.edit_bones.new(bone_name)
        eb.head, eb.tail = Vector(heads[j]), Vector(tails[j])
        along = (tails[j] - heads[j]) / np.linalg.norm(tails[j] - heads[j])
        eb.align_roll(Vector((0.0, 0.0, 1.0)) if abs(along[1]) > 0.7 else Vector((0.0, -1.0, 0.0)))
        edit_bones.append(eb)
    for j, eb in enumerate(edit_bones):
        if skeleton.PARENTS[j] >= 0:
            eb.parent = edit_bones[skeleton.PARENTS[j]]
            eb.use_connect = False  # heads stay on the joints
    bpy.ops.object.mode_set(mode="OBJECT")
    for pb in pose_bones(obj):
        pb.rotation_mode = "QUATERNION"
    data["motiongpt3_rig"] = "smpl22"
    return obj


def is_smpl_armature(obj: bpy.types.Object | None) -> bool:
    """An armature with all 22 SMPL joint names (the add-on creates these)."""
    if obj is None or obj.type != "ARMATURE":
        return False
    bones = armature_data(obj).bones
    return all(n in bones for n in JOINT_NAMES)


def user_preset_dir(create: bool = False) -> Path | None:
    """Where saved bone-map presets live (`<Blender config>/motiongpt3/bone_maps`); None if Blender has none."""
    folder = bpy.utils.user_resource("CONFIG", path="motiongpt3/bone_maps", create=create)
    return Path(folder) if folder else None


def presets() -> list[BoneMap]:
    """The bundled bone-map presets, then the user's saved ones (unreadable files are skipped)."""
    out = bundled_presets()
    folder = user_preset_dir()
    for path in sorted(folder.glob("*.json")) if folder is not None and folder.is_dir() else ():
        try:
            out.append(parse_bone_map(json.loads(path.read_text(encoding="utf-8")), path.stem))
        except (OSError, ValueError):
            continue
    return out


def bone_parents(obj: bpy.types.Object) -> dict[str, str | None]:
    """{bone name: parent name or None} of an armature."""
    return {b.name: (b.parent.name if b.parent else None) for b in armature_data(obj).bones}


def rig_match(obj: bpy.types.Object) -> RigMatch:
    """The armature's own mapping (set in the mapping editor) or the best-scoring preset."""
    parents = bone_parents(obj)
    stored = armature_data(obj).get(PROP_BONE_MAP)
    if stored:
        return match_preset(parse_bone_map(json.loads(str(stored)), "custom"), parents)
    return detect_rig_map(parents, presets())


def rig_bone_map(obj: bpy.types.Object | None) -> BoneMap:
    """The complete bone map of an armature, or ValueError naming the joints no bone was found for."""
    if obj is None or obj.type != "ARMATURE":
        raise ValueError("select an armature")
    try:
        match = rig_match(obj)
    except (BoneMapError, ValueError, json.JSONDecodeError) as error:
        raise ValueError(f"{obj.name}: bad bone mapping: {error}") from None
    if not match.complete:
        if match.score >= 0.5:
            raise ValueError(f"{obj.name}: {describe_unmapped(match, 0, ())}; rename those bones or map them (Bone "
                             "Mapping panel)")  # fmt: skip
        proposal = propose(obj)
        found = len(JOINT_NAMES) - len(proposal.missing)
        raise ValueError(f"{obj.name}: {describe_unmapped(match, found, proposal.missing)}: check it in the Bone "
                         "Mapping panel (Fill from Detection, then Apply Mapping)")  # fmt: skip
    return match.bone_map


@dataclass(frozen=True)
class Proposal:
    """A mapping proposed from an armature's bone names and hierarchy (`shared.motion.bone_guess`): per SMPL joint the
    bone whose head is the joint, or None (not found, or only a midpoint / end site, which a bone slot cannot hold)."""

    bones: tuple[str | None, ...]

    @property
    def missing(self) -> tuple[str, ...]:
        return tuple(j for j, b in zip(JOINT_NAMES, self.bones, strict=True) if b is None)


def propose(obj: bpy.types.Object) -> Proposal:
    """The mapping proposed from the armature's bone names and hierarchy."""
    parents = bone_parents(obj)
    names = list(parents)
    index = {n: i for i, n in enumerate(names)}
    guess = propose_bone_map(names, [index[p] if p is not None else -1 for p in parents.values()])
    return Proposal(tuple(s.bones[0] if s is not None and s.kind == "joint" else None for s in guess.sources))


def is_mapped_armature(obj: bpy.types.Object | None) -> bool:
    """An armature a bone map fits completely (motion can be written onto it and read from it)."""
    try:
        rig_bone_map(obj)
    except ValueError:
        return False
    return True


def rig_rest(obj: bpy.types.Object) -> retarget.RigRest:
    """Every bone of the armature at rest (`matrix_local`, parents, lengths)."""
    bones = list(armature_data(obj).bones)
    return retarget.RigRest.from_bones(
        [b.name for b in bones],
        [b.parent.name if b.parent else None for b in bones],
        np.array([np.array(b.matrix_local) for b in bones]),
        [b.length for b in bones],
    )


def target_of(obj: bpy.types.Object) -> RigTarget:
    """The retargeting target of an armature object: rest, bone map, current object matrix, scene unit scale."""
    scale = current_scene().unit_settings.scale_length or 1.0
    return rig_target(rig_rest(obj), rig_bone_map(obj), np.array(obj.matrix_world), scale)
