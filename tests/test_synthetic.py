"""Synthetic training motions: every property is measured from the generated joints/features (never from the
generator's own intermediate tracks), with HumanML3D conventions: Y-up metres, 20 fps, left = +X at rest,
a left turn is counter-clockwise seen from above (feature dim 0 < 0), dim 2 = forward root velocity."""

from __future__ import annotations

import re

import numpy as np
import pytest

from backend.train.synthetic import generate_synthetic_set, make_clip, write_humanml3d_layout
from shared.motion.normalization import ASSETS, zscore_summary
from shared.motion.skeleton import PARENTS

FPS = 20.0
L_HIP, R_HIP, L_SHOULDER, R_SHOULDER = 1, 2, 16, 17
L_WRIST, R_WRIST = 20, 21
FEET = ((7, 10), (8, 11))  # (ankle, toe) left, right
NEAR_FLOOR = 0.015  # m
PLANTED_SPEED = 0.05  # m/s


@pytest.fixture(scope="module")
def clips():
    return generate_synthetic_set(seed=11, count=160)


def plan(*actions, seed=0):
    """A clip of the given (action, kwargs) pairs."""
    return make_clip(seed, list(actions))


# ---------------------------------------------------------------------------------------------------------------
# Independent measurements


def headings(joints: np.ndarray) -> np.ndarray:
    """(T,) unwrapped yaw (rad, + = left) of the facing from the hips and shoulders: forward = up × (right − left)."""
    across = (joints[:, R_HIP] - joints[:, L_HIP]) + (joints[:, R_SHOULDER] - joints[:, L_SHOULDER])
    forward = np.cross(np.array([0.0, 1.0, 0.0]), across)
    return np.unwrap(np.arctan2(forward[:, 0], forward[:, 2]))


def sliding_speeds(joints: np.ndarray) -> np.ndarray:
    """Speeds (m/s) of each foot's lowest joint over frame pairs where that joint is near the floor in both."""
    floor = joints[..., 1].min()
    speeds = []
    for foot in FEET:
        heights = joints[:, foot, 1] - floor
        lowest = np.asarray(foot)[np.argmin(heights, axis=1)]
        point = joints[np.arange(len(joints)), lowest]
        low = heights.min(axis=1) < NEAR_FLOOR
        contact = low[:-1] & low[1:] & (lowest[:-1] == lowest[1:])
        speeds.append(np.linalg.norm(np.diff(point, axis=0), axis=-1)[contact] * FPS)
    return np.concatenate(speeds)


def displacement_in_start_frame(joints: np.ndarray) -> tuple[float, float]:
    """Net pelvis (forward, left) displacement (m) in the body frame of the first frame."""
    yaw = headings(joints)[0]
    forward = np.array([np.sin(yaw), 0.0, np.cos(yaw)])
    left = np.array([np.cos(yaw), 0.0, -np.sin(yaw)])
    travel = joints[-1, 0] - joints[0, 0]
    return float(travel @ forward), float(travel @ left)


def words(caption: str) -> set[str]:
    return set(re.findall(r"[a-z]+", caption.lower()))


# ---------------------------------------------------------------------------------------------------------------
# Whole-set properties


def test_clip_shapes_lengths_and_finite_features(clips):
    for clip in clips:
        frames = len(clip.joints)
        assert 40 <= frames <= 196, clip.name
        assert clip.joints.shape == (frames, 22, 3) and clip.joints.dtype == np.float32
        assert clip.features.shape == (frames - 1, 263) and clip.features.dtype == np.float32
        assert np.all(np.isfinite(clip.features))
        assert set(np.unique(clip.features[:, 259:])) <= {0.0, 1.0}
        assert len(clip.captions) >= 3 and len(set(clip.captions)) == len(clip.captions)


def test_bone_lengths_equal_the_clip_skeleton(clips):
    parents = np.array(PARENTS[1:])
    for clip in clips:
        joints = clip.joints.astype(np.float64)
        measured = np.linalg.norm(joints[:, 1:] - joints[:, parents], axis=-1)  # (T, 21)
        expected = np.linalg.norm(clip.offsets[1:], axis=-1)
        np.testing.assert_allclose(measured, np.broadcast_to(expected, measured.shape), atol=1e-5, err_msg=clip.name)


def test_body_proportions_vary_within_five_percent(clips):
    lengths = np.stack([np.linalg.norm(c.offsets[1:], axis=-1) for c in clips])
    relative = lengths / np.median(lengths, axis=0)
    assert relative.std() > 0.01
    assert np.all(np.abs(relative - 1.0) < 0.11)  # ±5 % around a common rest skeleton


def test_planted_feet_do_not_slide(clips):
    for clip in clips:
        speeds = sliding_speeds(clip.joints.astype(np.float64))
        assert speeds.size > 0, clip.name
        assert speeds.max() < PLANTED_SPEED, (clip.name, clip.labels["actions"], speeds.max())


def test_floor_is_touched_and_never_crossed(clips):
    for clip in clips:
        joints = clip.joints
        assert joints[..., 1].min() > -1e-4, clip.name
        standing_feet = joints[0, [7, 8, 10, 11], 1]
        assert standing_feet.min() < 0.01, clip.name  # the clip starts with a foot flat on the floor
        assert joints[0, 0, 1] > 0.4  # pelvis well above the floor (standing or seated)


def test_feature_statistics_look_like_ordinary_motion(clips):
    # HUMANML3D.md §9 item 11. Velocity blocks legitimately grow with speed, so clips that run (peak root speed
    # over 2 m/s, measured from dims 1–2) get a wider local-velocity bound.
    for clip in clips:
        summary = {b.name: b for b in zscore_summary(clip.features)}
        running = np.linalg.norm(clip.features[:, 1:3], axis=-1).max() * FPS > 2.0
        bounds = {"ric": 1.5, "local_velocity": 2.5 if running else 1.5}
        for block, bound in bounds.items():
            assert abs(summary[block].z_mean) < bound, (clip.name, block, summary[block])
            assert summary[block].z_std < 5.0, (clip.name, block, summary[block])
        assert abs(summary["root_height"].z_mean) < 5.0, clip.name


def test_generation_is_deterministic():
    first = generate_synthetic_set(seed=5, count=4)
    again = generate_synthetic_set(seed=5, count=4)
    other = generate_synthetic_set(seed=6, count=4)
    for a, b in zip(first, again, strict=True):
        assert a.name == b.name and a.captions == b.captions and a.labels == b.labels
        np.testing.assert_array_equal(a.joints, b.joints)
        np.testing.assert_array_equal(a.features, b.features)
    assert any(
        a.joints.shape != o.joints.shape or not np.array_equal(a.joints, o.joints)
        for a, o in zip(first, other, strict=True)
    )


def test_action_mix_covers_the_vocabulary(clips):
    seen = {action for clip in clips for action in clip.labels["actions"]}
    assert {"walk", "run", "turn", "jump", "wave", "squat", "kick"} <= seen
    assert sum(len(c.labels["actions"]) > 1 for c in clips) > 30


# ---------------------------------------------------------------------------------------------------------------
# Direction, side and speed semantics, measured on planned clips


@pytest.mark.parametrize("degrees", [45, 90, 180])
@pytest.mark.parametrize("side", ["left", "right"])
def test_turn_direction_in_joints_features_and_captions(side, degrees):
    clip = plan(("turn", {"direction": side, "degrees": degrees}), seed=degrees)
    sign = 1.0 if side == "left" else -1.0
    change = np.degrees(headings(clip.joints.astype(np.float64))[-1] - headings(clip.joints.astype(np.float64))[0])
    assert sign * change > degrees - 20, change  # left = counter-clockwise seen from above = + yaw
    assert sign * clip.features[:, 0].sum() < 0  # HumanML3D: negative rotation velocity = turning left
    other = "right" if side == "left" else "left"
    for caption in clip.captions:
        assert side in words(caption) and other not in words(caption), caption


@pytest.mark.parametrize("side", ["left", "right"])
def test_spin_goes_at_least_three_quarters_round(side):
    clip = plan(("spin", {"direction": side}), seed=3)
    change = np.degrees(headings(clip.joints.astype(np.float64))[-1] - headings(clip.joints.astype(np.float64))[0])
    assert (change if side == "left" else -change) >= 270


@pytest.mark.parametrize("pace", ["slow", "normal", "fast"])
def test_walking_forward_moves_forward_at_its_pace(pace):
    clip = plan(("walk", {"direction": "forward", "pace": pace}), seed=1)
    velocity = clip.features[:, 2] * FPS  # m/s along the heading
    moving = np.linalg.norm(clip.features[:, 1:3], axis=-1) * FPS > 0.2
    assert velocity[moving].mean() >= 0.5
    forward, _ = displacement_in_start_frame(clip.joints.astype(np.float64))
    assert forward >= 0.5 * moving.sum() / FPS
    fast_words, slow_words = (
        {"quickly", "fast", "briskly", "hurriedly", "rapidly", "hurry", "hurries"},
        {
            "slowly",
            "slow",
            "leisurely",
            "strolls",
            "stroll",
        },
    )
    for caption in clip.captions:
        assert not words(caption) & {"backward", "backwards", "left", "right", "run", "runs", "jogs"}, caption
        if pace != "fast":
            assert not words(caption) & fast_words, caption
        if pace != "slow":
            assert not words(caption) & slow_words, caption


def test_walking_backward_moves_backward():
    clip = plan(("walk", {"direction": "backward"}), seed=2)
    assert clip.features[:, 2].mean() < 0
    forward, _ = displacement_in_start_frame(clip.joints.astype(np.float64))
    assert forward < -0.5
    for caption in clip.captions:
        assert words(caption) & {
            "backward",
            "backwards",
            "back",
            "backs",
            "backing",
            "reverse",
        } and "forward" not in words(caption)


@pytest.mark.parametrize("side", ["left", "right"])
def test_sidestep_moves_to_its_side(side):
    clip = plan(("walk", {"direction": side}), seed=4)
    forward, left = displacement_in_start_frame(clip.joints.astype(np.float64))
    assert (left if side == "left" else -left) > 0.3 and abs(forward) < 0.15
    other = "right" if side == "left" else "left"
    assert all(side in words(c) and other not in words(c) for c in clip.captions)


def test_running_is_fast_with_a_flight_phase():
    clip = plan(("run", {}), seed=5)
    assert (clip.features[:, 2] * FPS).max() > 2.0
    floor = clip.joints[..., 1].min()
    airborne = clip.joints[:, [7, 8, 10, 11], 1].min(axis=1) - floor > 0.03
    assert airborne.sum() >= 3


@pytest.mark.parametrize("direction", ["in_place", "forward"])
def test_jump_lifts_the_pelvis(direction):
    clip = plan(("jump", {"direction": direction}), seed=6)
    pelvis = clip.joints[:, 0, 1]
    assert pelvis.max() - pelvis[0] >= 0.15
    forward, _ = displacement_in_start_frame(clip.joints.astype(np.float64))
    assert forward > 0.3 if direction == "forward" else abs(forward) < 0.1


@pytest.mark.parametrize("action", ["squat", "sit_down"])
def test_squat_and_sit_lower_the_pelvis(action):
    clip = plan((action, {}), seed=7)
    pelvis = clip.joints[:, 0, 1]
    assert pelvis[0] - pelvis.min() >= 0.25


@pytest.mark.parametrize("hand", ["left", "right"])
def test_wave_raises_only_that_hand(hand):
    clip = plan(("wave", {"hand": hand}), seed=8)
    wrist, shoulder = (R_WRIST, R_SHOULDER) if hand == "right" else (L_WRIST, L_SHOULDER)
    other_wrist, other_shoulder = (L_WRIST, L_SHOULDER) if hand == "right" else (R_WRIST, R_SHOULDER)
    above = clip.joints[:, wrist, 1] > clip.joints[:, shoulder, 1]
    assert above.sum() >= 10
    assert np.all(clip.joints[:, other_wrist, 1] < clip.joints[:, other_shoulder, 1])
    # Waving oscillates: the raised wrist's sideways velocity changes sign several times.
    lateral = np.diff(clip.joints[above, wrist, 0])
    assert np.sum(np.diff(np.sign(lateral[np.abs(lateral) > 1e-3])) != 0) >= 3
    other = "left" if hand == "right" else "right"
    assert all(hand in words(c) and other not in words(c) for c in clip.captions)


@pytest.mark.parametrize("side", ["left", "right"])
def test_kick_swings_that_leg_forward_and_up(side):
    clip = plan(("kick", {"side": side}), seed=9)
    ankle, other = (7, 8) if side == "left" else (8, 7)
    floor = clip.joints[..., 1].min()
    assert clip.joints[:, ankle, 1].max() - floor > 0.25
    assert clip.joints[:, other, 1].max() - floor < 0.1
    assert all(side in words(c) for c in clip.captions)


def test_walk_has_opposite_arm_swing_and_knee_flexion():
    clip = plan(("walk", {"direction": "forward", "pace": "normal"}), seed=10)
    joints = clip.joints.astype(np.float64)
    yaw = headings(joints)
    forward = np.stack([np.sin(yaw), np.zeros_like(yaw), np.cos(yaw)], -1)
    ahead = lambda j: ((joints[:, j] - joints[:, 0]) * forward).sum(-1)  # noqa: E731
    legs, arms = ahead(7) - ahead(8), ahead(L_WRIST) - ahead(R_WRIST)
    assert np.corrcoef(legs, arms)[0, 1] < -0.5
    thigh, shin = joints[:, 4] - joints[:, 1], joints[:, 7] - joints[:, 4]
    cos = (thigh * shin).sum(-1) / np.linalg.norm(thigh, axis=-1) / np.linalg.norm(shin, axis=-1)
    assert np.degrees(np.arccos(np.clip(cos, -1, 1))).max() > 30  # the swing knee bends
    pelvis = joints[:, 0, 1]
    assert 0.005 < pelvis.max() - pelvis.min() < 0.2


def test_sequence_is_continuous_and_captioned_in_order():
    clip = plan(
        ("walk", {"direction": "forward", "pace": "normal"}),
        ("turn", {"direction": "left", "degrees": 90}),
        ("wave", {"hand": "right"}),
        seed=12,
    )
    step = np.linalg.norm(np.diff(clip.joints, axis=0), axis=-1)  # (T-1, 22) m per frame
    assert step.max() < 0.3  # nothing faster than 6 m/s (a swinging foot peaks around 4-5 m/s)
    for start, _ in clip.labels["segment_frames"][1:]:  # hand-overs between actions happen near rest
        assert step[start - 3 : start + 3].max() < 0.1, start
    assert clip.labels["actions"] == ["walk", "turn", "wave"]
    for caption in clip.captions:
        text = caption.lower()
        assert "left" in text and "right" in text
        assert text.index("left") < text.rindex("right")  # the turn is described before the wave


def test_random_set_captions_agree_with_measured_motion(clips):
    checked = 0
    for clip in clips:
        if len(clip.labels["actions"]) != 1:
            continue
        joints = clip.joints.astype(np.float64)
        action = clip.labels["actions"][0]
        if action in ("turn", "spin", "curve_walk"):
            change = headings(joints)[-1] - headings(joints)[0]
            other = "right" if change > 0 else "left"
            assert all(other not in words(c) for c in clip.captions), clip.captions
            checked += 1
        elif action == "wave" and clip.labels["hand"] != "both":
            raised = "right" if np.max(joints[:, R_WRIST, 1] - joints[:, R_SHOULDER, 1]) > 0 else "left"
            other = "left" if raised == "right" else "right"
            assert all(raised in words(c) and other not in words(c) for c in clip.captions), clip.captions
            checked += 1
        elif action == "walk":
            forward, left = displacement_in_start_frame(joints)
            if forward < -0.3:
                assert all("forward" not in words(c) for c in clip.captions), clip.captions
            if forward > 0.3:
                assert all(not words(c) & {"backward", "backwards"} for c in clip.captions), clip.captions
            if abs(left) > 0.3:
                other = "right" if left > 0 else "left"
                assert all(other not in words(c) for c in clip.captions), clip.captions
            checked += 1
    assert checked >= 10


# ---------------------------------------------------------------------------------------------------------------
# HumanML3D layout


def test_written_layout_reloads(tmp_path):
    clips = generate_synthetic_set(seed=3, count=20)
    root = write_humanml3d_layout(clips, tmp_path / "synthetic", split_fractions=(0.8, 0.1, 0.1), seed=3)
    names = {c.name for c in clips}
    splits = {s: (root / f"{s}.txt").read_text().split() for s in ("train", "val", "test")}
    assert len(splits["train"]) == 16 and len(splits["val"]) == 2 and len(splits["test"]) == 2
    union = set().union(*map(set, splits.values()))
    assert union == names and sum(map(len, splits.values())) == len(names)
    for clip in clips:
        features = np.load(root / "new_joint_vecs" / f"{clip.name}.npy")
        np.testing.assert_array_equal(features, clip.features)
        joints = np.load(root / "new_joints" / f"{clip.name}.npy")
        assert joints.shape == (len(clip.features), 22, 3)
        lines = (root / "texts" / f"{clip.name}.txt").read_text().strip().split("\n")
        assert [line.split("#")[0] for line in lines] == clip.captions
        for line in lines:
            _, tokens, start, end = line.split("#")
            assert (start, end) == ("0.0", "0.0")
            assert all(re.fullmatch(r"[a-z-]+/[A-Z]+", t) for t in tokens.split())
    np.testing.assert_array_equal(np.load(root / "Mean.npy"), np.load(ASSETS / "humanml3d_mean.npy"))
    np.testing.assert_array_equal(np.load(root / "Std.npy"), np.load(ASSETS / "humanml3d_std.npy"))
