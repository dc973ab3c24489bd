"""The animator's own rigs in real Blender: Mixamo-, Rigify- (A-pose), SMPL-X- and UE5-like armatures built here,
generated motion retargeted onto each through the add-on's job flow, read back, captioned; detection and errors."""

from __future__ import annotations

import bpy
import numpy as np
import pytest
from mathutils import Matrix, Vector
from rig_builders import MIXAMO, RIGIFY, a_pose, reference_rest
from scripted_client import Event, ScriptedClient
from test_blender_addon import _tick_until_settled

import blender_addon
from blender_addon import armature, operators, readback
from shared.motion.align import yaw_matrix
from shared.motion.axes import yup_to_zup
from shared.motion.humanml3d import features_to_joints
from shared.motion.skeleton import JOINT_NAMES, PARENTS, children_of, tpose_joints

pytestmark = pytest.mark.usefixtures("addon")

P = np.array(PARENTS[1:])
UE5 = ("pelvis", "thigh_l", "thigh_r", "spine_01", "calf_l", "calf_r", "spine_03", "foot_l", "foot_r", "spine_05",
       "ball_l", "ball_r", "neck_01", "clavicle_l", "clavicle_r", "head", "upperarm_l", "upperarm_r", "lowerarm_l",
       "lowerarm_r", "hand_l", "hand_r")  # fmt: skip


# name: (bone names, prefix, A-pose, data Y-up in cm (FBX import), object yaw about Z, uniform size, extra bones)
RIGS = {
    "mixamo": (MIXAMO, "mixamorig:", False, True, 0.0, 1.1, ("LeftHandIndex1", "HeadTop_End")),
    "rigify": (RIGIFY, "", True, False, 0.0, 0.95, ("pelvis.L", "heel.02.L")),
    "smplx": (tuple(JOINT_NAMES), "", False, False, -2.0, 1.0, ("jaw", "left_index1")),
    "ue5_random_rolls": (UE5, "", False, False, 1.1, 1.2, ("spine_02", "spine_04", "neck_02", "upperarm_twist_01_l")),
}
PRESET = {"mixamo": "mixamo", "rigify": "rigify_metarig", "smplx": "smplx", "ue5_random_rolls": "ue5_mannequin"}


def build_rig(kind: str, features: np.ndarray) -> tuple[bpy.types.Object, np.ndarray, float]:
    """The rig, its rest joints (Y-up, metres, before the object transform) and its facing yaw in world."""
    names, prefix, apose, fbx_cm, yaw, size, extras = RIGS[kind]
    rest = reference_rest(features) * size
    if apose:
        rest = a_pose(rest, 40.0)
    heads = rest * 100.0 if fbx_cm else yup_to_zup(rest)
    rng = np.random.default_rng(7)
    data = bpy.data.armatures.new(kind)
    obj = bpy.data.objects.new(kind, data)
    bpy.context.scene.collection.objects.link(obj)
    bpy.context.view_layer.objects.active = obj
    bpy.ops.object.mode_set(mode="EDIT")
    bones = []
    for j in range(22):
        kids = children_of(j)
        tail = heads[{0: 3, 9: 12}.get(j, kids[0])] if kids else heads[j] + 0.3 * (heads[j] - heads[PARENTS[j]])
        eb = data.edit_bones.new(prefix + names[j])
        eb.head, eb.tail = Vector(heads[j]), Vector(tail)
        eb.roll = float(rng.uniform(-np.pi, np.pi)) if kind != "smplx" else 0.0
        bones.append(eb)
    for j, eb in enumerate(bones):
        if PARENTS[j] >= 0:
            eb.parent, eb.use_connect = bones[PARENTS[j]], False
    root = None
    if kind in ("smplx", "ue5_random_rolls"):
        root = data.edit_bones.new("root")
        root.head, root.tail = Vector((0, 0, 0)), Vector((0, 0.1 * size, 0))
        bones[0].parent = root
    for k, extra in enumerate(extras):  # extra bones hang off the wrist / pelvis / spine and are never keyed
        eb = data.edit_bones.new(prefix + extra)
        anchor = bones[[20, 0, 12, 16][k % 4]]
        eb.head, eb.tail = anchor.head.copy(), anchor.head + Vector((0.0, 0.0, 0.05 * (100 if fbx_cm else 1)))
        eb.parent = anchor
    if kind == "ue5_random_rolls":  # spine_02 between spine_01 and spine_03 (unmapped segment)
        mid = data.edit_bones[prefix + "spine_02"]
        mid.head, mid.tail, mid.parent = bones[3].tail.copy(), bones[6].head.copy(), bones[3]
        bones[6].parent = mid
    bpy.ops.object.mode_set(mode="OBJECT")
    scale = 0.01 if fbx_cm else 1.0
    obj.matrix_world = Matrix.Translation((1.5, -0.5, 0.0)) @ (
        Matrix.Rotation(yaw, 4, "Z") @ Matrix.Rotation(np.pi / 2 if fbx_cm else 0.0, 4, "X")
    ) @ Matrix.Scale(scale, 4)
    for pb in obj.pose.bones:
        pb.rotation_mode = "XYZ"  # imported rigs are often Euler
    across = rest[2] - rest[1] + rest[17] - rest[16]  # facing = up × (right − left), as a person faces
    world_across = np.array(obj.matrix_world.to_3x3()) @ (across if fbx_cm else yup_to_zup(across))
    facing = np.arctan2(-world_across[1], -world_across[0])  # forward (−a_y, a_x) in Blender → HumanML3D yaw
    return obj, rest, float(facing)


def _generate_on(
    obj: bpy.types.Object, client: ScriptedClient, features: np.ndarray, limit: int = 2000
) -> tuple[str, int]:
    """Generate onto `obj` at 20 fps from frame 1, the scripted backend answering with `features`; ticks the add-on's
    timer until the job settles -> (request id, ticks) with the ticks' durations in CONTROLLER.tick_seconds."""
    scene = bpy.context.scene
    scene.render.fps, scene.frame_current = 20, 1
    settings = scene.motiongpt3
    settings.length_unit, settings.frames, settings.candidates = "FRAMES", len(features), 1
    bpy.context.view_layer.objects.active = obj
    assert bpy.ops.motion.generate() == {"FINISHED"}
    request_id = client.sent[-1][0]
    client.queue = [Event("result", request_id, {}, {"motions": features[None].astype(np.float32)})]
    operators.CONTROLLER.tick_seconds.clear()
    return request_id, _tick_until_settled(limit)


def _directions(joints: np.ndarray) -> np.ndarray:
    d = joints[:, 1:] - joints[:, P]
    return d / np.linalg.norm(d, axis=-1, keepdims=True)


@pytest.mark.parametrize("kind", sorted(RIGS))
def test_generated_motion_lands_on_the_rig_and_reads_back(kind, client, cmu_walk) -> None:
    features = cmu_walk[0]
    obj, rest, facing = build_rig(kind, features)
    assert armature.rig_match(obj).preset == PRESET[kind]
    actions = set(bpy.data.actions)
    _generate_on(obj, client, features)
    (action,) = set(bpy.data.actions) - actions
    assert obj.animation_data.action == action
    keyed = {fc.data_path.split('"')[1] for fc in blender_addon.action_io.all_fcurves(action)}
    assert not any(name.endswith(RIGS[kind][6]) or name == "root" for name in keyed)  # extra bones untouched
    count = len(features)
    got = readback.sample_joints(obj, 1, count).world  # the add-on's own read-back, Y-up metres
    source = features_to_joints(features)
    # Into the rig's facing frame (snapped to an axis when the rest is modelled facing one).
    quarter = round(facing / (np.pi / 2)) * np.pi / 2
    facing = quarter if abs(facing - quarter) < np.radians(10) else facing
    got_facing = got @ yaw_matrix(facing)
    error = np.degrees(np.arccos(np.clip((_directions(got_facing) * _directions(source)).sum(-1), -1, 1)))
    assert error.max() < 2.0, error.max()
    assert np.all(np.sign(got_facing[:, 1, 0] - got_facing[:, 2, 0]) == np.sign(source[:, 1, 0] - source[:, 2, 0]))
    # Feet: the lowest foot joint over the rig's floor is the source's, scaled by the leg-length ratio.
    world_rest = np.array([tuple(obj.matrix_world @ b.head_local) for b in _mapped_bones(obj)])
    floor = world_rest[[7, 8, 10, 11], 2].min()
    standing = lambda j: j[0, 1] - j[[7, 8, 10, 11], 1].min()  # noqa: E731
    scale = standing(rest) / standing(tpose_joints())
    contact = (features[:, 259:263] > 0.5).any(1)
    lowest = got[:, [7, 8, 10, 11], 1].min(1) - floor
    expected = scale * source[:, [7, 8, 10, 11], 1].min(1)
    foot_error = np.abs(lowest - expected)[contact]
    assert foot_error.max() < 0.02, foot_error.max()
    print(f"{kind}: max bone-direction error {error.max():.4f} deg, foot height error {foot_error.max() * 100:.3f} cm")


def _mapped_bones(obj: bpy.types.Object) -> list[bpy.types.Bone]:
    bone_map = armature.rig_bone_map(obj)
    return [obj.data.bones[s.bones[0]] for s in bone_map.sources]


def test_caption_of_the_same_motion_on_two_rigs_sends_the_same_features(client, cmu_walk) -> None:
    features = cmu_walk[0][:100]
    sent = []
    for kind in ("mixamo", "rigify"):
        obj, _, _ = build_rig(kind, cmu_walk[0])
        _generate_on(obj, client, features)
        scene = bpy.context.scene
        scene.frame_start, scene.frame_end = 1, len(features)
        bpy.context.view_layer.objects.active = obj
        assert bpy.ops.motion.caption() == {"FINISHED"}
        _tick_until_settled()
        assert client.sent[-1][1] == "caption"
        sent.append(client.sent[-1][3]["features"])
    assert sent[0].shape == sent[1].shape == (len(features) - 1, 263)
    scale = np.maximum(np.abs(sent[0]).max(0), 1e-3)
    assert (np.abs(sent[0] - sent[1]) / scale).max() < 0.05
    np.testing.assert_allclose(sent[0][:, 4:67], sent[1][:, 4:67], atol=0.01)  # joint positions (m)


def test_unmappable_rig_is_refused_naming_the_missing_joints(client, cmu_walk) -> None:
    obj, _, _ = build_rig("mixamo", cmu_walk[0])
    bpy.ops.object.mode_set(mode="EDIT")
    for name in ("mixamorig:LeftHand", "mixamorig:RightToeBase"):
        obj.data.edit_bones.remove(obj.data.edit_bones[name])
    bpy.ops.object.mode_set(mode="OBJECT")
    missing = r"'mixamo' finds no bone for: right_foot \(RightToeBase\), left_wrist \(LeftHand\)"
    with pytest.raises(ValueError, match=missing):
        armature.rig_bone_map(obj)
    bpy.context.view_layer.objects.active = obj
    with pytest.raises(RuntimeError, match="left_wrist"):
        bpy.ops.motion.generate()
    assert client.sent == []
