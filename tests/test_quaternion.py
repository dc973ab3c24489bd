"""Rotation math against scipy and hand-derived cases."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from shared.motion.quaternion import (
    cont6d_to_matrix,
    euler_to_matrix,
    matrix_to_cont6d,
    matrix_to_euler,
    matrix_to_quat,
    qbetween,
    qfix,
    qinv,
    qmul,
    qrot,
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
