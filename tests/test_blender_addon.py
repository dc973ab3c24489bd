"""The add-on inside real Blender (bpy module): armature, Action writing, read-back, and the job flow driven by
calling the timer body by hand against a scripted client (bpy.app.timers never fire in the module)."""

from __future__ import annotations

import inspect

import bpy
import numpy as np
import pytest
from reference import CLIP_131, gunzip_to
from scripted_client import Event

from blender_addon import armature, jobs, operators, results, rig_math
from blender_addon.action_io import all_fcurves, assign_action
from shared.motion.axes import yup_to_zup, zup_to_yup
from shared.motion.bone_map import bvh_to_smpl_joints
from shared.motion.bvh import read_bvh
from shared.motion.humanml3d import features_to_joints
from shared.motion.ik import forward_kinematics
from shared.motion.pipeline import encode_joints
from shared.motion.resample import resample_linear
from shared.motion.retarget import on_smpl_body
from shared.motion.skeleton import JOINT_NAMES, PARENTS, TPOSE_OFFSETS

pytestmark = pytest.mark.usefixtures("addon")


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


def test_generate_writes_new_actions_following_the_motion(client, cmu_walk) -> None:
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

    features = cmu_walk[0][:81]
    motions = np.stack([features, cmu_walk[0][40:121]]).astype(np.float32)
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


def test_caption_of_blender_imported_cmu_bvh_sends_the_clip_on_smpl_body(client, tmp_path) -> None:
    bvh = gunzip_to(CLIP_131, tmp_path)  # Blender's importer reads plain .bvh files
    assert bpy.ops.import_anim.bvh(
        filepath=str(bvh), global_scale=1.0, update_scene_fps=True, update_scene_duration=True
    ) == {"FINISHED"}
    obj = bpy.context.view_layer.objects.active
    assert bpy.ops.motion.caption() == {"FINISHED"}
    assert client.sent == []  # the read-back runs in timer slices, not inside the button press
    _tick_until_settled()
    request_id, kind, _, arrays = client.sent[-1]
    assert kind == "caption"
    # What `motiongpt3 encode` reads from the file (our BVH reader and FK, not Blender's importer and evaluation),
    # carried onto SMPL's body as every read-back is (the rig's rest and facing from the imported armature, whose
    # units are the BVH's: the bone map's unit_to_metres).
    clip = read_bvh(bvh)
    bone_map = armature.rig_bone_map(obj)
    target = rig_math.rig_target(armature.rig_rest(obj), bone_map, np.array(obj.matrix_world), bone_map.unit_to_metres)
    on_smpl = on_smpl_body(target.frame.world_to_character(bvh_to_smpl_joints(clip)), target.rest_joints, clip.fps)
    np.testing.assert_allclose(arrays["features"], encode_joints(on_smpl, clip.fps), atol=2e-4)
    # The CLI keeps HumanML3D's own convention (root scaled by the shin on frame 0, bones by direction): the same
    # motion up to the travel, which the add-on scales by the whole leg instead.
    cli = features_to_joints(encode_joints(bvh_to_smpl_joints(clip), clip.fps))
    sent = features_to_joints(arrays["features"])
    travel = lambda j: np.linalg.norm(np.diff(j[:, 0, [0, 2]], axis=0), axis=-1).sum()  # noqa: E731
    assert 0.9 < travel(sent) / travel(cli) < 1.1

    client.queue = [Event("result", request_id, {"caption": "a person walks forward and stops"})]
    _tick_until_settled()
    assert bpy.context.scene.motiongpt3.last_caption == "a person walks forward and stops"
    assert obj.animation_data.action[results.PROP_CAPTION] == "a person walks forward and stops"


def test_inbetween_fills_the_gap_and_keeps_the_users_frames(client, cmu_walk) -> None:
    """An echo backend returns the clip it was sent: the filled frames must then reproduce the user's own motion."""
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = 20, 1.0
    obj = armature.create_smpl_armature(bpy.context)
    source_job = operators.Job(
        "src", "generate", obj.name, {"prompt": "user", "seed": 0, "fps": 20.0, "frames": 100, "start_frame": 1}
    )
    source_job.arrays = {"motions": cmu_walk[0][None, :100]}
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


def _user_clip_armature(clip_features: np.ndarray, frames: int) -> tuple[bpy.types.Object, bpy.types.Action]:
    """An SMPL-22 armature whose assigned Action holds a real motion (HumanML3D clip) keyed on frames 1..`frames`."""
    obj = armature.create_smpl_armature(bpy.context)
    source_job = operators.Job(
        "src", "generate", obj.name, {"prompt": "user", "seed": 0, "fps": 20.0, "frames": frames, "start_frame": 1}
    )
    source_job.arrays = {"motions": clip_features[None, : frames + 1]}
    (user_action,) = results.write_result(source_job)
    user_action.name = "user take"
    return obj, user_action


def _assert_keys_equal_outside(after: dict, before: dict, span: tuple[float, float]) -> None:
    """Every key of `before` outside `span` is in `after` with the same frame, value and interpolation."""
    for key, fields in before.items():
        frames_before, frames_after = fields["co"][0::2], after[key]["co"][0::2]
        keep_before = (frames_before < span[0]) | (frames_before > span[1])
        keep_after = (frames_after < span[0]) | (frames_after > span[1])
        for name in ("co", "interpolation"):
            width = 2 if name == "co" else 1
            np.testing.assert_array_equal(
                after[key][name].reshape(-1, width)[keep_after], fields[name].reshape(-1, width)[keep_before]
            )


def test_predict_keeps_the_users_frames_and_continues_the_motion(client, cmu_walk) -> None:
    """The scripted backend continues the clip with the clip itself (prefix kept, as the real one does): the new
    Action must hold the user's keys before (and after) the predicted span unchanged and follow the true motion."""
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = 20, 1.0
    obj, user_action = _user_clip_armature(cmu_walk[0], 100)
    truth = _world_joints(obj, range(1, 101))
    before, user_keys = _snapshot(user_action), _keys(user_action)
    settings = scene.motiongpt3
    scene.frame_start, scene.frame_end, settings.predict_frames = 1, 60, 30
    assert bpy.ops.motion.predict() == {"FINISHED"}
    _tick_until_settled()
    request_id, kind, fields, arrays = client.sent[-1]
    assert kind == "predict" and fields["frames"] == 31 and arrays["features"].shape == (59, 263)
    client.queue = [Event("result", request_id, {}, {"motions": cmu_walk[0][None, :90]})]
    _tick_until_settled()

    predicted = obj.animation_data.action
    assert predicted not in (None, user_action) and predicted.use_fake_user
    assert _snapshot(user_action) == before  # the user's Action itself is untouched
    after = _keys(predicted)
    _assert_keys_equal_outside(after, user_keys, (61, 90))  # frames 1..60 and 91..100: the user's keys, exactly
    for fields_after in after.values():
        frames = fields_after["co"][0::2]
        np.testing.assert_array_equal(frames[(frames >= 61) & (frames <= 90)], np.arange(61, 91))
    got = _world_joints(obj, range(1, 101))
    np.testing.assert_array_equal(got[:60], truth[:60])  # the context frames are exactly the user's pose
    np.testing.assert_allclose(got[60:90, 0], truth[60:90, 0], atol=0.02)  # continued as the motion continues


def test_candidates_become_actions_and_the_switcher_assigns_them(client, cmu_walk) -> None:
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = 20, 1.0
    scene.frame_current = 1
    obj, original = _user_keyed_armature()
    before = _snapshot(original)
    settings = scene.motiongpt3
    settings.prompt, settings.length_unit, settings.frames, settings.seed, settings.candidates = (
        "a hop",
        "FRAMES",
        40,
        5,
        3,
    )
    assert bpy.ops.motion.generate() == {"FINISHED"}
    request_id = client.sent[-1][0]
    clips = cmu_walk[0]
    motions = np.stack([clips[0:40], clips[60:100], clips[120:160]]).astype(np.float32)
    actions_before = set(bpy.data.actions)
    client.queue = [Event("result", request_id, {}, {"motions": motions})]
    _tick_until_settled()
    new = sorted(set(bpy.data.actions) - actions_before, key=lambda a: a.name)
    assert [a.name for a in new] == [f"a hop · seed 5 · {k}/3" for k in (1, 2, 3)]
    assert all(a.use_fake_user for a in new)
    assert [a[results.PROP_CANDIDATE] for a in new] == [0, 1, 2]
    assert {a[results.PROP_GROUP] for a in new} == {request_id} == {obj["motiongpt3_last_group"]}
    assert obj.animation_data.action == new[0]
    # The replaced Action keeps a user (fake user), so saving the file does not drop it.
    assert original.use_fake_user and original.name in bpy.data.actions
    candidate_keys = {a.name: _snapshot(a) for a in new}

    def pelvis_follows(k: int) -> None:
        expected = yup_to_zup(features_to_joints(motions[k])[:40, 0])
        got = _world_joints(obj, range(1, 41))[:, 0]
        np.testing.assert_allclose(got, expected, atol=1e-4)

    pelvis_follows(0)
    bpy.context.view_layer.objects.active = obj
    for k in (1, 2, 0):
        assert bpy.ops.motion.use_candidate(action=new[k].name) == {"FINISHED"}
        assert obj.animation_data.action == new[k]
        pelvis_follows(k)
    assert bpy.ops.motion.use_candidate(action=original.name) == {"FINISHED"}
    assert obj.animation_data.action == original
    assert _snapshot(original) == before  # switching never modifies any Action
    assert {a.name: _snapshot(a) for a in new} == candidate_keys


def _library_armature() -> tuple[bpy.types.Object, list[bpy.types.Action], bpy.types.Action]:
    """An SMPL-22 armature with three hand-keyed Actions (the first assigned) and one Action of another rig."""
    obj = armature.create_smpl_armature(bpy.context)
    library = []
    for k, (length, lift) in enumerate(((24, 0.2), (30, 0.5), (36, 0.8))):
        action = bpy.data.actions.new(f"mocap {k}")
        action.use_fake_user = True
        assign_action(obj, action)
        pelvis = obj.pose.bones["pelvis"]
        for frame, z in ((1, 0.0), (length, lift)):
            pelvis.location = (0.1 * k, 0.0, z)
            pelvis.keyframe_insert("location", frame=frame)
        library.append(action)
    other = bpy.data.actions.new("camera move")
    other.use_fake_user = True
    camera = bpy.data.objects.new("cam", None)
    bpy.context.scene.collection.objects.link(camera)
    camera.location = (0.0, 0.0, 0.0)
    camera.keyframe_insert("location", frame=1)
    camera.location = (1.0, 0.0, 0.0)
    camera.keyframe_insert("location", frame=10)
    camera.animation_data.action.name = "camera move"
    assign_action(obj, library[0])
    return obj, library, bpy.data.actions["camera move"]


def _oracle_features(obj: bpy.types.Object, action: bpy.types.Action) -> np.ndarray:
    """Features of `action` on `obj` by an independent read: assign, FK through frame_set + pose-bone heads."""
    anim = obj.animation_data
    previous = anim.action
    assign_action(obj, action)
    first, last = (round(f) for f in action.frame_range)
    joints = zup_to_yup(_world_joints(obj, range(first, last + 1)))
    assign_action(obj, previous)
    return encode_joints(joints, float(bpy.context.scene.render.fps))


def test_caption_all_labels_every_action_of_the_armature(client, monkeypatch) -> None:
    monkeypatch.setattr(jobs, "SLICE_S", 0.0)  # one slice per tick: the batch spreads over many ticks
    scene = bpy.context.scene
    scene.render.fps = 20
    obj, library, other = _library_armature()
    oracle = {a.name: _oracle_features(obj, a) for a in library}
    scene.frame_set(7)
    snapshots = {a.name: _snapshot(a) for a in [*library, other]}
    assert bpy.ops.motion.caption_all() == {"FINISHED"}
    ticks = 0
    while operators.CONTROLLER.tasks:
        operators.timer_tick()
        ticks += 1
        # Between ticks the scene is as the user left it: frame, assigned Action.
        assert scene.frame_current == 7 and obj.animation_data.action == library[0]
    assert ticks > 3
    assert [kind for _, kind, _, _ in client.sent] == ["caption"] * 3  # the camera's Action is not the rig's
    captions = {}
    for request_id, _, _, arrays in client.sent:  # which Action each request carries, by its features
        (name,) = [n for n, f in oracle.items() if f.shape == arrays["features"].shape]
        np.testing.assert_allclose(arrays["features"], oracle[name], atol=1e-4)
        captions[request_id] = f"caption of {name}"
    assert len(set(captions.values())) == 3
    for done, (request_id, caption) in enumerate(captions.items()):
        assert operators.CONTROLLER.summary()[:2] == (f"captioning {done}/3 Actions", pytest.approx(done / 3))
        client.queue = [Event("result", request_id, {"caption": caption})]
        _tick_until_settled()
    for action in library:
        assert action[results.PROP_CAPTION] == f"caption of {action.name}"
    assert results.PROP_CAPTION not in other
    assert {a.name: _snapshot(a) for a in [*library, other]} == snapshots  # captions only: no key changed


def test_cancel_mid_batch_leaves_the_remaining_actions_untouched(client, monkeypatch) -> None:
    monkeypatch.setattr(jobs, "SLICE_S", 0.0)
    scene = bpy.context.scene
    scene.render.fps, scene.frame_current = 20, 3
    obj, library, _ = _library_armature()
    snapshots = {a.name: _snapshot(a) for a in library}
    assert bpy.ops.motion.caption_all() == {"FINISHED"}
    while len(client.sent) < 2:
        operators.timer_tick()
    assert len(client.sent) == 2 and operators.CONTROLLER.tasks  # the third Action is not sent yet
    first, second = client.sent[0][0], client.sent[1][0]
    client.queue = [Event("result", first, {"caption": "first caption"})]
    _tick_until_settled_or_reading(first)
    assert bpy.ops.motion.cancel() == {"FINISHED"}
    assert second in client.cancelled and not operators.CONTROLLER.tasks
    client.queue = [Event("result", second, {"caption": "too late"})]  # arrives after the cancel
    _tick_until_idle()
    assert len(client.sent) == 2  # nothing more is read or sent
    captioned = [a for a in library if results.PROP_CAPTION in a]
    assert len(captioned) == 1 and captioned[0][results.PROP_CAPTION] == "first caption"
    assert {a.name: _snapshot(a) for a in library} == snapshots
    assert scene.frame_current == 3 and obj.animation_data.action == library[0]
    assert operators.CONTROLLER.summary()[0] == "idle"


def _tick_until_settled_or_reading(request_id: str, limit: int = 100) -> None:
    """Tick until the job `request_id` is done (other main-thread work may still be waiting)."""
    for _ in range(limit):
        operators.timer_tick()
        if operators.CONTROLLER.jobs[request_id].status == "done":
            return
    raise AssertionError(operators.CONTROLLER.jobs[request_id].message)


def test_opening_another_file_cancels_reads_and_jobs_in_flight(client, monkeypatch) -> None:
    monkeypatch.setattr(jobs, "SLICE_S", 0.0)
    obj, _ = _user_keyed_armature()
    assert bpy.ops.motion.generate() == {"FINISHED"}
    request_id = client.sent[-1][0]
    bpy.context.view_layer.objects.active = obj
    assert bpy.ops.motion.caption() == {"FINISHED"}
    operators.timer_tick()  # the read is under way, the generation in flight
    assert operators.CONTROLLER.tasks and operators.CONTROLLER.active()
    bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)  # runs the load_pre handler
    assert not operators.CONTROLLER.tasks and not operators.CONTROLLER.active()
    assert client.cancelled == [request_id]
    actions = set(bpy.data.actions)
    client.queue = [Event("result", request_id, {}, {"motions": np.zeros((1, 81, 263), np.float32)})]
    _tick_until_idle()
    assert set(bpy.data.actions) == actions and len(client.sent) == 1  # nothing lands in the new file
