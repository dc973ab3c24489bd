"""In-between Keys in real Blender: the animator's own keyed poses (a Mixamo-like cm rig in quaternions, a Rigify-like
A-pose rig in all six Euler orders) filled by a scripted backend whose motion ignores them; the new Action must pass
through every key with no pop next to it and keep the user's keys, rotation modes and Action; refusals change
nothing. Last: the same flow against a loopback backend running the embedded demo model."""

from __future__ import annotations

import socket
import time

import bpy
import numpy as np
import pytest
from mathutils import Euler, Quaternion
from scripted_client import Event, ScriptedClient
from test_blender_addon import _keys, _snapshot, _tick_until_settled
from test_blender_rigs import RIGS, build_rig

from blender_addon import armature, operators, results
from blender_addon.action_io import all_fcurves, assign_action
from shared.motion import quaternion
from shared.motion.axes import yup_to_zup
from shared.motion.humanml3d import features_to_joints
from shared.motion.resample import resample_linear
from shared.motion.skeleton import JOINT_NAMES, PARENTS

pytestmark = pytest.mark.usefixtures("addon")

KEY_FRAMES = (1, 30, 60)
FULL = (0, 1, 4, 12, 17, 19)  # SMPL joints whose bones are keyed on every key frame (0: rotation and location)
ENDS_ONLY = (18,)  # keyed on the first and the last key frame only
ORDERS = ("XYZ", "XZY", "YXZ", "YZX", "ZXY", "ZYX")
P = np.array(PARENTS[1:])


def _angle(a: np.ndarray, b: np.ndarray) -> float:
    """Radians between two rotation matrices (‖A − B‖ = 2√2·sin(θ/2): exact near 0, unlike arccos of the trace)."""
    distance = np.linalg.norm(np.asarray(a, np.float64) - np.asarray(b, np.float64))
    return float(2.0 * np.arcsin(min(1.0, distance / (2.0 * np.sqrt(2.0)))))


def _value_matrix(pb: bpy.types.PoseBone) -> np.ndarray:
    """The rotation the bone's rotation values mean in its mode, by mathutils (the oracle for keyed values)."""
    if pb.rotation_mode == "QUATERNION":
        return np.array(Quaternion(pb.rotation_quaternion).normalized().to_matrix())
    return np.array(Euler(pb.rotation_euler, pb.rotation_mode).to_matrix())


def _key_poses(obj: bpy.types.Object, names: list[str], unit: float, tricks: bool) -> dict[tuple[str, int], np.ndarray]:
    """Key random poses (25-60° per bone) at KEY_FRAMES on the FULL bones and at the ends on ENDS_ONLY, and the root's
    location, into a new Action "blocking". With `tricks`, some keys sit where users' keys do and naive writes pop:
    the other quaternion hemisphere, the other Euler triple, a full turn away. Returns the keyed rotations."""
    rng = np.random.default_rng(11)
    obj.animation_data_create().action = bpy.data.actions.new("blocking")
    keyed = {}
    for frame in KEY_FRAMES:
        for j in FULL + (ENDS_ONLY if frame != 30 else ()):
            pb = obj.pose.bones[names[j]]
            axis = rng.normal(size=3)
            q = Quaternion(axis / np.linalg.norm(axis), np.radians(rng.uniform(25.0, 60.0)))
            if pb.rotation_mode == "QUATERNION":
                pb.rotation_quaternion = -q if tricks and j == 4 and frame == 30 else q
                pb.keyframe_insert("rotation_quaternion", frame=frame)
            else:
                e = np.array(q.to_euler(pb.rotation_mode))
                if tricks and j == 12:  # a turn away, on every key of this bone
                    e[2] += 2 * np.pi
                if tricks and j == 17:  # the other triple of the same rotation, on every key of this bone
                    middle = "XYZ".index(pb.rotation_mode[1])
                    e, e[middle] = e + np.pi, np.pi - e[middle]
                pb.rotation_euler = Euler(e, pb.rotation_mode)
                pb.keyframe_insert("rotation_euler", frame=frame)
            keyed[(pb.name, frame)] = _value_matrix(pb)
        root = obj.pose.bones[names[0]]
        root.location = rng.uniform(-0.15, 0.15, size=3) * unit
        root.keyframe_insert("location", frame=frame)
    for curve in all_fcurves(obj.animation_data.action):  # one key with hand-set FREE handles must keep them
        if curve.data_path == f'pose.bones["{names[0]}"].location' and curve.array_index == 0:
            key = curve.keyframe_points[1]
            key.handle_left_type = key.handle_right_type = "FREE"
            key.handle_left = (key.co[0] - 4.0, key.co[1] + 0.2 * unit)
            key.handle_right = (key.co[0] + 3.0, key.co[1] - 0.1 * unit)
            curve.update()
    return keyed


def _poses(obj: bpy.types.Object, names: list[str], frames: range) -> dict[int, dict[str, np.ndarray]]:
    """Evaluated `matrix_basis` (4x4) of the named bones per frame (Blender's own evaluation)."""
    out = {}
    for frame in frames:
        bpy.context.scene.frame_set(frame)
        out[frame] = {n: np.array(obj.pose.bones[n].matrix_basis) for n in names}
    return out


def _joints(obj: bpy.types.Object, names: list[str], frames: range) -> np.ndarray:
    """(T, 22, 3) world heads of the SMPL-mapped bones (the test rigs have their heads on the joints)."""
    out = np.empty((len(frames), 22, 3))
    for t, frame in enumerate(frames):
        bpy.context.scene.frame_set(frame)
        out[t] = [tuple(obj.matrix_world @ obj.pose.bones[n].head) for n in names]
    return out


def _body_directions(joints: np.ndarray) -> np.ndarray:
    """(T, 21, 3) bone directions in the body's own frame (hips across, spine up): free of placement and scale."""
    across = joints[:, 1] - joints[:, 2]
    across /= np.linalg.norm(across, axis=-1, keepdims=True)
    up = joints[:, 3] - joints[:, 0]
    up -= (up * across).sum(-1, keepdims=True) * across
    up /= np.linalg.norm(up, axis=-1, keepdims=True)
    frame = np.stack([across, up, np.cross(across, up)], axis=-1)
    d = joints[:, 1:] - joints[:, P]
    d /= np.linalg.norm(d, axis=-1, keepdims=True)
    return np.einsum("tab,tja->tjb", frame, d)


def _max_direction_change(a: np.ndarray, b: np.ndarray) -> float:
    """Largest angle (radians) between matching bone directions (21, 3) of two poses."""
    return float(np.arccos(np.clip((a * b).sum(-1), -1.0, 1.0)).max())


def _run(obj: bpy.types.Object, client: ScriptedClient, motion_start: int) -> tuple[dict, np.ndarray]:
    """Press In-between Keys, answer with a stretch of the clip that ignores the keys; the request and the motion."""
    bpy.context.view_layer.objects.active = obj
    assert bpy.ops.motion.inbetween_keys() == {"FINISHED"}
    _tick_until_settled()
    request_id, kind, fields, arrays = client.sent[-1]
    assert kind == "inbetween"
    motion = CLIP[motion_start : motion_start + len(arrays["features"])].astype(np.float32)
    client.queue = [Event("result", request_id, {}, {"motions": motion[None]})]
    _tick_until_settled()
    return {"fields": fields, **arrays}, motion


CLIP: np.ndarray = np.zeros(0)


@pytest.fixture(autouse=True)
def _clip(cmu_walk):
    global CLIP
    CLIP = cmu_walk[0]


@pytest.mark.parametrize(("kind", "fps", "modes"), [("mixamo", 30, "quaternion"), ("rigify", 24, "euler")])
def test_inbetween_keys_passes_through_every_key_and_keeps_the_users_action(client, kind, fps, modes) -> None:
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = fps, 1.0
    scene.frame_start, scene.frame_end = 1, 100
    scene.motiongpt3.inbetween_prompt = "  "  # blank: no text is sent
    obj, _, _ = build_rig(kind, CLIP)
    names = [RIGS[kind][1] + n for n in RIGS[kind][0]]
    for k, pb in enumerate(obj.pose.bones):  # the Euler rig cycles through all six orders
        pb.rotation_mode = "QUATERNION" if modes == "quaternion" else ORDERS[k % 6]
    unit = 100.0 if RIGS[kind][3] else 1.0
    keyed = _key_poses(obj, names, unit, tricks=True)
    user = obj.animation_data.action
    mode_before = {pb.name: pb.rotation_mode for pb in obj.pose.bones}
    before, user_keys = _snapshot(user), _keys(user)
    span = range(KEY_FRAMES[0], KEY_FRAMES[-1] + 1)
    pose_before = _poses(obj, names, span)
    joints_before = _joints(obj, names, span)
    for (bone, frame), matrix in keyed.items():  # the oracle itself: Blender plays the keys as keyed
        assert _angle(pose_before[frame][bone][:3, :3], matrix) < 1e-6

    request, motion = _run(obj, client, motion_start=60)
    assert "text" not in request["fields"]
    nearest = [round((f - 1) * 20.0 / fps) for f in KEY_FRAMES]  # 20 fps frames nearest each key's time
    assert nearest == ([0, 19, 39] if fps == 30 else [0, 24, 49])
    reaching = int(np.ceil((KEY_FRAMES[-1] - 1) * 20.0 / fps))  # the first 20 fps frame at or after the last key
    assert request["features"].shape == (reaching + 1, 263)
    np.testing.assert_array_equal(np.flatnonzero(request["known"]), nearest)

    new = obj.animation_data.action
    assert new not in (None, user) and new.use_fake_user
    assert _snapshot(user) == before  # the user's Action, byte for byte
    assert {pb.name: pb.rotation_mode for pb in obj.pose.bones} == mode_before

    # Through every key: each mapped bone as the user's Action has it there, keyed or not; the root's location too.
    pose_after = _poses(obj, names, span)
    for frame in KEY_FRAMES:
        for bone in names:
            error = _angle(pose_after[frame][bone][:3, :3], pose_before[frame][bone][:3, :3])
            assert error < 1e-3, (bone, frame, error)
        np.testing.assert_allclose(pose_after[frame][names[0]][:3, 3], pose_before[frame][names[0]][:3, 3], atol=1e-4)
    for (bone, frame), matrix in keyed.items():
        assert _angle(pose_after[frame][bone][:3, :3], matrix) < 1e-3

    # No pop next to a key: a step from a key to its neighbour frame is the motion's own step there plus far less than
    # the jump the scripted motion alone would make (the user's key pose against the motion's pose on that frame).
    scripted = yup_to_zup(resample_linear(features_to_joints(motion), 20.0, fps))  # scene frames from frame 1
    directions_user = _body_directions(joints_before)
    directions_new = _body_directions(_joints(obj, names, span))
    directions_scripted = _body_directions(scripted)
    steps = []
    for frame in KEY_FRAMES:
        for neighbour in (frame - 1, frame + 1):
            if neighbour not in span:
                continue
            k, n = frame - 1, neighbour - 1
            corrected = _max_direction_change(directions_new[k], directions_new[n])
            uncorrected = _max_direction_change(directions_user[k], directions_scripted[n])
            natural = _max_direction_change(directions_scripted[max(n, k)], directions_scripted[max(n, k) - 1])
            steps.append((frame, neighbour, np.degrees(corrected), np.degrees(uncorrected), np.degrees(natural)))
            assert uncorrected > np.radians(30.0)  # the scripted motion really ignores the keys
            assert corrected < 0.2 * uncorrected + natural, steps[-1]  # at most the motion's own step + 20 %
    print(kind, "key → neighbour (corrected°, uncorrected°, scripted step°):", [s[1:] for s in steps])

    # Per F-curve: the user's keys kept (value, interpolation, handle types; hand-set handles too); a generated key
    # on every other frame of the span; no second key on a user's key frame.
    after = _keys(new)
    for (path, index), fields in user_keys.items():
        frames_after = after[(path, index)]["co"][0::2]
        frames_user = fields["co"][0::2]
        mine = np.isin(frames_after, frames_user)
        assert mine.sum() == len(frames_user)
        np.testing.assert_array_equal(after[(path, index)]["co"].reshape(-1, 2)[mine], fields["co"].reshape(-1, 2))
        np.testing.assert_array_equal(after[(path, index)]["interpolation"][mine], fields["interpolation"])
        np.testing.assert_array_equal(np.sort(frames_after), np.arange(1, 61))
    root_x = (f'pose.bones["{names[0]}"].location', 0)
    at_30 = int(np.flatnonzero(after[root_x]["co"][0::2] == 30.0)[0])
    for handle in ("handle_left", "handle_right"):  # the hand-set FREE handles of the key at frame 30
        got, want = after[root_x][handle].reshape(-1, 2)[at_30], user_keys[root_x][handle].reshape(-1, 2)[1]
        np.testing.assert_array_equal(got, want)
    written = {fc.data_path for fc in all_fcurves(new)}
    if modes == "euler":  # Euler bones keep Euler keys: no quaternion curve appears
        assert not any(p.endswith("rotation_quaternion") for p in written)
        # ... and next to every key the Euler values continue the user's (same triple, same turn): no F-curve jump
        for fc in all_fcurves(new):
            if fc.data_path.endswith("rotation_euler"):
                values = np.array([fc.evaluate(f) for f in span])
                assert np.abs(np.diff(values)).max() < 0.5, (fc.data_path, fc.array_index)
    else:  # quaternion keys next to each key stay on its hemisphere (a user's keys that change hemisphere, as the
        # knee's do, make the sign change half-way between two keys, never next to one)
        for fc in all_fcurves(new):
            if fc.data_path.endswith("rotation_quaternion"):
                for frame in KEY_FRAMES:
                    near = [fc.evaluate(f) for f in (frame - 1, frame, frame + 1) if f in span]
                    assert np.abs(np.diff(near)).max() < 0.1, (fc.data_path, fc.array_index, frame, near)

    assign_action(obj, user)  # switching back: the user's Action plays its own poses, as before
    switched = _poses(obj, names, span)
    for frame in span:
        for bone in names:
            np.testing.assert_allclose(switched[frame][bone], pose_before[frame][bone], atol=1e-6)


def test_prompt_is_sent_as_text_when_given(client) -> None:
    scene = bpy.context.scene
    scene.render.fps = 20
    obj, _, _ = build_rig("mixamo", CLIP)
    names = [RIGS["mixamo"][1] + n for n in RIGS["mixamo"][0]]
    _key_poses(obj, names, 100.0, tricks=False)
    scene.motiongpt3.inbetween_prompt, scene.motiongpt3.seed = " a person jumps ", 4
    bpy.context.view_layer.objects.active = obj
    assert bpy.ops.motion.inbetween_keys() == {"FINISHED"}
    _tick_until_settled()
    _, kind, fields, arrays = client.sent[-1]
    assert kind == "inbetween" and fields == {"seed": 4, "candidates": 1, "text": "a person jumps"}
    np.testing.assert_array_equal(np.flatnonzero(arrays["known"]), [0, 29, 59])


def test_the_poses_passed_through_are_those_at_the_button_press(client) -> None:
    """Switching Actions while the backend works does not change what the result passes through."""
    scene = bpy.context.scene
    scene.render.fps = 20
    obj = armature.create_smpl_armature(bpy.context)
    knee = obj.pose.bones["left_knee"]
    for frame, angle in ((1, 0.0), (40, 60.0)):
        knee.rotation_quaternion = Quaternion((1.0, 0.0, 0.0), np.radians(angle))
        knee.keyframe_insert("rotation_quaternion", frame=frame)
    user = obj.animation_data.action
    assert bpy.ops.motion.inbetween_keys() == {"FINISHED"}
    _tick_until_settled()
    request_id, _, _, arrays = client.sent[-1]
    other = bpy.data.actions.new("other")  # animates the bones the user left alone
    assign_action(obj, other)
    for name in ("spine2", "right_elbow"):
        obj.pose.bones[name].rotation_quaternion = Quaternion((0.0, 1.0, 0.0), 1.0)
        obj.pose.bones[name].keyframe_insert("rotation_quaternion", frame=1)
    client.queue = [Event("result", request_id, {}, {"motions": CLIP[None, : len(arrays["features"])]})]
    _tick_until_settled()
    assert obj.animation_data.action not in (user, other)
    for frame, angle in ((1, 0.0), (40, 60.0)):
        pose = _poses(obj, ["left_knee", "spine2", "right_elbow"], range(frame, frame + 1))[frame]
        assert _angle(pose["left_knee"][:3, :3], np.array(Euler((np.radians(angle), 0, 0)).to_matrix())) < 1e-3
        for name in ("spine2", "right_elbow"):  # the user left them at rest
            assert _angle(pose[name][:3, :3], np.eye(3)) < 1e-3


def _refused(obj: bpy.types.Object, client: ScriptedClient, message: str) -> None:
    """The button reports `message` and nothing changes: no request, no new Action, the user's keys as they were."""
    actions = {a.name: _snapshot(a) for a in bpy.data.actions}
    assigned = obj.animation_data.action if obj.animation_data else None
    bpy.context.view_layer.objects.active = obj
    with pytest.raises(RuntimeError, match=message):
        bpy.ops.motion.inbetween_keys()
    _tick_until_settled()
    assert client.sent == [] and not operators.CONTROLLER.tasks
    assert {a.name: _snapshot(a) for a in bpy.data.actions} == actions
    assert (obj.animation_data.action if obj.animation_data else None) == assigned


def test_one_key_is_refused(client) -> None:
    obj = armature.create_smpl_armature(bpy.context)
    obj.pose.bones["left_knee"].keyframe_insert("rotation_quaternion", frame=12)
    obj.pose.bones["pelvis"].keyframe_insert("location", frame=12)
    _refused(obj, client, r"needs poses keyed on 2 or more frames of 'SMPL-22Action' \(frames 1-250\); found 1")


def test_keys_outside_the_read_range_do_not_count(client) -> None:
    obj = armature.create_smpl_armature(bpy.context)
    for frame in (5, 40):
        obj.pose.bones["left_knee"].keyframe_insert("rotation_quaternion", frame=frame)
    settings = bpy.context.scene.motiongpt3
    settings.use_scene_range, settings.read_start, settings.read_end = False, 20, 80
    _refused(obj, client, r"\(frames 20-80\); found 1")


def test_a_span_longer_than_the_model_is_refused(client) -> None:
    bpy.context.scene.render.fps = 30
    obj = armature.create_smpl_armature(bpy.context)
    for frame in (1, 150, 296):  # 9.83 s at 30 fps: 198 frames at 20 fps
        obj.pose.bones["left_knee"].keyframe_insert("rotation_quaternion", frame=frame)
    bpy.context.scene.frame_end = 300
    _refused(obj, client, r"keys at frames 1-296 span 198 frames at 20 fps: .* at most 196 frames at 20 fps \(9.8 s\)")


def test_an_unmapped_rig_or_no_action_is_refused(client) -> None:
    obj, _, _ = build_rig("mixamo", CLIP)
    _refused(obj, client, "has no Action: key poses on 2 or more frames first")
    names = [RIGS["mixamo"][1] + n for n in RIGS["mixamo"][0]]
    _key_poses(obj, names, 100.0, tricks=False)
    bpy.ops.object.mode_set(mode="EDIT")
    obj.data.edit_bones.remove(obj.data.edit_bones["mixamorig:LeftHand"])
    bpy.ops.object.mode_set(mode="OBJECT")
    _refused(obj, client, r"finds no bone for: left_wrist \(LeftHand\)")


@pytest.mark.parametrize("order", ORDERS)
def test_numpy_euler_angles_are_mathutils_own(order) -> None:
    """`quaternion.quat_to_euler` (built on `matrix_to_euler` of the reversed order) gives the angles and branch of
    `Quaternion.to_euler(order)`; `euler_to_quat` the rotation of `Euler(angles, order)`; `continuous_eulers` the
    chain of `to_euler(order, previous)` over a motion that crosses both branch changes and ±180°."""
    rng = np.random.default_rng(order.encode()[0])
    quats = rng.normal(size=(300, 4))
    quats /= np.linalg.norm(quats, axis=-1, keepdims=True)
    mine = quaternion.quat_to_euler(quats, order)
    theirs = np.array([tuple(Quaternion(q).to_euler(order)) for q in quats])
    np.testing.assert_allclose(mine, theirs, atol=2e-5)
    back = quaternion.euler_to_quat(theirs, order)
    expected = np.array([tuple(Euler(e, order).to_quaternion()) for e in theirs])
    np.testing.assert_allclose(np.abs((back * expected).sum(-1)), 1.0, atol=1e-6)
    steps = np.radians(np.linspace(0.0, 1.0, 150))[:, None] * np.array([700.0, 260.0, -500.0])
    motion = quaternion.euler_to_quat(steps + np.radians([20.0, 70.0, 160.0]), order)  # passes near gimbal lock
    chain, previous = [], None
    for q in motion:
        previous = Quaternion(q).to_euler(order) if previous is None else Quaternion(q).to_euler(order, previous)
        chain.append(tuple(previous))
    assert np.abs(np.diff(quaternion.quat_to_euler(motion, order), axis=0)).max() > 3.0  # frame by frame it flips
    np.testing.assert_allclose(quaternion.continuous_eulers(motion, order), np.array(chain), atol=1e-4)


def test_generated_keys_follow_each_bones_rotation_mode(client) -> None:
    """Generate onto two SMPL-22 armatures, one in quaternions and one cycling through axis-angle and the six Euler
    orders: the same motion, each bone keyed in its own mode's property, modes untouched, the same poses."""
    scene = bpy.context.scene
    scene.render.fps = 30
    posed = []
    for cycle in (("QUATERNION",), ("AXIS_ANGLE", "QUATERNION", *ORDERS)):
        obj = armature.create_smpl_armature(bpy.context, f"rig {len(cycle)}")
        for k, pb in enumerate(obj.pose.bones):
            pb.rotation_mode = cycle[k % len(cycle)]
        modes = {pb.name: pb.rotation_mode for pb in obj.pose.bones}
        job = operators.Job("g", "generate", obj.name, {"prompt": "m", "seed": 0, "fps": 30.0, "frames": 90})
        job.params["start_frame"], job.arrays = 1, {"motions": CLIP[None, 10:71]}
        (action,) = results.write_result(job)
        assert {pb.name: pb.rotation_mode for pb in obj.pose.bones} == modes
        properties = {(fc.data_path.split('"')[1], fc.data_path.rsplit(".", 1)[1]) for fc in all_fcurves(action)}
        prop = {"QUATERNION": "rotation_quaternion", "AXIS_ANGLE": "rotation_axis_angle"}
        assert properties - {("pelvis", "location")} == {(n, prop.get(m, "rotation_euler")) for n, m in modes.items()}
        posed.append(_poses(obj, list(JOINT_NAMES), range(1, 91)))
    for frame, pose in posed[0].items():
        for name, matrix in pose.items():
            assert _angle(posed[1][frame][name][:3, :3], matrix[:3, :3]) < 1e-5, (frame, name)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _joint_steps(joints: np.ndarray) -> np.ndarray:
    """(T-1,) largest joint displacement between consecutive frames."""
    return np.linalg.norm(np.diff(joints, axis=0), axis=-1).max(axis=1)


def test_inbetween_keys_end_to_end_with_the_demo_model(cmu_walk) -> None:
    """SMPL-22 armature, the poses of a real clip keyed at 1, 30 and 60 (30 fps), the embedded demo model on loopback
    with a prompt: the new Action reproduces every key and the filled frames move continuously."""
    pytest.importorskip("torch")  # the backend's environment only (not the second Blender's)
    from backend import load_model
    from backend.service.server import Server, ServerConfig
    from shared.client import MotionClient

    bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = 30, 1.0
    obj = armature.create_smpl_armature(bpy.context)
    params = {"prompt": "clip", "seed": 0, "fps": 30.0, "frames": 60, "start_frame": 1}
    source = operators.Job("src", "generate", obj.name, params)
    source.arrays = {"motions": cmu_walk[0][None, :41]}
    (dense,) = results.write_result(source)  # the clip on every frame: its poses at the key frames become the keys
    keyed = {}
    for frame in KEY_FRAMES:
        scene.frame_set(frame)
        keyed[frame] = {pb.name: (tuple(pb.rotation_quaternion), tuple(pb.location)) for pb in obj.pose.bones}
    blocking = bpy.data.actions.new("blocking")
    assign_action(obj, blocking)
    bpy.data.actions.remove(dense)
    for frame, pose in keyed.items():
        for name, (rotation, location) in pose.items():
            pb = obj.pose.bones[name]
            pb.rotation_quaternion, pb.location = rotation, location
            pb.keyframe_insert("rotation_quaternion", frame=frame)
        obj.pose.bones["pelvis"].keyframe_insert("location", frame=frame)
    before = _snapshot(blocking)
    span = range(KEY_FRAMES[0], KEY_FRAMES[-1] + 1)
    pose_before = _poses(obj, list(JOINT_NAMES), span)
    blocked = _joints(obj, list(JOINT_NAMES), span)

    address = f"tcp://127.0.0.1:{_free_port()}"
    server = Server(load_model(None, device="cpu"), ServerConfig(bind=address))
    server.start()
    operators.CONTROLLER.close()
    operators.CONTROLLER._client_factory = lambda: MotionClient(address, heartbeat_s=0.2, timeout_s=30.0)
    settings = scene.motiongpt3
    settings.inbetween_prompt, settings.seed, settings.candidates = "a person walks forward", 3, 1
    try:
        bpy.context.view_layer.objects.active = obj
        assert bpy.ops.motion.inbetween_keys() == {"FINISHED"}
        deadline = time.monotonic() + 300.0
        while operators.CONTROLLER.tasks or operators.CONTROLLER.active() or not operators.CONTROLLER.jobs:
            assert time.monotonic() < deadline, operators.CONTROLLER.summary()
            operators.timer_tick()
            time.sleep(0.01)
    finally:
        operators.stop_timer()
        operators.CONTROLLER.close()
        server.stop()
    (job,) = operators.CONTROLLER.jobs.values()
    assert job.status == "done", job.message
    new = obj.animation_data.action
    assert new != blocking and _snapshot(blocking) == before

    pose_after = _poses(obj, list(JOINT_NAMES), span)
    for frame in KEY_FRAMES:
        for name in JOINT_NAMES:
            assert _angle(pose_after[frame][name][:3, :3], pose_before[frame][name][:3, :3]) < 1e-3, (name, frame)
        np.testing.assert_allclose(pose_after[frame]["pelvis"][:3, 3], pose_before[frame]["pelvis"][:3, 3], atol=1e-4)
    # Continuous: no joint moves or accelerates more in one frame than in the clip itself (real motion, same rate).
    clip = yup_to_zup(resample_linear(features_to_joints(cmu_walk[0][:41]), 20.0, 30.0))
    joints = _joints(obj, list(JOINT_NAMES), span)
    steps, jolts = _joint_steps(joints), _joint_steps(np.diff(joints, axis=0))
    print(
        f"demo in-between: largest joint step {steps.max():.3f} m/frame, change of step {jolts.max():.3f} m/frame "
        f"(clip {_joint_steps(clip).max():.3f}, {_joint_steps(np.diff(clip, axis=0)).max():.3f}; user's interpolation "
        f"{_joint_steps(blocked).max():.3f}, {_joint_steps(np.diff(blocked, axis=0)).max():.3f})"
    )
    assert steps.max() < _joint_steps(clip).max()
    assert jolts.max() < _joint_steps(np.diff(clip, axis=0)).max()
