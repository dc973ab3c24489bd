"""The SMPL-22 armature: HumanML3D rest skeleton (T-pose, metres, Z-up, facing −Y) with SMPL joint names and parents."""

from __future__ import annotations

import bpy
import numpy as np
from mathutils import Vector

from ._shared import axes, skeleton
from .action_io import armature_data, pose_bones

JOINT_NAMES = list(skeleton.JOINT_NAMES)
LEAF_LENGTH = 0.08  # metres: tail length of bones without a child (feet, head, wrists)


def rest_heads() -> np.ndarray:
    """(22, 3) rest joint positions in Blender axes: `TPOSE_OFFSETS` accumulated, lowest joint on the ground."""
    offsets = skeleton.TPOSE_OFFSETS
    joints = np.zeros((skeleton.NUM_JOINTS, 3))
    for j in skeleton.depth_first_order()[1:]:
        joints[j] = joints[skeleton.PARENTS[j]] + offsets[j]
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
    """An armature with all 22 SMPL joint names (the add-on writes motion onto these)."""
    if obj is None or obj.type != "ARMATURE":
        return False
    bones = armature_data(obj).bones
    return all(n in bones for n in JOINT_NAMES)


def bone_rest(obj: bpy.types.Object, names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """((N, 3) heads, (N, 3, 3) rotations) of `bone.matrix_local` (armature space) for the named bones."""
    bones = armature_data(obj).bones
    matrices = np.array([np.array(bones[n].matrix_local) for n in names], dtype=np.float64)
    return matrices[:, :3, 3], matrices[:, :3, :3]
