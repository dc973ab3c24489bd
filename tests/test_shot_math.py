"""Shot math against hand-derived cases and the HumanML3D reference decoding: pelvis path and facing, paths timed
along their length, distances to polylines, constraint errors, foot sliding, jerk and the smoothing of joins."""

from __future__ import annotations

import numpy as np
import pytest

from shared.motion.humanml3d import features_to_joints, gaussian_smooth
from shared.motion.shot_math import (
    NO_JOIN_SMOOTHING,
    JoinSmoothing,
    constraint_errors,
    facing_of_joints,
    foot_sliding,
    jerk,
    path_positions,
    peak_jerk_near,
    pelvis_speed,
    polyline_distance,
    root_path,
    sliding_per_speed,
    smooth_joins,
    waypoint_window,
)
from shared.shot import Path, ReachTarget, Segment, Shot, Waypoint


def walking_features(frames: int, step: float, half_turn: float = 0.0, height: float = 0.9) -> np.ndarray:
    """Features that move the pelvis `step` m forward per frame while turning by `half_turn` (feature 0) per frame;
    the rest of the body at zero offsets (enough for the root and the pelvis)."""
    features = np.zeros((frames, 263))
    features[:, 0] = half_turn
    features[:, 2] = step
    features[:, 3] = height
    return features


def test_a_straight_walk_goes_forward_at_its_step():
    path, facing = root_path(walking_features(41, 0.05))
    np.testing.assert_allclose(path[:, 0], 0.0, atol=1e-12)
    np.testing.assert_allclose(path[:, 1], 0.05 * np.arange(41), atol=1e-12)  # 1 m/s for 2 s -> 2 m
    np.testing.assert_allclose(facing, 0.0, atol=1e-12)


def test_a_turning_walk_follows_the_hand_derived_arc():
    # Feature 0 is half the yaw step, with the opposite sign: -pi/40 per frame turns the facing by +pi/20 (9 degrees)
    # a frame towards +X; the step into frame t is taken along frame t's facing.
    step, frames = 0.1, 11
    path, facing = root_path(walking_features(frames, step, half_turn=-np.pi / 40))
    np.testing.assert_allclose(facing, np.arange(frames) * np.pi / 20, atol=1e-12)
    angles = np.arange(1, frames) * np.pi / 20
    expected = np.concatenate([[[0.0, 0.0]], np.cumsum(step * np.stack([np.sin(angles), np.cos(angles)], 1), 0)])
    np.testing.assert_allclose(path, expected, atol=1e-12)
    assert facing[10] == pytest.approx(np.pi / 2)  # after 10 frames it faces +X


def test_root_facing_agrees_with_the_body_on_a_real_walk(cmu_walk):
    features, _ = cmu_walk
    _, facing = root_path(features)
    body = np.unwrap(facing_of_joints(features_to_joints(features)))
    # The root's facing is HumanML3D's heading: the body's facing smoothed over time (sigma 20 frames) when the clip
    # was encoded; this clip turns, so unsmoothed they differ by up to 63 degrees mid-turn.
    off = np.rad2deg(np.abs(np.angle(np.exp(1j * (facing - gaussian_smooth(body, 20.0))))))
    assert np.median(off) < 6 and off.max() < 15, np.percentile(off, [50, 100])


def test_facing_of_joints_reads_a_t_pose_turned_by_hand():
    joints = np.zeros((1, 22, 3))
    joints[0, 1], joints[0, 2] = [0.1, 0, 0], [-0.1, 0, 0]  # left hip at +X, right at -X: facing +Z
    joints[0, 16], joints[0, 17] = [0.2, 1.4, 0], [-0.2, 1.4, 0]
    assert facing_of_joints(joints)[0] == pytest.approx(0.0)
    turn = np.array(
        [[0, 0, 1], [0, 1, 0], [-1, 0, 0]], float
    )  # +90 degrees about +Y: +Z -> +X: facing +X is +90 degrees
    assert facing_of_joints(joints @ turn.T)[0] == pytest.approx(np.pi / 2)


def test_a_path_is_walked_at_an_even_pace_along_its_length():
    points = np.array([[0.0, 0.0], [0.0, 3.0], [4.0, 3.0]])  # 3 m then 4 m: 7 m from t=2 to t=9 -> 1 m/s
    times = np.array([0.0, 2.0, 3.5, 5.0, 7.0, 9.0, 12.0])
    expected = [[0, 0], [0, 0], [0, 1.5], [0, 3.0], [2.0, 3.0], [4.0, 3.0], [4.0, 3.0]]
    np.testing.assert_allclose(path_positions(points, 2.0, 9.0, times), expected, atol=1e-12)


def test_distance_to_a_polyline():
    polyline = np.array([[0.0, 0.0], [2.0, 0.0], [2.0, 2.0]])
    points = np.array([[1.0, 0.5], [3.0, 1.0], [-1.0, 0.0], [2.5, 3.0], [2.0, 1.0]])
    expected = [0.5, 1.0, 1.0, np.hypot(0.5, 1.0), 0.0]
    np.testing.assert_allclose(polyline_distance(points, polyline), expected, atol=1e-12)


def test_a_waypoint_that_need_not_arrive_may_be_passed_between_its_neighbours():
    times, arrive = [2.0, 5.0, 8.0], [True, False, True]
    assert waypoint_window(times, arrive, 0, 10.0) == (2.0, 2.0)
    assert waypoint_window(times, arrive, 1, 10.0) == (2.0, 8.0)
    assert waypoint_window([5.0], [False], 0, 10.0) == (0.0, 10.0)


def test_constraint_errors_of_a_straight_walk():
    features = walking_features(81, 0.05)  # 1 m/s along +Z for 4 s
    shot = Shot(
        (Segment("a person walks", 4.0),),
        waypoints=(
            Waypoint(2.0, (0.3, 2.0)),  # at 2 s the pelvis is at (0, 2): 0.3 m off
            Waypoint(3.0, (0.0, 1.0), arrive=False),  # passed at 1 s, before its window 2..3.9 s: 1 m off at 2 s
            Waypoint(3.9, (0.0, 3.5), arrive=False, facing=90.0),  # passed at 3.5 s facing 0: 90 degrees off
        ),
        paths=(Path(0.0, 4.0, ((0.0, 0.0), (0.0, 2.0), (0.4, 4.0))),),
        targets=(ReachTarget("pelvis", 1.0, (0.0, 0.9, 1.0)), ReachTarget("pelvis", 2.0, (0.0, 1.2, 2.4))),
    )
    errors = constraint_errors(features, shot)
    assert errors.waypoints == pytest.approx((0.3, 1.0, 0.0), abs=1e-9)
    assert errors.facing_deg == pytest.approx((90.0,), abs=1e-6)
    assert errors.targets == pytest.approx((0.0, 0.5), abs=1e-9)
    # Frames 0..40 lie on the first leg; after 2 s the walk goes straight on while the path bends off by 0.4 m.
    z = 0.05 * np.arange(81)
    distance = polyline_distance(np.stack([np.zeros(81), z], 1), np.array([[0, 0], [0, 2], [0.4, 4]]))
    assert errors.path_mean == pytest.approx((distance.mean(),))
    assert errors.path_max == pytest.approx((2.0 * 0.4 / np.hypot(0.4, 2.0),))  # at z = 4, across the bent leg


def test_foot_sliding_averages_the_speed_of_planted_feet_only():
    frames = 21
    features = np.zeros((frames, 263))
    joints = np.zeros((frames, 22, 3))
    joints[:, 7, 0] = 0.025 * np.arange(frames)  # left ankle slides at 0.5 m/s
    joints[:, 10, 2] = 0.05 * np.arange(frames)  # left foot moves at 1 m/s but is not planted
    features[:, 259] = 1.0  # left ankle planted throughout
    features[:10, 261] = 1.0  # right ankle planted for 10 steps, standing still
    assert foot_sliding(features, joints) == pytest.approx((20 * 0.5 + 10 * 0.0) / 30)
    assert foot_sliding(np.zeros((frames, 263)), joints) == 0.0


def test_sliding_per_speed_is_the_planted_feet_speed_over_the_pelvis_speed():
    frames = 21
    features = np.zeros((frames, 263))
    features[:, 2] = 0.05  # the pelvis walks straight ahead at 0.05 m per frame: 1 m/s at 20 fps
    joints = np.zeros((frames, 22, 3))
    joints[:, 7, 2] = 0.025 * np.arange(frames)  # the planted left ankle glides at 0.5 m/s
    features[:, 259] = 1.0
    assert pelvis_speed(features) == pytest.approx(1.0)
    assert sliding_per_speed(features, joints) == pytest.approx(0.5)
    features[:, 1] = 0.05  # sideways too: 0.05 * sqrt(2) m per frame
    assert sliding_per_speed(features, joints) == pytest.approx(0.5 / np.sqrt(2))
    assert sliding_per_speed(np.zeros((frames, 263)), joints) == 0.0  # a motion that does not travel


def test_jerk_of_a_cubic_is_six_times_its_coefficient():
    t = np.arange(30) / 20.0
    joints = np.zeros((30, 22, 3))
    joints[:, 5, 1] = 2.0 * t**3  # jerk 12 m/s^3
    np.testing.assert_allclose(jerk(joints), 12.0, rtol=1e-6)
    joints[15:, 3, 0] += 0.01  # a 1 cm pop at frame 15: third differences h, -2h, h: 2 * 0.01 * 20^3 = 160 m/s^3
    assert peak_jerk_near(joints, [15], radius=1) == pytest.approx(160.0, rel=1e-6)
    assert peak_jerk_near(joints, [3], radius=1) == pytest.approx(12.0, rel=1e-6)


def test_join_smoothing_leaves_a_motion_without_jerk_as_it_is():
    # Poses quadratic in time and root velocities linear (the root's running sum quadratic): no third difference to
    # take out, so the least-jerk fit is the motion itself.
    t = np.arange(60, dtype=np.float64)[:, None]
    a, b, c = np.random.default_rng(0).normal(size=(3, 263)) * [[1e-4], [1e-2], [1.0]]
    features = a * t**2 + b * t + c
    features[:, :3] = b[:3] * t + c[:3]
    np.testing.assert_allclose(smooth_joins(features, [30]), features, atol=1e-9)


def pop_at(frame: int, frames: int = 80, size: float = 0.05) -> np.ndarray:
    """A turning walk whose left wrist (ric joint 20, features 61..63) jumps `size` m sideways at `frame`, with
    random contact labels."""
    features = walking_features(frames, 0.04, half_turn=-0.01)
    features[:, 61:64] = [0.2, 0.9, 0.1]
    features[frame:, 61] += size
    features[:, 259:263] = np.random.default_rng(1).integers(0, 2, size=(frames, 4))
    return features


def test_join_smoothing_turns_a_pop_into_a_smooth_transition_and_keeps_the_rest():
    features = pop_at(40)
    smoothed = smooth_joins(features, [40], JoinSmoothing(radius=10, strength=30.0))
    # The pop's jerk is 2 * 0.05 m * 20^3 = 800 m/s^3 (third differences h, -2h, h); spread over the half second either
    # side of the join it is a fraction of that.
    before = peak_jerk_near(features_to_joints(features), [40])
    after = peak_jerk_near(features_to_joints(smoothed), [40])
    assert before == pytest.approx(800.0, rel=1e-3)  # (the turn adds a little)
    assert after < before / 5
    # Only the frames within the radius move; the contact labels and the root's path and turn do not change.
    np.testing.assert_array_equal(smoothed[:31], features[:31])
    np.testing.assert_array_equal(smoothed[51:, 3:], features[51:, 3:])
    np.testing.assert_array_equal(smoothed[:, 259:], features[:, 259:])
    path, facing = root_path(features)
    new_path, new_facing = root_path(smoothed)
    np.testing.assert_allclose(new_path[50:], path[50:], atol=1e-6)
    np.testing.assert_allclose(new_facing[50:], facing[50:], atol=1e-6)
    # The wrist still makes the whole move: where it was before the transition, where it went after it.
    assert smoothed[31, 61] == pytest.approx(0.2, abs=1e-4) and smoothed[50, 61] == pytest.approx(0.25, abs=1e-4)


def test_join_smoothing_keeps_pinned_frames_and_can_be_turned_off():
    features = pop_at(40)
    smoothed = smooth_joins(features, [40], JoinSmoothing(), pinned=[42])
    np.testing.assert_array_equal(smoothed[42, 3:], features[42, 3:])
    assert not np.allclose(smoothed[41], features[41])
    # The default moves the 14 frames either side of the join and no others.
    moved = np.flatnonzero(np.abs(smooth_joins(features, [40]) - features).max(axis=1) > 0)
    assert moved.min() == 40 - 13 and moved.max() == 40 + 14  # (+14: the root's step back onto the kept sums)
    np.testing.assert_array_equal(smooth_joins(features, [40], NO_JOIN_SMOOTHING), features)
    np.testing.assert_array_equal(smooth_joins(features, []), features)
