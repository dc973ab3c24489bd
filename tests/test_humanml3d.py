"""The 263-dim codec against HumanML3D's released data and the hand-derived oracles of HUMANML3D.md section 9."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter1d
from synthetic import circle_walk, rest_slide_rest, straight_walk, yaw_matrix

from shared.motion.axes import yup_to_zup, zup_to_yup
from shared.motion.humanml3d import (
    LAYOUT,
    MotionShapeError,
    features_to_joints,
    features_to_joints_from_rot6d,
    gaussian_smooth,
    joints_to_features,
    mirror_joints,
)
from shared.motion.normalization import ASSETS, humanml3d_stats, suspicious_blocks, zscore_summary
from shared.motion.skeleton import PARENTS, bone_lengths

HALF_YAW_PER_FRAME = np.pi / 200  # 36°/s at 20 fps = 1.8° per frame; the feature stores half of it
INTERIOR = slice(80, 120)  # rows whose sigma-20 heading window (radius 80) lies inside a 200-frame clip


# --- item 1-4: the real clip -------------------------------------------------------------------------------


def test_decoder_reproduces_released_joints(clip_012314):
    features, joints = clip_012314
    np.testing.assert_allclose(features_to_joints(features), joints, atol=1e-6)


def test_encoder_reproduces_released_features(clip_012314):
    features, joints = clip_012314
    encoded = joints_to_features(joints)
    assert encoded.shape == (169, 263) and encoded.dtype == np.float32
    # Rows 0-99 are exact; later rows differ only because the heading smoother sees one frame fewer.
    np.testing.assert_allclose(encoded[:100], features[:100], atol=1e-5)
    np.testing.assert_allclose(encoded, features[:-1], atol=2e-2)


def test_rot6d_block_reproduces_joints_by_fk(clip_012314):
    features, joints = clip_012314
    np.testing.assert_allclose(features_to_joints_from_rot6d(features), joints, atol=2e-6)


def test_encoded_clip_decodes_with_the_target_bone_lengths(clip_012314):
    _, joints = clip_012314
    stretched = joints * 1.37 + np.array([3.0, 0.2, -1.0])  # another skeleton size and place
    decoded = features_to_joints(joints_to_features(stretched))
    released_lengths = bone_lengths(joints.astype(np.float64))[0]
    np.testing.assert_allclose(bone_lengths(decoded), np.broadcast_to(released_lengths, (len(decoded), 22)), atol=2e-6)


# --- item 5-6: round trip and invariances ----------------------------------------------------------------


def test_round_trip_of_a_canonical_motion_is_exact():
    # Frame 0 already faces +Z at the origin on the floor with the target skeleton, so the encoder's
    # canonical positions are the input itself.
    walk = circle_walk(frames=95)
    decoded = features_to_joints(joints_to_features(walk))
    np.testing.assert_allclose(decoded, walk[:-1], atol=3e-6)


def test_crossing_180_degrees_rotates_the_rest_of_the_trajectory():
    walk = circle_walk(frames=200)
    features = joints_to_features(walk)
    decoded = features_to_joints(features)
    np.testing.assert_allclose(decoded[:101], walk[:101], atol=3e-6)
    assert np.abs(decoded[-1] - walk[-2]).max() > 0.1  # the dataset's wrap quirk, kept for compatibility
    repaired = features.copy()
    repaired[101, 0] *= -1.0
    np.testing.assert_allclose(features_to_joints(repaired), walk[:-1], atol=3e-6)


@pytest.mark.parametrize(
    ("name", "transform", "atol"),
    [
        ("translation", lambda j: j + np.array([3.0, 0.5, -7.0]), 1e-6),
        ("yaw 73°", lambda j: j @ yaw_matrix(np.deg2rad(73)).T, 2e-5),
        ("yaw 180°", lambda j: j @ yaw_matrix(np.pi).T, 2e-5),
        ("scale x0.8", lambda j: j * 0.8, 1e-5),
        ("scale x100", lambda j: j * 100.0, 1e-5),
    ],
)
def test_features_are_invariant_to_global_placement(cmu_walk, name, transform, atol):
    _, joints = cmu_walk
    joints = joints.astype(np.float64)
    np.testing.assert_allclose(joints_to_features(transform(joints)), joints_to_features(joints), atol=atol)


def test_heading_local_blocks_are_constant_on_a_circle():
    features = joints_to_features(circle_walk())[INTERIOR]
    assert features[:, LAYOUT.ric].std(0).max() < 1e-4
    assert features[:, LAYOUT.local_velocity].std(0).max() < 1e-4
    assert features[:, LAYOUT.rot6d].std(0).max() > 0.1  # rot6d is measured from world-fixed directions


# --- item 7-10: hand-derived motions --------------------------------------------------------------------


def test_circle_walk_turning_left():
    features = joints_to_features(circle_walk())
    rotation = features[:, 0]
    assert rotation[0] == pytest.approx(-0.107, abs=1e-3)  # identity frame 0 vs the smoothed heading
    flipped = np.flatnonzero(rotation[1:-1] > 0) + 1
    assert flipped.tolist() == [101]  # heading passes 180° there; arcsin without w >= 0
    interior = features[INTERIOR]
    np.testing.assert_allclose(np.abs(interior[:, 0]), HALF_YAW_PER_FRAME, atol=1e-5)
    np.testing.assert_allclose(interior[:, 1], 0.00143, atol=5e-5)  # IK heading offset + half-frame chord
    np.testing.assert_allclose(interior[:, 2], 0.06281, atol=5e-5)  # 2 m x 0.6283 rad/s / 20 fps
    np.testing.assert_allclose(features[:, 3], 0.9574, atol=1e-4)  # pelvis height of the pose
    assert np.all(features[:, LAYOUT.foot_contacts] == 0)  # feet glide at 1.26 m/s


def test_mirrored_circle_turns_right_with_the_same_wrap_row():
    features = joints_to_features(mirror_joints(circle_walk()))
    np.testing.assert_allclose(features[INTERIOR][np.arange(40) != 21, 0], HALF_YAW_PER_FRAME, atol=1e-5)
    assert (np.flatnonzero(features[1:-1, 0] < 0) + 1).tolist() == [101]


def test_straight_walk_moves_forward():
    features = joints_to_features(straight_walk(frames=200, speed=1.2))
    assert features[0, 0] == pytest.approx(0.0193, abs=2e-4)
    np.testing.assert_allclose(features[INTERIOR, 1], 0.00231, atol=5e-5)
    np.testing.assert_allclose(features[INTERIOR, 2], 0.05996, atol=5e-5)
    assert features[:, 2].min() > 0  # forward is positive: the mirror detector


def test_plain_axis_swap_is_detected_as_walking_backwards():
    walk_in_blender = yup_to_zup(straight_walk(frames=100))  # what an armature in a Z-up scene gives
    proper = joints_to_features(zup_to_yup(walk_in_blender))
    swapped = joints_to_features(walk_in_blender[..., [0, 2, 1]])  # y <-> z: a mirror, not a rotation
    assert proper[:, 2].mean() == pytest.approx(0.05996, abs=2e-3)
    assert swapped[:, 2].mean() == pytest.approx(-0.05996, abs=2e-3)


@pytest.mark.parametrize(("speed", "in_contact"), [(0.5, 1.0), (0.85, 1.0), (0.95, 0.0), (1.5, 0.0)])
def test_contact_threshold_is_0_894_metres_per_second(speed, in_contact):
    contacts = joints_to_features(rest_slide_rest(speed))[:, LAYOUT.foot_contacts]
    assert np.all(contacts[:19] == 1) and np.all(contacts[40:] == 1)
    # Row t compares frames t and t+1: rows 19 and 39 straddle the start and end of the slide.
    np.testing.assert_array_equal(contacts[20:39], in_contact)
    assert set(np.unique(contacts)) <= {0.0, 1.0}


# --- item 11: distribution check -----------------------------------------------------------------------


def _blocks(features: np.ndarray) -> dict[str, tuple[float, float]]:
    return {b.name: (b.z_mean, b.z_std) for b in zscore_summary(features)}


@pytest.mark.parametrize("motion", ["012314", "cmu_131_01", "walk"])
def test_zscores_of_ordinary_motion_are_in_range(request, motion):
    if motion == "012314":
        joints = request.getfixturevalue("clip_012314")[1]
    elif motion == "cmu_131_01":
        joints = request.getfixturevalue("cmu_walk")[1]
    else:
        joints = straight_walk(200)
    blocks = _blocks(joints_to_features(joints))
    for name in ("ric", "rot6d", "local_velocity"):
        z_mean, z_std = blocks[name]
        assert abs(z_mean) < 1 and 0.35 <= z_std <= 1.9, (name, z_mean, z_std)  # doc: "std z ≈ 0.4–1.9"
    assert abs(blocks["root_height"][0]) < 1
    assert suspicious_blocks(zscore_summary(joints_to_features(joints))) == []


def test_z_up_input_is_flagged():
    walk = straight_walk(200)
    z_up = walk @ np.array([[1.0, 0, 0], [0, 0, -1.0], [0, 1.0, 0]]).T
    warnings = suspicious_blocks(zscore_summary(joints_to_features(z_up)))
    assert warnings and "axis" in warnings[0]


# SHA-256 of HumanML3D's released Mean.npy / Std.npy (EricGuo5513/HumanML3D @9176e8f; MotionGPT3's meta/mean.npy and
# std.npy are the same bytes).
RELEASED_SHA256 = {
    "humanml3d_mean.npy": "26e136555dab04c94a129d446c26e6b9939cbf045fbf77bcf5462c1fb5a2001c",
    "humanml3d_std.npy": "6565a65ed9b31e23c328829a309e1c482be8b85fd23b43d65451a9b19a917f40",
}


def test_stats_are_humanml3d():
    stats = humanml3d_stats()
    assets = ASSETS
    for name, digest in RELEASED_SHA256.items():
        assert hashlib.sha256((assets / name).read_bytes()).hexdigest() == digest, name
    np.testing.assert_array_equal(stats.mean, np.load(assets / "humanml3d_mean.npy"))
    np.testing.assert_array_equal(stats.std, np.load(assets / "humanml3d_std.npy"))
    z = np.random.default_rng(0).normal(size=(5, 263))
    np.testing.assert_allclose(stats.normalize(stats.denormalize(z)), z, atol=1e-12)


# --- helpers and errors --------------------------------------------------------------------------------


def test_gaussian_smoothing_equals_scipy():
    x = np.random.default_rng(1).normal(size=(57, 3))
    np.testing.assert_allclose(gaussian_smooth(x, 20.0), gaussian_filter1d(x, 20.0, axis=0, mode="nearest"), atol=1e-12)


def test_mirror_swaps_sides():
    walk = straight_walk(3)
    mirrored = mirror_joints(walk)
    np.testing.assert_allclose(mirrored[:, 1, 0], -walk[:, 2, 0])
    np.testing.assert_allclose(mirror_joints(mirrored), walk)
    assert PARENTS[1] == PARENTS[2] == 0


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (np.zeros((10, 21, 3)), "expected shape"),
        (np.zeros((1, 22, 3)), "at least 2 frames"),
        (np.full((5, 22, 3), np.nan), "NaN"),
    ],
)
def test_bad_joints_raise_a_clear_error(bad, message):
    with pytest.raises(MotionShapeError, match=message):
        joints_to_features(bad)


def test_bad_features_raise_a_clear_error():
    with pytest.raises(MotionShapeError, match="expected shape"):
        features_to_joints(np.zeros((10, 262)))
    features = np.zeros((4, 263))
    features[2, 7] = np.inf
    with pytest.raises(MotionShapeError, match="NaN or infinite"):
        features_to_joints(features)


def test_root_travel_scales_by_the_right_leg_only(cmu_walk):
    """HumanML3D's `uniform_skeleton` (HUMANML3D.md §3.3) scales the root by the right thigh + shin of frame 0: a
    longer left leg leaves the root's velocity as it was, a right leg twice as long halves it. `skeleton.leg_length`
    is that convention, and the add-on's placement and read-back use it too."""
    from shared.motion.skeleton import leg_length

    _, joints = cmu_walk
    joints = joints.astype(np.float64)
    features = joints_to_features(joints)

    def longer(side: tuple[int, int, int, int]) -> np.ndarray:
        hip, knee = side[0], side[1]
        out = joints.copy()
        out[:, list(side[1:])] += (joints[:, knee] - joints[:, hip])[:, None]  # the thigh twice as long
        return out

    left, right = longer((1, 4, 7, 10)), longer((2, 5, 8, 11))
    np.testing.assert_allclose(leg_length(left), leg_length(joints))
    np.testing.assert_allclose(joints_to_features(left)[:, 1:3], features[:, 1:3], atol=1e-6)
    ratio = leg_length(joints[0]) / leg_length(right[0])
    assert ratio < 0.8
    np.testing.assert_allclose(joints_to_features(right)[:, 1:3], features[:, 1:3] * ratio, atol=1e-5)
