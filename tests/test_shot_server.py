"""A shot end to end through the server with the embedded demo model: a 3-segment 25 s sequence with two waypoints
(the issue's figures), refusals that name the field, cancellation, and the server serving on."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from serving import connected_client, final_of, running, running_server, wait_for

from backend import load_model
from backend.bench.shot import natural_pace_waypoints
from backend.eval.text_checks import passes
from shared.motion.humanml3d import features_to_joints
from shared.motion.shot_math import (
    constraint_errors,
    foot_sliding,
    jerk,
    peak_jerk_near,
    pelvis_speed,
    sliding_per_speed,
)

SEGMENTS = [
    {"text": "a person walks forward", "seconds": 10},
    {"text": "a person waves the right hand", "seconds": 5},
    {"text": "a person walks forward", "seconds": 10},
]
WAYPOINTS = [{"time": 9, "position": [2.0, 5.0]}, {"time": 24, "position": [-1.5, 9.5]}]


@pytest.fixture(scope="module")
def demo():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield load_model(None, device="cpu")
    torch.set_num_threads(threads)


def test_a_25_s_three_prompt_shot_with_two_waypoints(demo):
    with running_server(demo) as server, connected_client(server.address) as client:
        constrained = client.submit("shot", {"segments": SEGMENTS, "waypoints": WAYPOINTS, "seed": 1})
        free = client.submit("shot", {"segments": SEGMENTS, "seed": 1})
        done = final_of(client, constrained, timeout_s=300)
        baseline = final_of(client, free, timeout_s=300)
        assert done.type == "result" and baseline.type == "result", (done.fields, baseline.fields)
        # The same two legs at the pace the unconstrained shot walks them, each turned by +-30 degrees.
        natural = [
            {"time": w.time, "position": list(w.position)}
            for w in natural_pace_waypoints(baseline.arrays["motions"][0], [w["time"] for w in WAYPOINTS])
        ]
        paced = final_of(client, client.submit("shot", {"segments": SEGMENTS, "waypoints": natural, "seed": 1}), 300)
    assert paced.type == "result", paced.fields
    stages = {e.fields["stage"] for e in client.of(constrained) if e.type == "progress"}
    assert stages == {"queued", "shot"}
    (motion,), (unconstrained,) = done.arrays["motions"], baseline.arrays["motions"]
    assert motion.shape == (500, 263) and motion.dtype == np.float32

    joints = features_to_joints(motion)  # HumanML3D's own decoding of what came over the wire
    for waypoint in WAYPOINTS:
        frame = round(waypoint["time"] * 20)
        assert np.linalg.norm(joints[frame, 0, [0, 2]] - waypoint["position"]) < 0.10, waypoint
    (reported,) = done.fields["constraint_errors"]
    assert reported["waypoints_m"] == pytest.approx(
        [np.linalg.norm(joints[round(w["time"] * 20), 0, [0, 2]] - w["position"]) for w in WAYPOINTS], abs=1e-3
    )
    assert baseline.fields["constraint_errors"] == []
    # Steering adds no foot sliding (contact frames) over the same shot without waypoints. The demo model's planted
    # feet glide along with its pelvis, so sliding in cm/s follows the pace alone: these waypoints ask for one pace
    # whatever the model (46.3-46.8 cm/s steered, seeds 1-5, for the model before the installed one; 47.0-47.3 for
    # the installed one, seeds 0-4), while unconstrained the 7-stage model walked slower (38-40 cm/s) and the installed
    # one walks faster (54.6-56.2 cm/s). So the figures are judged per m/s of pelvis speed (installed, seeds
    # 0-4: 1.012-1.019 steered against 1.012-1.018 unconstrained; a steering that dragged planted feet would raise it
    # towards the pelvis's own speed and beyond), and in cm/s at the same pace. Waypoints at the unconstrained shot's
    # pace keep its pace to ~2 % (the installed model walks them 1.4-2.4 % faster, seeds 0-4: +0.65 to +1.11 cm/s of
    # sliding in raw cm/s, -0.09 to -0.19 at the same pace), so the premise is checked and the sliding compared at
    # the unconstrained pelvis speed.
    assert sliding_per_speed(motion) <= sliding_per_speed(unconstrained) + 0.01
    (at_pace,) = paced.arrays["motions"]
    pace_ratio = pelvis_speed(at_pace) / pelvis_speed(unconstrained)
    assert abs(pace_ratio - 1.0) < 0.03, pace_ratio
    assert 100 * foot_sliding(at_pace) / pace_ratio <= 100 * foot_sliding(unconstrained) + 1.0
    assert max(paced.fields["constraint_errors"][0]["waypoints_m"]) < 0.10
    # Each segment does what its text says, with and without the waypoints.
    for features in (motion, unconstrained):
        decoded = features_to_joints(features)
        assert passes(SEGMENTS[0]["text"], decoded[:200])
        assert passes(SEGMENTS[1]["text"], decoded[200:300])
        assert passes(SEGMENTS[2]["text"], decoded[300:])
    # One continuous motion: no frame-to-frame jump of any joint at the segment joins beyond the motion's own.
    steps = np.linalg.norm(np.diff(joints, axis=0), axis=-1).max(axis=1)
    near = np.zeros(len(steps), bool)
    for join in (200, 300):
        near[join - 3 : join + 3] = True
    assert steps[near].max() <= steps[~near].max()
    # ... and the transitions are smooth: the peak jerk within 5 frames of a join is below the shot's median jerk
    # (without the join smoothing it is about 3x the median, and plain concatenation 7-10x its own).
    for features in (motion, unconstrained):
        assert peak_jerk_near(features_to_joints(features), [200, 300]) < np.median(jerk(features_to_joints(features)))
    assert constraint_errors(motion, _shot()).waypoints == pytest.approx(reported["waypoints_m"], abs=1e-3)


def _shot():
    from shared.shot import shot_from_dict

    return shot_from_dict({"segments": SEGMENTS, "waypoints": WAYPOINTS})


def test_refused_and_cancelled_shots_leave_the_server_serving(demo):
    with running_server(demo) as server, connected_client(server.address) as client:
        bad = client.submit("shot", {"segments": SEGMENTS, "waypoints": [{"time": 30, "position": [0, 1]}]})
        refused = final_of(client, bad)
        assert refused.type == "error" and refused.fields["code"] == "bad_request"
        assert refused.fields["field"] == "waypoints[0].time"
        assert refused.fields["message"] == "waypoints[0].time: 30 s is outside 0.05..25 s (the shot)"
        many = client.submit("shot", {"segments": [{"text": "a person walks", "seconds": 1}] * 25})
        assert final_of(client, many).fields["message"] == "segments: 25 given; the limit is 24"

        long_shot = client.submit("shot", {"segments": SEGMENTS, "waypoints": WAYPOINTS, "candidates": 4})
        running(client, long_shot)
        client.cancel(long_shot)
        assert final_of(client, long_shot).type == "cancelled"

        ok = client.submit("shot", {"segments": [{"text": "a person walks forward", "seconds": 2}], "seed": 3})
        result = final_of(client, ok, timeout_s=120)
        assert result.type == "result" and result.arrays["motions"].shape == (1, 40, 263)
        wait_for(client, lambda e: e.request_id == ok and e.final)
