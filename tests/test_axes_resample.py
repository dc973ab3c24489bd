"""Y-up ⇄ Z-up conversion and time resampling against hand-derived values and scipy."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation, Slerp

from shared.motion.axes import (
    YUP_TO_ZUP,
    quat_yup_to_zup,
    quat_zup_to_yup,
    rotation_yup_to_zup,
    rotation_zup_to_yup,
    yup_to_zup,
    zup_to_yup,
)
from shared.motion.resample import (
    FrameRateError,
    nominal_fps,
    resample_linear,
    resample_quaternions,
    resampled_frame_count,
)


def test_humanml3d_front_maps_to_blender_front():
    # HumanML3D faces +Z with +Y up and left +X; Blender's front view looks at a character facing -Y.
    np.testing.assert_allclose(yup_to_zup(np.array([0.0, 0.0, 1.0])), [0.0, -1.0, 0.0])
    np.testing.assert_allclose(yup_to_zup(np.array([0.0, 1.0, 0.0])), [0.0, 0.0, 1.0])
    np.testing.assert_allclose(yup_to_zup(np.array([1.0, 0.0, 0.0])), [1.0, 0.0, 0.0])
    assert np.linalg.det(YUP_TO_ZUP) == pytest.approx(1.0)  # a rotation, never a mirror


def test_point_and_rotation_conversions_commute():
    rng = np.random.default_rng(0)
    points = rng.normal(size=(7, 3))
    rotations = Rotation.random(7, random_state=1)
    np.testing.assert_allclose(zup_to_yup(yup_to_zup(points)), points, atol=1e-12)
    rotated_then_converted = yup_to_zup(rotations.apply(points))
    converted_then_rotated = np.einsum("nij,nj->ni", rotation_yup_to_zup(rotations.as_matrix()), yup_to_zup(points))
    np.testing.assert_allclose(converted_then_rotated, rotated_then_converted, atol=1e-12)
    np.testing.assert_allclose(rotation_zup_to_yup(rotation_yup_to_zup(rotations.as_matrix())), rotations.as_matrix())


def test_quaternion_conversion_matches_matrix_conversion():
    rotations = Rotation.random(9, random_state=2)
    wxyz = np.roll(rotations.as_quat(), 1, axis=-1)
    converted = quat_yup_to_zup(wxyz)
    expected = Rotation.from_matrix(rotation_yup_to_zup(rotations.as_matrix())).as_matrix()
    np.testing.assert_allclose(Rotation.from_quat(np.roll(converted, -1, axis=-1)).as_matrix(), expected, atol=1e-12)
    np.testing.assert_allclose(quat_zup_to_yup(converted), wxyz, atol=1e-12)


@pytest.mark.parametrize(
    ("frames", "src", "dst", "expected"),
    [
        (41, 20, 30, 61),
        (41, 20, 60000 / 1001, 120),
        (41, 20, 30000 / 1001, 60),
        (181, 30000 / 1001, 20, 121),
        (1, 20, 24, 1),
    ],
)
def test_frame_counts_cover_the_same_duration(frames, src, dst, expected):
    assert resampled_frame_count(frames, src, dst) == expected


@pytest.mark.parametrize("dst", [24.0, 25.0, 30000 / 1001, 60.0, 60000 / 1001, 10.0])
def test_linear_motion_resamples_exactly(dst):
    t = np.arange(41) / 20.0
    trajectory = np.stack([1.0 + 0.5 * t, -2.0 * t, 0.25 * t], -1)
    out = resample_linear(trajectory, 20.0, dst)
    t_out = np.arange(len(out)) / dst
    np.testing.assert_allclose(out, np.stack([1.0 + 0.5 * t_out, -2.0 * t_out, 0.25 * t_out], -1), atol=1e-12)


def test_resampling_to_a_multiple_and_back_is_lossless():
    values = np.random.default_rng(3).normal(size=(30, 22, 3))
    np.testing.assert_allclose(resample_linear(resample_linear(values, 20, 60), 60, 20), values, atol=1e-12)


def test_quaternions_slerp_like_scipy():
    times = np.arange(21) / 20.0
    key_rotations = Rotation.from_rotvec(np.outer(np.sin(times * 3), [0.3, 1.0, -0.2]) + np.array([0.0, 0.0, 0.4]))
    wxyz = np.roll(key_rotations.as_quat(), 1, axis=-1)
    out = resample_quaternions(wxyz, 20.0, 30000 / 1001)
    expected = Slerp(times, key_rotations)(np.arange(len(out)) / (30000 / 1001))
    ours = Rotation.from_quat(np.roll(out, -1, axis=-1))
    assert (ours.inv() * expected).magnitude().max() < 1e-9


@pytest.mark.parametrize("fps", [0.0, -20.0, float("nan")])
def test_bad_frame_rate_is_rejected(fps):
    with pytest.raises(FrameRateError, match="frame rate"):
        resample_linear(np.zeros((5, 3)), 20.0, fps)


@pytest.mark.parametrize(
    ("frame_time", "expected"),
    [
        (0.0083333, 120.0),
        (0.05, 20.0),
        (0.0333667, 30000 / 1001),
        (0.0166833, 60000 / 1001),
        (0.041667, 24.0),
        (0.037, 1 / 0.037),
    ],
)
def test_rounded_frame_times_snap_to_the_intended_rate(frame_time, expected):
    assert nominal_fps(1.0 / frame_time) == pytest.approx(expected, rel=1e-12)
