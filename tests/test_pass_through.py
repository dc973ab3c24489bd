"""Passing a generated track through keyed poses and anchoring its signs / Euler branches: hand-derived cases."""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from shared.motion.pass_through import (
    anchor_runs,
    anchored_eulers,
    anchored_quaternions,
    pin_locations,
    pin_rotations,
    rotations_at,
)
from shared.motion.quaternion import alternate_euler, euler_to_quat, qmul, quat_to_euler


def _about(axis: str, degrees: float) -> np.ndarray:
    half = np.radians(degrees) / 2
    return np.array([np.cos(half), *(np.sin(half) * (np.arange(3) == "XYZ".index(axis)))])


def _same_rotation(a: np.ndarray, b: np.ndarray, atol: float = 1e-12) -> None:
    np.testing.assert_allclose(np.abs((a * b).sum(-1)), 1.0, atol=atol)


def test_residual_is_slerped_between_two_keys():
    times = np.arange(11.0)
    still = np.tile(_about("Z", 0.0), (11, 1))
    keys = np.stack([_about("Z", 0.0), _about("Z", 90.0)])
    pinned = pin_rotations(still, times, np.array([0.0, 10.0]), keys)
    for t in range(11):  # identity → quarter turn: 9° per frame
        _same_rotation(pinned[t], _about("Z", 9.0 * t))


def test_one_key_applies_its_residual_on_the_left_everywhere():
    times = np.arange(5.0)
    generated = np.tile(_about("X", 30.0), (5, 1))
    key = qmul(_about("Z", 90.0), _about("X", 30.0))  # residual: a quarter turn about Z in the parent's axes
    pinned = pin_rotations(generated, times, np.array([2.0]), key[None])
    for t in range(5):
        _same_rotation(pinned[t], key)


def test_keys_between_frames_and_per_bone_keys_are_met_exactly():
    times = np.arange(30.0)
    generated = np.roll(Rotation.random(30 * 3, random_state=5).as_quat(), 1, -1).reshape(30, 3, 4)
    key_times = np.array([0.0, 7.5, 20.0, 29.0])
    keys = np.roll(Rotation.random(4 * 3, random_state=6).as_quat(), 1, -1).reshape(4, 3, 4)
    pinned = pin_rotations(generated, times, key_times, keys)
    _same_rotation(rotations_at(pinned, times, key_times[[0, 2, 3]]), keys[[0, 2, 3]], 1e-12)
    _same_rotation(rotations_at(pinned, times, key_times[1:2]), keys[1:2], 1e-3)  # between frames: slerp of two


def test_location_residual_is_linear_between_keys_and_constant_outside():
    times = np.arange(9.0)
    pinned = pin_locations(np.zeros((9, 3)), times, np.array([2.0, 6.0]), np.array([[1.0, 0, 0], [0, 2.0, 0]]))
    np.testing.assert_allclose(pinned[4], [0.5, 1.0, 0.0])
    np.testing.assert_allclose(pinned[0], [1.0, 0, 0])
    np.testing.assert_allclose(pinned[8], [0, 2.0, 0])
    moving = np.outer(np.arange(9.0), [1.0, 0, 0])  # the generated motion itself is kept, offset by the residual
    np.testing.assert_allclose(pin_locations(moving, times, np.array([4.0]), np.array([[0.0, 0, 0]]))[6], [2, 0, 0])


def test_no_keys_leaves_the_track_alone():
    q = np.tile(_about("Y", 20.0), (4, 1))
    np.testing.assert_allclose(pin_rotations(q, np.arange(4.0), np.zeros(0), np.zeros((0, 4))), q)


def test_runs_walk_away_from_the_nearest_anchor():
    runs = [(list(idx), k) for idx, k in anchor_runs(np.arange(7.0), np.array([1.0, 5.0]))]
    assert runs == [([1, 2, 3], 0), ([0], 0), ([5, 6], 1), ([4], 1)]  # the tie at frame 3 goes to the earlier


def test_quaternion_signs_follow_the_nearest_anchor():
    q = np.tile(_about("Z", 10.0), (5, 1))
    anchored = anchored_quaternions(q, np.arange(5.0), np.array([0.0, 4.0]), np.stack([q[0], -q[0]]))
    np.testing.assert_allclose(anchored[:3], q[:3])  # the tie at frame 2 goes to the earlier anchor
    np.testing.assert_allclose(anchored[3:], -q[3:])
    flipped = anchored_quaternions(-q, np.arange(5.0), np.zeros(0), np.zeros((0, 4)))
    np.testing.assert_allclose(flipped, q)  # no anchors: w ≥ 0 on frame 0


def test_eulers_continue_from_the_users_own_angles():
    z = np.radians([150.0, 170.0, 190.0, 210.0])
    q = euler_to_quat(np.stack([np.zeros(4), np.zeros(4), z], -1), "XYZ")
    user = np.radians([[0.0, 0.0, 150.0 - 720.0], [0.0, 0.0, 210.0]])  # two turns back at frame 0
    out = anchored_eulers(q, "XYZ", np.arange(4.0), np.array([0.0, 3.0]), user)
    np.testing.assert_allclose(np.degrees(out[:, 2]), [150 - 720, 170 - 720, 190, 210], atol=1e-9)
    other = alternate_euler(quat_to_euler(q[:1], "XYZ"), "XYZ")
    on_branch = anchored_eulers(q, "XYZ", np.arange(4.0), np.array([0.0]), other)
    np.testing.assert_allclose(np.degrees(on_branch[:, 1]), 180.0, atol=1e-9)
    np.testing.assert_allclose(on_branch[0], other[0], atol=1e-9)
