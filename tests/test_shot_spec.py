"""Shot specs: the JSON form round trip, frame bookkeeping, and every refusal as a ShotError naming field and limit."""

from __future__ import annotations

import json

import pytest

from shared.shot import (
    DEFAULT_SHOT_LIMITS,
    ShotError,
    ShotLimits,
    check_shot,
    shot_from_dict,
    shot_request_from_dict,
)

WALK = {"text": "a person walks forward", "seconds": 10}


def test_the_json_form_round_trips_with_defaults_filled():
    data = {
        "segments": [WALK, {"text": "  a person waves  ", "seconds": 2.5}],
        "waypoints": [{"time": 4, "position": [1, 3]}, {"time": 8, "position": [2, 6], "arrive": False, "facing": 45}],
        "paths": [{"start": 9, "end": 12, "points": [[2, 6], [2, 7], [3, 8]]}],
        "targets": [{"joint": "left_hand", "time": 11, "position": [2.5, 1.5, 7.5]}],
    }
    shot = shot_from_dict(data)
    assert shot.segments[1].text == "a person waves"
    assert shot.waypoints[0].arrive is True and shot.waypoints[0].facing is None
    assert shot.targets[0].joint_index == 20  # the left wrist
    again = shot_from_dict(json.loads(json.dumps(shot.to_dict())))
    assert again == shot
    assert shot.seconds == 12.5 and shot.frames == 250 and shot.segment_frames == [200, 50]


def test_segment_frames_add_up_to_the_shot_whatever_the_rounding():
    shot = shot_from_dict({"segments": [{"text": "a", "seconds": 0.525}] * 3})  # 10.5 frames each
    assert sum(shot.segment_frames) == shot.frames == round(3 * 0.525 * 20)
    assert max(shot.segment_frames) - min(shot.segment_frames) <= 1


def refusal(data, limits: ShotLimits = DEFAULT_SHOT_LIMITS) -> ShotError:
    with pytest.raises(ShotError) as caught:
        shot_from_dict(data, limits)
    assert caught.value.message == str(caught.value) and caught.value.message.startswith(caught.value.field + ": ")
    return caught.value


def with_(**extra):
    return {"segments": [WALK], **extra}


REFUSALS = [
    ({}, "segments", "required"),
    ({"segments": []}, "segments", "must not be empty"),
    ({"segments": "walk"}, "segments", "must be a list"),
    ({"segments": [WALK] * 25}, "segments", "25 given; the limit is 24"),
    ({"segments": [{"text": " ", "seconds": 3}]}, "segments[0].text", "non-empty string"),
    ({"segments": [{"text": "a", "seconds": 0.2}]}, "segments[0].seconds", "0.2 is outside 0.5..60"),
    ({"segments": [{"text": "a", "seconds": True}]}, "segments[0].seconds", "must be a number, got bool"),
    ({"segments": [{"text": "a", "seconds": 40}] * 2}, "segments", "80 s in all; the limit is 60 s"),
    ({"segments": [{"text": "a", "seconds": 4, "speed": 2}]}, "segments[0].speed", "not a field"),
    (with_(waypoints=[{"time": 0, "position": [0, 0]}]), "waypoints[0].time", "0 s is outside 0.05..10 s"),
    (with_(waypoints=[{"time": 10.5, "position": [0, 1]}]), "waypoints[0].time", "10.5 s is outside 0.05..10 s"),
    (with_(waypoints=[{"time": "3", "position": [0, 1]}]), "waypoints[0].time", "must be a number, got str"),
    (with_(waypoints=[{"position": [0, 1]}]), "waypoints[0].time", "required"),
    (
        with_(waypoints=[{"time": 3, "position": [0, 1]}, {"time": 3.02, "position": [0, 1.1]}]),
        "waypoints[1].time",
        "within one frame (0.05 s) of waypoints[0]",
    ),
    (with_(waypoints=[{"time": 1, "position": [0, 9]}]), "waypoints[0].position", "needs 9.0 m/s; the limit is 8"),
    (
        with_(waypoints=[{"time": 2, "position": [0, 2]}, {"time": 3, "position": [0, 12]}]),
        "waypoints[1].position",
        "10.00 m in 1.00 s needs 10.0 m/s",
    ),
    (with_(waypoints=[{"time": 5, "position": [0, 60]}]), "waypoints[0].position[1]", "60 is outside -50..50"),
    (with_(waypoints=[{"time": 5, "position": [0, 1, 2]}]), "waypoints[0].position", "a list of 2 numbers"),
    (with_(waypoints=[{"time": 5, "position": [0, 1], "arrive": 1}]), "waypoints[0].arrive", "true or false"),
    (with_(waypoints=[{"time": 5, "position": [0, 1], "facing": 400}]), "waypoints[0].facing", "outside -360..360"),
    (
        with_(waypoints=[{"time": 0.1 * (i + 1), "position": [0, 0.1 * i]} for i in range(33)]),
        "waypoints",
        "33 given; the limit is 32",
    ),
    (with_(paths=[{"start": 1, "end": 5, "points": [[0, 1]]}]), "paths[0].points", "1 given; a path has 2..256"),
    (with_(paths=[{"start": 6, "end": 12, "points": [[0, 1], [0, 2]]}]), "paths[0].end", "must lie in 0..10 s"),
    (with_(paths=[{"start": 5, "end": 4, "points": [[0, 1], [0, 2]]}]), "paths[0].end", "must lie in 0..10 s"),
    (with_(paths=[{"start": 1, "end": 2, "points": [[0, 1], [0, 20]]}]), "paths[0].points", "19.00 m in 1.00 s"),
    (with_(paths=[{"start": 1, "end": 5, "points": [[0, 1], [0, "2"]]}]), "paths[0].points[1][1]", "got str"),
    (with_(paths=[{"start": 1, "end": 5, "points": [[0, 1], [0, 2]]}] * 5), "paths", "5 given; the limit is 4"),
    (with_(targets=[{"joint": "nose", "time": 1, "position": [0, 1, 0]}]), "targets[0].joint", "'nose' is not one"),
    (with_(targets=[{"joint": "head", "time": 11, "position": [0, 1, 0]}]), "targets[0].time", "outside 0..10 s"),
    (with_(targets=[{"joint": "head", "time": 1, "position": [0, 3.5, 0]}]), "targets[0].position[1]", "0..3"),
    (with_(targets=[{"joint": "head", "time": 1, "position": [0, -0.1, 0]}]), "targets[0].position[1]", "0..3"),
    (with_(targets=[{"joint": "head", "time": 1, "position": [0, 1]}]), "targets[0].position", "a list of 3"),
    (
        with_(targets=[{"joint": "head", "time": 1, "position": [0, 1, 0]}] * 17),
        "targets",
        "17 given; the limit is 16",
    ),
    ([WALK], "shot", "must be an object, got list"),
]


@pytest.mark.parametrize(("data", "field", "text"), REFUSALS)
def test_refusals_name_the_field_and_the_limit(data, field, text):
    error = refusal(data)
    assert error.field == field
    assert text in error.message, error.message


def test_limits_can_be_tightened():
    limits = ShotLimits(max_shot_seconds=20.0, max_waypoints=1, max_speed_m_s=1.0)
    assert (
        "25 s in all; the limit is 20 s" in refusal({"segments": [{"text": "a", "seconds": 12.5}] * 2}, limits).message
    )
    too_many = with_(waypoints=[{"time": 2, "position": [0, 1]}, {"time": 4, "position": [0, 2]}])
    assert refusal(too_many, limits).field == "waypoints"
    assert "the limit is 1 m/s" in refusal(with_(waypoints=[{"time": 2, "position": [0, 3]}]), limits).message


def test_a_waypoint_that_need_not_arrive_is_not_held_to_a_pace():
    # 12 m in 1 s would be refused if it had to arrive; passing it some time before the end is fine.
    shot = shot_from_dict(with_(waypoints=[{"time": 1, "position": [0, 12], "arrive": False}]))
    assert check_shot(shot) is shot


def test_a_shot_file_carries_the_sampling_options():
    request = shot_request_from_dict({"segments": [WALK], "seed": 7, "candidates": 2, "guidance": 2.5, "steps": 30})
    assert (request.seed, request.candidates, request.guidance, request.steps) == (7, 2, 2.5, 30)
    for data, field in (
        ({"segments": [WALK], "candidates": 9}, "candidates"),
        ({"segments": [WALK], "seed": -1}, "seed"),
        ({"segments": [WALK], "steps": 1.5}, "steps"),
        ({"segments": [WALK], "guidance": 30}, "guidance"),
        ({"segments": [WALK], "fps": 30}, "fps"),
    ):
        with pytest.raises(ShotError) as caught:
            shot_request_from_dict(data)
        assert caught.value.field == field
