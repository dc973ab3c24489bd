"""Rotation math against scipy and hand-derived cases."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from shared.motion.quaternion import (
    alternate_euler,
    axis_angle_to_quat,
    cont6d_to_matrix,
    continuous_eulers,
    euler_to_matrix,
    euler_to_quat,
    matrix_to_cont6d,
    matrix_to_euler,
    matrix_to_quat,
    qbetween,
    qfix,
    qinv,
    qmul,
    qrot,
    qslerp,
    quat_to_axis_angle,
    quat_to_euler,
    quat_to_matrix,
)

ROTATIONS = Rotation.random(64, random_state=7)
WXYZ = np.roll(ROTATIONS.as_quat(), 1, axis=-1)


def test_hand_derived_quarter_turn_about_y():
    q = np.array([np.cos(np.pi / 4), 0.0, np.sin(np.pi / 4), 0.0])
    np.testing.assert_allclose(qrot(q, np.array([0.0, 0.0, 1.0])), [1.0, 0.0, 0.0], atol=1e-12)


def test_matrix_and_quaternion_agree_with_scipy():
    np.testing.assert_allclose(quat_to_matrix(WXYZ), ROTATIONS.as_matrix(), atol=1e-12)
    back = matrix_to_quat(ROTATIONS.as_matrix())
    np.testing.assert_allclose(np.abs((back * WXYZ).sum(-1)), 1.0, atol=1e-12)  # same rotation (± sign)
    assert np.all(back[:, 0] >= 0)


def test_product_inverse_and_rotation_agree_with_scipy():
    a, b = WXYZ[:32], WXYZ[32:]
    expected = (ROTATIONS[:32] * ROTATIONS[32:]).as_matrix()
    np.testing.assert_allclose(quat_to_matrix(qmul(a, b)), expected, atol=1e-12)
    np.testing.assert_allclose(quat_to_matrix(qmul(a, qinv(a))), np.broadcast_to(np.eye(3), (32, 3, 3)), atol=1e-12)
    v = np.random.default_rng(0).normal(size=(32, 3))
    np.testing.assert_allclose(qrot(a, v), ROTATIONS[:32].apply(v), atol=1e-12)


def test_between_maps_a_onto_b_with_non_negative_w():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(50, 3)), rng.normal(size=(50, 3))
    q = qbetween(a, b)
    unit_b = b / np.linalg.norm(b, axis=-1, keepdims=True)
    np.testing.assert_allclose(qrot(q, a / np.linalg.norm(a, axis=-1, keepdims=True)), unit_b, atol=1e-12)
    assert np.all(q[:, 0] >= 0)


def test_cont6d_is_the_first_two_columns_and_decodes_back():
    m = ROTATIONS.as_matrix()
    c = matrix_to_cont6d(m)
    np.testing.assert_array_equal(c[:, :3], m[:, :, 0])
    np.testing.assert_array_equal(c[:, 3:], m[:, :, 1])
    np.testing.assert_allclose(cont6d_to_matrix(c), m, atol=1e-12)
    noisy = cont6d_to_matrix(c * 1.7 + 0.01)  # Gram-Schmidt still gives a rotation
    np.testing.assert_allclose(np.linalg.det(noisy), 1.0, atol=1e-12)


@pytest.mark.parametrize("order", ["XYZ", "XZY", "YXZ", "YZX", "ZXY", "ZYX"])
def test_euler_orders_match_scipy_intrinsic(order):
    angles = np.random.default_rng(2).uniform(-170, 170, size=(40, 3))
    angles[:, 1] = np.clip(angles[:, 1], -85, 85)  # stay away from gimbal lock for the inverse
    expected = Rotation.from_euler(order, angles, degrees=True).as_matrix()  # uppercase = intrinsic
    np.testing.assert_allclose(euler_to_matrix(angles, order), expected, atol=1e-12)
    np.testing.assert_allclose(euler_to_matrix(matrix_to_euler(expected, order), order), expected, atol=1e-9)


@pytest.mark.parametrize("order", ["XYZ", "ZYX", "ZXY"])
def test_euler_inverse_survives_gimbal_lock(order):
    angles = np.array([[30.0, 90.0, 10.0], [-20.0, -90.0, 45.0]])
    m = euler_to_matrix(angles, order)
    np.testing.assert_allclose(euler_to_matrix(matrix_to_euler(m, order), order), m, atol=1e-9)


def test_hemisphere_fix_keeps_rotations_and_removes_sign_jumps():
    q = np.repeat(WXYZ[:1], 6, axis=0)
    q[[2, 3, 5]] *= -1
    fixed = qfix(q)
    np.testing.assert_allclose(fixed, np.repeat(WXYZ[:1], 6, axis=0))


ORDERS = ["XYZ", "XZY", "YXZ", "YZX", "ZXY", "ZYX"]


def _about(axis: str, degrees: float) -> np.ndarray:
    half = np.radians(degrees) / 2
    return np.array([np.cos(half), *(np.sin(half) * (np.arange(3) == "XYZ".index(axis)))])


def test_slerp_halfway_is_the_half_angle_and_takes_the_short_way():
    half = qslerp(_about("Z", 0.0), _about("Z", 90.0), 0.5)
    np.testing.assert_allclose(half, _about("Z", 45.0), atol=1e-12)
    np.testing.assert_allclose(qslerp(_about("Z", 0.0), -_about("Z", 90.0), 0.5), _about("Z", 45.0), atol=1e-12)
    np.testing.assert_allclose(qslerp(WXYZ[:5], WXYZ[:5], np.linspace(0, 1, 5)), WXYZ[:5], atol=1e-12)


@pytest.mark.parametrize("order", ORDERS)
def test_euler_in_rotation_order_is_extrinsic_xyz_angles(order):
    """Angles (x, y, z) in rotation order "XYZ" mean X first about the fixed axes: R = Rz(z)·Ry(y)·Rx(x)."""
    e = np.random.default_rng(3).uniform(-3.0, 3.0, size=(50, 3))
    in_order = e[:, ["XYZ".index(a) for a in order]]
    expected = Rotation.from_euler(order.lower(), in_order).as_matrix()  # lowercase = extrinsic
    np.testing.assert_allclose(quat_to_matrix(euler_to_quat(e, order)), expected, atol=1e-12)
    back = quat_to_euler(euler_to_quat(e, order), order)
    np.testing.assert_allclose(quat_to_matrix(euler_to_quat(back, order)), expected, atol=1e-9)
    assert np.all(np.abs(back) <= np.pi + 1e-12)
    other = alternate_euler(back, order)
    np.testing.assert_allclose(quat_to_matrix(euler_to_quat(other, order)), expected, atol=1e-9)
    assert np.all(np.abs(back).sum(-1) <= np.abs(np.pi - np.mod(np.pi - other, 2 * np.pi)).sum(-1) + 1e-12)


def test_hand_derived_euler_xyz():
    # (90°, 0, 90°) in order XYZ: a quarter turn about X, then one about the fixed Z axis.
    e = np.radians([90.0, 0.0, 90.0])
    np.testing.assert_allclose(euler_to_quat(e, "XYZ"), qmul(_about("Z", 90.0), _about("X", 90.0)), atol=1e-12)
    np.testing.assert_allclose(quat_to_euler(_about("Y", 30.0), "ZXY"), np.radians([0.0, 30.0, 0.0]), atol=1e-12)


def test_continuous_eulers_unwrap_a_full_turn_and_follow_a_start():
    z = np.radians([170.0, 180.0, 190.0])
    q = euler_to_quat(np.stack([np.zeros(3), np.zeros(3), z], -1), "XYZ")
    np.testing.assert_allclose(continuous_eulers(q, "XYZ")[:, 2], z, atol=1e-9)
    np.testing.assert_allclose(continuous_eulers(q, "XYZ", np.radians([0.0, 0.0, -190.0]))[:, 2], z - 2 * np.pi)
    start = alternate_euler(quat_to_euler(q[0], "XYZ"), "XYZ")  # the user's key is on the other branch
    on_branch = continuous_eulers(q, "XYZ", start)
    np.testing.assert_allclose(on_branch[0], start, atol=1e-9)
    np.testing.assert_allclose(np.degrees(on_branch[:, 1]), 180.0, atol=1e-9)


def test_continuous_eulers_do_not_flip_where_the_smallest_triple_changes_branch():
    # (100°, 80°, 100°) is closest to zero on its other branch (−80°, 100°, −80°); (95°, 70°, 95°) on its own:
    # frame by frame the smallest triples jump by ~180°; continuously frame 1 is (−85°, 110°, −85°).
    e = np.radians([[100.0, 80.0, 100.0], [95.0, 70.0, 95.0]])
    q = euler_to_quat(e, "XYZ")
    np.testing.assert_allclose(np.degrees(quat_to_euler(q, "XYZ")), [[-80, 100, -80], [95, 70, 95]], atol=1e-9)
    np.testing.assert_allclose(np.degrees(continuous_eulers(q, "XYZ")), [[-80, 100, -80], [-85, 110, -85]], atol=1e-9)


def test_axis_angle_hand_derived_and_round_trip():
    np.testing.assert_allclose(quat_to_axis_angle(_about("Z", 90.0)), [np.pi / 2, 0, 0, 1], atol=1e-12)
    np.testing.assert_allclose(quat_to_axis_angle(np.array([1.0, 0, 0, 0])), [0, 0, 1, 0])
    np.testing.assert_allclose(quat_to_axis_angle(np.array([-1.0, 0, 0, 0])), [2 * np.pi, 0, 1, 0])
    np.testing.assert_allclose(axis_angle_to_quat(quat_to_axis_angle(WXYZ)), WXYZ, atol=1e-12)
