"""Long takes in the add-on (real Blender, scripted backend): a caption of a read range longer than the model's window
asks for segments and places one timeline marker per segment; predict and in-between send the window around the
requested span; what cannot fit is refused naming the frames and the limit."""

from __future__ import annotations

import json

import bpy
import numpy as np
import pytest
from scripted_client import Event

from blender_addon import armature, operators, results

pytestmark = pytest.mark.usefixtures("addon")

TAKE = 600  # scene frames at 20 fps: 30 s


def _tick_until_settled(limit: int = 5000) -> None:
    for _ in range(limit):
        operators.timer_tick()
        controller = operators.CONTROLLER
        if not controller.tasks and not any(j.status in ("result", "ready") for j in controller.jobs.values()):
            return
    raise AssertionError(f"still busy after {limit} ticks: {operators.CONTROLLER.summary()}")


@pytest.fixture
def long_take(client, cmu_walk):
    """An SMPL-22 armature whose Action holds 30 s of real motion (CMU walk, repeated) on frames 1..600 at 20 fps."""
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = 20, 1.0
    obj = armature.create_smpl_armature(bpy.context)
    features = np.concatenate([cmu_walk[0]] * 4)[: TAKE + 1]
    job = operators.Job("src", "generate", obj.name, {"prompt": "take", "seed": 0, "fps": 20.0, "frames": TAKE,
                                                     "start_frame": 1})  # fmt: skip
    job.arrays = {"motions": features[None]}
    (action,) = results.write_result(job)
    action.name = "long take"
    scene.frame_start, scene.frame_end = 1, TAKE
    return obj, action


def test_a_long_caption_places_one_marker_per_segment(client, long_take):
    _, action = long_take
    scene = bpy.context.scene
    scene.timeline_markers.new("my own marker", frame=100)
    assert bpy.ops.motion.caption() == {"FINISHED"}
    _tick_until_settled()
    request_id, kind, fields, arrays = client.sent[-1]
    assert kind == "caption" and fields == {"segments": True} and arrays["features"].shape == (TAKE - 1, 263)
    segments = [
        {"start_s": 0.0, "end_s": 9.8, "caption": "a person walks forward"},
        {"start_s": 7.8, "end_s": 17.6, "caption": "a person walks forward"},
        {"start_s": 15.6, "end_s": 25.4, "caption": "a person turns around " + "and keeps walking " * 6},
        {"start_s": 23.4, "end_s": 29.95, "caption": "a person stops"},
    ]
    joined = "a person walks forward; a person turns around; a person stops"
    client.queue = [Event("result", request_id, {"caption": joined, "segments": segments})]
    _tick_until_settled()
    markers = sorted((m.frame, m.name) for m in scene.timeline_markers)
    long_name = results.marker_name(segments[2]["caption"])
    assert len(long_name.encode()) <= 63 and long_name.endswith("…")
    assert markers == [
        (1, "a person walks forward"),
        (100, "my own marker"),
        (157, "a person walks forward"),  # 1 + 7.8 s x 20 fps
        (313, long_name),
        (469, "a person stops"),
    ]
    assert action[results.PROP_CAPTION] == joined
    assert json.loads(action[results.PROP_SEGMENTS])[3] == [23.4, 29.95, "a person stops"]

    assert bpy.ops.motion.caption() == {"FINISHED"}  # captioned again: its markers replace the earlier ones
    _tick_until_settled()
    request_id = client.sent[-1][0]
    again = [{"start_s": 0.0, "end_s": 29.95, "caption": "a walk"}]
    client.queue = [Event("result", request_id, {"caption": "a walk", "segments": again})]
    _tick_until_settled()
    assert sorted((m.frame, m.name) for m in scene.timeline_markers) == [(1, "a walk"), (100, "my own marker")]
    assert results.PROP_SEGMENTS not in action


def test_a_short_caption_sends_no_segments_field_and_marks_its_start(client, long_take):
    scene = bpy.context.scene
    scene.frame_start, scene.frame_end = 50, 149  # 5 s
    assert bpy.ops.motion.caption() == {"FINISHED"}
    _tick_until_settled()
    request_id, _, fields, arrays = client.sent[-1]
    assert fields == {} and arrays["features"].shape == (99, 263)
    client.queue = [Event("result", request_id, {"caption": "a person walks"})]
    _tick_until_settled()
    assert [(m.frame, m.name) for m in scene.timeline_markers] == [(50, "a person walks")]


def test_predict_after_a_long_range_sends_the_last_window(client, long_take):
    settings = bpy.context.scene.motiongpt3
    settings.predict_frames = 30  # 31 frames at 20 fps with the joining frame: 165 frames of context fit
    assert bpy.ops.motion.predict() == {"FINISHED"}
    _tick_until_settled()
    job = operators.CONTROLLER.jobs[client.sent[-1][0]]
    _, kind, fields, arrays = client.sent[-1]
    assert kind == "predict" and fields["frames"] == 31
    assert arrays["features"].shape == (196 - 31, 263)
    assert job.params["first_frame"] == TAKE - (196 - 31)  # scene frames first..600 give 165 feature frames
    assert job.params["span"] == (TAKE + 1, TAKE + 30)


def test_inbetween_in_a_long_range_sends_the_window_around_the_gap(client, long_take):
    settings = bpy.context.scene.motiongpt3
    settings.gap_start, settings.gap_end = 300, 320
    assert bpy.ops.motion.inbetween() == {"FINISHED"}
    _tick_until_settled()
    job = operators.CONTROLLER.jobs[client.sent[-1][0]]
    _, kind, _, arrays = client.sent[-1]
    assert kind == "inbetween" and len(arrays["features"]) == 196
    first = job.params["first_frame"]
    known = arrays["known"].astype(bool)
    gap = np.flatnonzero(~known) + first  # scene frames of the unknown feature frames (20 fps = scene fps)
    assert (gap.min(), gap.max()) == (300, 320)
    assert 300 - first == pytest.approx(first + 196 - 320, abs=2)  # as much context on each side


def test_a_gap_longer_than_the_window_is_refused_naming_it(client, long_take):
    settings = bpy.context.scene.motiongpt3
    settings.gap_start, settings.gap_end = 100, 400
    with pytest.raises(RuntimeError, match=r"filled frames 100-400 .* 302 frames at 20 fps.*window of 196 frames"):
        bpy.ops.motion.inbetween()
    assert client.sent == []
