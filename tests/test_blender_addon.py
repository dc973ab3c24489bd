"""The add-on inside real Blender (bpy module): armature, Action writing, read-back, and the job flow driven by
calling the timer body by hand against a scripted client (bpy.app.timers never fire in the module)."""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any

import bpy
import numpy as np
import pytest
from reference import REFERENCE_DATA

import blender_addon
from blender_addon import armature, operators, results
from blender_addon.action_io import all_fcurves
from shared.motion.axes import yup_to_zup
from shared.motion.humanml3d import features_to_joints
from shared.motion.ik import forward_kinematics
from shared.motion.resample import resample_linear
from shared.motion.skeleton import JOINT_NAMES, PARENTS, TPOSE_OFFSETS


@dataclass(frozen=True)
class Event:  # the shape of shared.client.Event
    type: str
    request_id: str | None
    fields: dict[str, Any] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)


class ScriptedClient:
    """MotionClient's interface; the test decides which events each poll() returns."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, dict, dict]] = []
        self.cancelled: list[str] = []
        self.queue: list[Event] = []
        self.connected = True
        self.closed = False

    def submit(self, type: str, fields: dict, arrays: dict | None = None) -> str:
        request_id = f"r{len(self.sent)}"
        self.sent.append((request_id, type, dict(fields), dict(arrays or {})))
        return request_id

    def poll(self) -> list[Event]:
        events, self.queue = self.queue, []
        return events

    def cancel(self, request_id: str) -> None:
        self.cancelled.append(request_id)

    def close(self) -> None:
        self.closed = True


@pytest.fixture(scope="module", autouse=True)
def addon():
    blender_addon.register()
    yield
    operators.stop_timer()
    blender_addon.unregister()


@pytest.fixture
def client():
    bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)
    scripted = ScriptedClient()
    operators.CONTROLLER.close()
    operators.CONTROLLER._client_factory = lambda: scripted
    yield scripted
    operators.stop_timer()  # a live timer hangs bpy 4.5 at exit (BLENDER_NOTES.md section 8)
    operators.CONTROLLER.close()


_KEY_FIELDS = (
    ("co", 2, np.float32),
    ("handle_left", 2, np.float32),
    ("handle_right", 2, np.float32),
    ("interpolation", 1, np.int32),
)


def _keys(action: bpy.types.Action) -> dict[tuple[str, int], dict[str, np.ndarray]]:
    """Every key of every F-curve: co, handles and interpolation arrays per (data path, index)."""
    out = {}
    for fc in all_fcurves(action):
        n = len(fc.keyframe_points)
        fields = {}
        for name, width, dtype in _KEY_FIELDS:
            fields[name] = np.empty(n * width, dtype)
            fc.keyframe_points.foreach_get(name, fields[name])
        out[(fc.data_path, fc.array_index)] = fields
    return out


def _snapshot(action: bpy.types.Action) -> dict[tuple[str, int], bytes]:
    """The Action's keys as bytes (for byte-for-byte comparisons)."""
    return {k: b"".join(v.tobytes() for v in f.values()) for k, f in _keys(action).items()}


def _world_joints(obj: bpy.types.Object, frames: range) -> np.ndarray:
    scene = bpy.context.scene
    out = np.empty((len(frames), 22, 3))
    for t, frame in enumerate(frames):
        scene.frame_set(frame)
        out[t] = [tuple(obj.matrix_world @ obj.pose.bones[n].head) for n in JOINT_NAMES]
    return out


def _user_keyed_armature() -> tuple[bpy.types.Object, bpy.types.Action]:
    """An SMPL-22 armature with a hand-keyed Action (pelvis keys at frames 1 and 20)."""
    obj = armature.create_smpl_armature(bpy.context)
    pelvis = obj.pose.bones["pelvis"]
    pelvis.location = (0.0, 0.0, 0.0)
    pelvis.keyframe_insert("location", frame=1)
    pelvis.location = (0.3, 0.0, 0.1)
    pelvis.keyframe_insert("location", frame=20)
    obj.pose.bones["left_knee"].keyframe_insert("rotation_quaternion", frame=1)
    return obj, obj.animation_data.action


def _tick_until_idle(ticks: int = 5) -> None:
    for _ in range(ticks):
        operators.timer_tick()


def _tick_until_settled(limit: int = 2000) -> int:
    """Call the timer body until no main-thread work is waiting (read-back slices, preparing keys, the write);
    returns the number of ticks."""
    for ticks in range(1, limit + 1):
        operators.timer_tick()
        controller = operators.CONTROLLER
        if not controller.tasks and not any(j.status in ("result", "ready") for j in controller.jobs.values()):
            return ticks
    raise AssertionError(f"still busy after {limit} ticks: {operators.CONTROLLER.summary()}")


def test_smpl_armature_has_humanml3d_rest_names_parents_and_rolls(client) -> None:
    obj = armature.create_smpl_armature(bpy.context)
    bones = obj.data.bones
    assert sorted(b.name for b in bones) == sorted(JOINT_NAMES)
    for j, name in enumerate(JOINT_NAMES):
        parent = bones[name].parent
        assert (parent.name if parent else None) == (JOINT_NAMES[PARENTS[j]] if PARENTS[j] >= 0 else None)
    # Oracle: shared FK of the T-pose offsets with identity rotations (then Blender axes, feet on the ground).
    rest = forward_kinematics(np.tile(np.eye(3), (1, 22, 1, 1)), np.zeros((1, 3)), TPOSE_OFFSETS)[0]
    rest[:, 1] -= rest[:, 1].min()
    heads = np.array([tuple(bones[n].head_local) for n in JOINT_NAMES])
    np.testing.assert_allclose(heads, yup_to_zup(rest), atol=1e-6)
    for name in JOINT_NAMES:  # rolls: Z axis forward (-Y), or up for bones pointing forward
        z_axis = np.array(bones[name].matrix_local.col[2][:3])
        assert max(-z_axis[1], z_axis[2]) > 0.5, (name, z_axis)
    assert all(pb.rotation_mode == "QUATERNION" for pb in obj.pose.bones)


def test_generate_writes_new_actions_following_the_motion(client, clip_012314) -> None:
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = 30, 1.0
    scene.frame_current = 11
    obj, original = _user_keyed_armature()
    before = _snapshot(original)
    settings = scene.motiongpt3
    settings.prompt, settings.seconds, settings.seed, settings.candidates = "a person walks", 4.0, 7, 2
    assert bpy.ops.motion.generate() == {"FINISHED"}
    request_id, kind, fields, _ = client.sent[-1]
    assert kind == "generate" and fields == {"text": "a person walks", "frames": 81, "seed": 7, "candidates": 2}

    features = clip_012314[0][:81]
    motions = np.stack([features, clip_012314[0][40:121]]).astype(np.float32)
    client.queue = [Event("progress", request_id, {"stage": "diffusion", "step": 3, "total": 10, "eta_s": 2.0})]
    actions_before = set(bpy.data.actions)
    operators.timer_tick()
    assert set(bpy.data.actions) == actions_before
    assert operators.CONTROLLER.summary()[1] == pytest.approx(0.3)

    writes_inside_operator = []
    real_write = results.write_takes

    def spy(job, takes):  # every write of a result must come from the UNDO-registered operator
        frames = [f.frame.f_code.co_name for f in inspect.stack()]
        writes_inside_operator.append("execute" in frames and frames.count("tick") == 1)
        return real_write(job, takes)

    results.write_takes = spy
    try:
        client.queue = [Event("result", request_id, {}, {"motions": motions})]
        _tick_until_settled()
    finally:
        results.write_takes = real_write
    assert writes_inside_operator == [True]
    assert {"REGISTER", "UNDO"} <= operators.MOTION_OT_apply_result.bl_options

    new = sorted(set(bpy.data.actions) - actions_before, key=lambda a: a[results.PROP_CANDIDATE])
    assert [a.name for a in new] == ["a person walks · seed 7 · 1/2", "a person walks · seed 7 · 2/2"]
    assert all(a.use_fake_user for a in new)
    assert obj.animation_data.action == new[0]
    assert tuple(new[0].frame_range) == (11.0, 11.0 + 120 - 1)  # 4 s at 30 fps from the current frame
    assert _snapshot(original) == before  # the user's Action is untouched

    # The pelvis moves exactly as the motion says; every bone points where the motion's bone points.
    expected = yup_to_zup(resample_linear(features_to_joints(features), 20.0, 30.0)[:120])
    got = _world_joints(obj, range(11, 131))
    np.testing.assert_allclose(got[:, 0], expected[:, 0], atol=1e-4)
    parents = np.array(PARENTS[1:])
    want_dir = expected[:, 1:] - expected[:, parents]
    got_dir = got[:, 1:] - got[:, parents]
    cos = (want_dir * got_dir).sum(-1) / np.linalg.norm(want_dir, axis=-1) / np.linalg.norm(got_dir, axis=-1)
    assert np.degrees(np.arccos(np.clip(cos, -1, 1))).mean() < 3.0


def test_cancel_during_generation_leaves_the_scene_unchanged(client) -> None:
    obj, original = _user_keyed_armature()
    before, actions = _snapshot(original), set(bpy.data.actions)
    assert bpy.ops.motion.generate() == {"FINISHED"}
    request_id = client.sent[-1][0]
    client.queue = [Event("progress", request_id, {"stage": "diffusion", "step": 1, "total": 10})]
    operators.timer_tick()
    assert bpy.ops.motion.cancel() == {"FINISHED"}
    assert client.cancelled == [request_id]
    motions = np.zeros((1, 81, 263), np.float32)
    client.queue = [Event("result", request_id, {}, {"motions": motions})]  # arrives after the cancel
    _tick_until_idle()
    assert set(bpy.data.actions) == actions and _snapshot(original) == before
    assert obj.animation_data.action == original


def test_backend_lost_shows_an_error_then_reconnects(client) -> None:
    armature.create_smpl_armature(bpy.context)
    assert bpy.ops.motion.generate() == {"FINISHED"}
    request_id = client.sent[-1][0]
    client.connected = False
    client.queue = [
        Event("error", request_id, {"code": "disconnected", "message": "the server is not answering"}),
        Event("disconnected", None, {"message": "tcp://127.0.0.1:5555 is not answering"}),
    ]
    operators.timer_tick()
    assert operators.CONTROLLER.state == "disconnected"
    assert operators.CONTROLLER.jobs[request_id].status == "error"
    assert "not answering" in operators.CONTROLLER.summary()[0]
    client.connected = True
    client.queue = [Event("reconnected", None, {})]
    operators.timer_tick()
    assert operators.CONTROLLER.state == "connected" and operators.CONTROLLER.last_error == ""


def test_caption_of_blender_imported_cmu_bvh_sends_the_cli_features(client, tmp_path) -> None:
    bvh = REFERENCE_DATA / "mocap" / "131_01.bvh"
    try:  # the `motiongpt3 encode` command where the backend is installed (the main environment) ...
        from backend.cli import main as motiongpt3

        assert motiongpt3(["encode", str(bvh), "-o", str(tmp_path / "cli.npy")]) == 0
        expected = np.load(tmp_path / "cli.npy")
    except ImportError:  # ... or what it runs, in the second Blender's environment (no torch there)
        from shared.motion.bone_map import bvh_to_smpl_joints
        from shared.motion.bvh import read_bvh
        from shared.motion.pipeline import encode_joints

        clip = read_bvh(bvh)
        expected = encode_joints(bvh_to_smpl_joints(clip), clip.fps)
    assert bpy.ops.import_anim.bvh(
        filepath=str(bvh), global_scale=1.0, update_scene_fps=True, update_scene_duration=True
    ) == {"FINISHED"}
    obj = bpy.context.view_layer.objects.active
    assert bpy.ops.motion.caption() == {"FINISHED"}
    assert client.sent == []  # the read-back runs in timer slices, not inside the button press
    _tick_until_settled()
    request_id, kind, _, arrays = client.sent[-1]
    assert kind == "caption"
    np.testing.assert_allclose(arrays["features"], expected, atol=2e-4)

    client.queue = [Event("result", request_id, {"caption": "a person walks forward and stops"})]
    _tick_until_settled()
    assert bpy.context.scene.motiongpt3.last_caption == "a person walks forward and stops"
    assert obj.animation_data.action[results.PROP_CAPTION] == "a person walks forward and stops"


def test_inbetween_fills_the_gap_and_keeps_the_users_frames(client, clip_012314) -> None:
    """An echo backend returns the clip it was sent: the filled frames must then reproduce the user's own motion."""
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = 20, 1.0
    obj = armature.create_smpl_armature(bpy.context)
    source_job = operators.Job(
        "src", "generate", obj.name, {"prompt": "user", "seed": 0, "fps": 20.0, "frames": 100, "start_frame": 1}
    )
    source_job.arrays = {"motions": clip_012314[0][None, :100]}
    (user_action,) = results.write_result(source_job)
    truth = _world_joints(obj, range(1, 101))
    before = _snapshot(user_action)
    settings = scene.motiongpt3
    scene.frame_start, scene.frame_end = 1, 100
    settings.gap_start, settings.gap_end = 40, 60
    assert bpy.ops.motion.inbetween() == {"FINISHED"}
    _tick_until_settled()
    request_id, kind, _, arrays = client.sent[-1]
    assert kind == "inbetween" and arrays["features"].shape == (99, 263)
    known = arrays["known"].astype(bool)
    assert not known[39:60].any() and known[:39].all() and known[61:].all()

    client.queue = [Event("result", request_id, {}, {"motions": arrays["features"][None]})]
    _tick_until_settled()
    filled = obj.animation_data.action
    assert filled != user_action and _snapshot(user_action) == before
    got = _world_joints(obj, range(1, 100))
    np.testing.assert_allclose(got[39:60, 0], truth[39:60, 0], atol=0.02)  # through encode → decode → IK
    after = _keys(filled)
    for key, fields in _keys(user_action).items():  # the user's keys outside 40..60 are kept exactly
        frames_before, frames_after = fields["co"][0::2], after[key]["co"][0::2]
        keep_before = (frames_before < 40) | (frames_before > 60)
        keep_after = (frames_after < 40) | (frames_after > 60)
        for name, width, _ in _KEY_FIELDS:
            if name.startswith("handle_"):
                continue  # auto handles are derived data: Blender recomputes them from the neighbouring keys
            np.testing.assert_array_equal(
                after[key][name].reshape(-1, width)[keep_after], fields[name].reshape(-1, width)[keep_before]
            )
        inside = frames_after[~keep_after]
        np.testing.assert_array_equal(inside, np.arange(40, 61))  # the gap holds one new key per frame
