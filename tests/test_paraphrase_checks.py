"""The paraphrase suite's checks against hand-built joint sequences whose answer is known: each check passes on its
example and fails on a counter-example; plus spec validation and the suite file itself."""

from __future__ import annotations

import numpy as np
import pytest

from backend.eval.paraphrase.checks import (
    CheckSpecError,
    analyse,
    count_reversals,
    evaluate_check,
    evaluate_checks,
    validate_check,
)
from backend.eval.paraphrase.suite import MAX_FRAMES, SuiteError, load_suite, parse_suite
from shared.motion.skeleton import PARENTS, TARGET_OFFSETS

FPS = 20


def rest_pose() -> np.ndarray:
    """(22, 3) a standing SMPL body facing +Z (left = +X), feet on y = 0, arms hanging down."""
    joints = np.zeros((22, 3))
    for j in range(1, 22):
        joints[j] = joints[PARENTS[j]] + TARGET_OFFSETS[j]
    # TARGET_OFFSETS is a T-pose: hang each arm down from its shoulder, keeping the bone lengths.
    for shoulder, elbow, wrist in ((16, 18, 20), (17, 19, 21)):
        upper = np.linalg.norm(joints[elbow] - joints[shoulder])
        lower = np.linalg.norm(joints[wrist] - joints[elbow])
        joints[elbow] = joints[shoulder] - [0, upper, 0]
        joints[wrist] = joints[elbow] - [0, lower, 0]
    joints[:, 1] -= joints[[7, 8, 10, 11], 1].min()
    return joints


REST = rest_pose()
LEG = REST[0, 1]  # standing pelvis height


def still(frames: int = 60) -> np.ndarray:
    return np.repeat(REST[None], frames, axis=0)


def yaw_matrix(degrees: float) -> np.ndarray:
    """Rotation about +Y by `degrees` (counter-clockwise seen from above: +Z turns towards +X)."""
    a = np.radians(degrees)
    return np.array([[np.cos(a), 0.0, np.sin(a)], [0.0, 1.0, 0.0], [-np.sin(a), 0.0, np.cos(a)]])


def translate(joints: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Move every frame's whole body horizontally by offsets (T, 3)."""
    return joints + offsets[:, None, :]


def travelling(velocity: tuple[float, float], frames: int = 100) -> np.ndarray:
    """The standing body gliding at a constant (x, z) velocity in m/s (facing +Z all along)."""
    t = np.arange(frames)[:, None] / FPS
    return translate(still(frames), t * np.array([velocity[0], 0.0, velocity[1]]))


def turning(degrees: float, frames: int = 60) -> np.ndarray:
    """The body turning in place by `degrees` about the vertical through the pelvis: still for 5 frames, turning at
    a constant rate, still for the last 5."""
    out = still(frames).copy()
    pivot = REST[0] * [1, 0, 1]
    progress = np.clip((np.arange(frames) - 5) / (frames - 11), 0.0, 1.0)
    for t in range(frames):
        out[t] = (REST - pivot) @ yaw_matrix(degrees * progress[t]).T + pivot
    return out


def check(spec: dict, joints: np.ndarray):
    return evaluate_check(spec, joints, FPS)


# --- travel, stationary, speed ------------------------------------------------------------------------------------


def test_forward_walk_passes_forward_and_fails_backward_and_sideways():
    walk = travelling((0.0, 1.2))  # 5 s at 1.2 m/s along +Z = the initial facing
    assert check({"type": "travel", "direction": "forward", "min_m": 1.0}, walk).passed
    assert check({"type": "travel", "direction": "forward", "min_m": 1.0}, walk).value == pytest.approx(5.94, abs=0.01)
    assert not check({"type": "travel", "direction": "backward", "min_m": 1.0}, walk).passed
    assert not check({"type": "travel", "direction": "left", "min_m": 1.0}, walk).passed
    assert not check({"type": "travel", "direction": "forward", "min_m": 7.0}, walk).passed


def test_left_is_plus_x_for_a_body_facing_plus_z():
    sidestep = travelling((0.5, 0.0))
    assert check({"type": "travel", "direction": "left", "min_m": 1.0}, sidestep).passed
    assert not check({"type": "travel", "direction": "right", "min_m": 1.0}, sidestep).passed
    assert check({"type": "travel", "direction": "right", "min_m": 1.0}, travelling((-0.5, 0.0))).passed


def test_directions_follow_the_initial_facing_not_the_world_axes():
    # The same forward walk turned to face +X (a 90° left turn of everything): still "forward", not "left".
    walk = travelling((0.0, 1.2)) @ yaw_matrix(90).T
    assert check({"type": "travel", "direction": "forward", "min_m": 1.0}, walk).passed
    assert not check({"type": "travel", "direction": "left", "min_m": 1.0}, walk).passed


def test_travel_fails_when_the_sideways_part_dominates():
    diagonal = travelling((1.0, 0.4))  # mostly left, a little forward
    assert not check({"type": "travel", "direction": "forward", "min_m": 1.0}, diagonal).passed
    assert check({"type": "travel", "direction": "forward", "min_m": 1.0, "max_off_axis": 3.0}, diagonal).passed


def test_stationary():
    assert check({"type": "stationary", "max_m": 0.2}, still()).passed
    assert not check({"type": "stationary", "max_m": 0.2}, travelling((0.0, 0.5))).passed


def test_speed_separates_walk_from_run_and_ignores_sway():
    walk, run = travelling((0.0, 1.3)), travelling((0.0, 3.0))
    sway = 0.05 * np.sin(np.arange(100) * 2 * np.pi / 20)  # 5 cm side to side each second
    walk = translate(walk, np.stack([sway, np.zeros(100), np.zeros(100)], axis=1))
    assert check({"type": "speed", "max": 1.8}, walk).passed
    assert check({"type": "speed", "max": 1.8}, walk).value == pytest.approx(1.3, abs=0.05)
    assert not check({"type": "speed", "min": 1.8}, walk).passed
    assert check({"type": "speed", "min": 1.8}, run).passed
    assert not check({"type": "speed", "max": 1.8}, run).passed


def test_speed_window_sees_only_its_part():
    # Standing for 2.5 s, then running at 3 m/s for 2.5 s.
    offsets = np.zeros((100, 3))
    offsets[50:, 2] = np.arange(50) * 3.0 / FPS
    clip = translate(still(100), offsets)
    assert check({"type": "speed", "min": 2.5, "window": [0.55, 1.0]}, clip).passed
    assert not check({"type": "speed", "min": 2.5, "window": [0.0, 0.45]}, clip).passed


# --- heading ----------------------------------------------------------------------------------------------------


def test_left_turn_is_positive_yaw():
    left = turning(90)
    result = check({"type": "heading", "min_deg": 60, "max_deg": 120}, left)
    assert result.passed and result.value == pytest.approx(90, abs=3)
    assert not check({"type": "heading", "max_deg": -60}, left).passed


def test_right_turn_is_negative_and_abs_accepts_either_way():
    right = turning(-90)
    assert check({"type": "heading", "min_deg": -120, "max_deg": -60}, right).passed
    assert not check({"type": "heading", "min_deg": 60}, right).passed
    assert check({"type": "heading", "min_deg": 60, "abs": True}, right).passed
    assert not check({"type": "heading", "min_deg": 60, "abs": True}, still()).passed


def test_a_full_spin_unwraps_past_180():
    spin = turning(360, frames=80)
    assert check({"type": "heading", "min_deg": 300, "max_deg": 420}, spin).value == pytest.approx(360, abs=8)
    assert not check({"type": "heading", "min_deg": -420, "max_deg": -300}, spin).passed


# --- pelvis and feet ------------------------------------------------------------------------------------------------


def lowered(depths: np.ndarray, keep_feet: bool = True) -> np.ndarray:
    """The standing body with everything above the knees lowered by depths (T,) metres (a crude squat)."""
    out = still(len(depths)).copy()
    upper = [j for j in range(22) if j not in (4, 5, 7, 8, 10, 11)] if keep_feet else list(range(22))
    out[:, upper, 1] -= depths[:, None]
    return out


def test_squat_drop_and_return():
    depth = 0.4 * np.sin(np.linspace(0, np.pi, 60))  # down 40 cm and back up
    squat = lowered(depth)
    assert check({"type": "pelvis_drop", "min_m": 0.3}, squat).passed
    assert check({"type": "pelvis_drop", "max_m": 0.1, "at": "end"}, squat).passed
    assert not check({"type": "pelvis_drop", "min_m": 0.3}, still()).passed
    sit = lowered(np.minimum(np.linspace(0, 1.0, 60), 0.45))  # goes down and stays down
    assert check({"type": "pelvis_drop", "min_m": 0.3, "at": "end"}, sit).passed
    assert not check({"type": "pelvis_drop", "max_m": 0.1, "at": "end"}, sit).passed


def test_pelvis_rise_and_low():
    stand_up = lowered(np.linspace(0.45, 0.0, 60))
    assert check({"type": "pelvis_rise", "min_m": 0.3}, stand_up).passed
    assert not check({"type": "pelvis_rise", "min_m": 0.3}, lowered(np.linspace(0.0, 0.45, 60))).passed
    crouched = lowered(np.full(60, 0.35))
    assert check({"type": "pelvis_low", "max_m": LEG - 0.3, "min_fraction": 0.9}, crouched).passed
    assert not check({"type": "pelvis_low", "max_m": LEG - 0.3, "min_fraction": 0.9}, still()).passed


def jumping(heights: np.ndarray) -> np.ndarray:
    """The whole body lifted by heights (T,) metres."""
    return still(len(heights)) + np.array([0.0, 1.0, 0.0]) * heights[:, None, None]


def test_jump_is_airborne_and_standing_is_not():
    heights = np.zeros(60)
    heights[20:30] = 0.25 * np.sin(np.linspace(0, np.pi, 10))
    assert check({"type": "airborne", "min_frames": 3}, jumping(heights)).passed
    assert not check({"type": "airborne", "min_frames": 1}, still()).passed


def test_hop_on_left_foot_raises_the_right_foot_and_not_the_left():
    hop = still(60).copy()
    hop[:, [8, 11], 1] += 0.25  # right foot held up all along
    hop[:, [5], 1] += 0.12
    lift = np.zeros(60)
    lift[10:16] = lift[30:36] = 0.1  # two small hops
    hop[:, :, 1] += lift[:, None]
    assert check({"type": "foot_raised", "side": "right", "min_fraction": 0.5}, hop).passed
    assert not check({"type": "foot_raised", "side": "left", "min_fraction": 0.5}, hop).passed
    assert check({"type": "airborne", "min_frames": 2}, hop).passed
    assert check({"type": "foot_raised", "side": "left", "max_fraction": 0.3}, hop).passed


def kicking(side: str, frames: int = 40) -> np.ndarray:
    """The side's ankle and toe swing forward and up to 0.5 m and back (a straight-leg kick, crudely)."""
    ankle, toe = (7, 10) if side == "left" else (8, 11)
    out = still(frames).copy()
    swing = np.sin(np.linspace(0, np.pi, frames))
    for j in (ankle, toe):
        out[:, j, 1] += 0.5 * swing
        out[:, j, 2] += 0.6 * swing
    return out


def test_kick_names_the_leg():
    right = kicking("right")
    assert check({"type": "kick", "side": "right"}, right).passed
    assert not check({"type": "kick", "side": "left"}, right).passed
    assert check({"type": "foot_height", "side": "left", "max_m": 0.2}, right).passed
    assert not check({"type": "foot_height", "side": "right", "max_m": 0.2}, right).passed
    backward = right.copy()
    backward[:, [8, 11], 2] -= 1.2 * np.sin(np.linspace(0, np.pi, 40))[:, None]  # the foot goes up behind
    assert not check({"type": "kick", "side": "right"}, backward).passed


# --- arms -------------------------------------------------------------------------------------------------------


def raising(side: str, height: float, frames: int = 40) -> np.ndarray:
    """The side's elbow and wrist lifted to `height` above the head's height (straight up, held), from frame 10."""
    elbow, wrist = (18, 20) if side == "left" else (19, 21)
    out = still(frames).copy()
    out[10:, wrist, 1] = REST[15, 1] + height
    out[10:, elbow, 1] = (REST[16, 1] + out[10, wrist, 1]) / 2
    return out


def test_wrist_above_head_names_the_side():
    left_up = raising("left", 0.25)
    assert check({"type": "wrist_above", "side": "left", "ref": "head"}, left_up).passed
    assert not check({"type": "wrist_above", "side": "right", "ref": "head"}, left_up).passed
    assert not check({"type": "wrist_above", "side": "both", "ref": "head"}, left_up).passed
    assert check({"type": "wrist_not_above", "side": "right", "ref": "shoulder"}, left_up).passed
    assert not check({"type": "wrist_not_above", "side": "left", "ref": "shoulder"}, left_up).passed
    assert not check({"type": "wrist_above", "side": "left", "ref": "head"}, raising("left", -0.2)).passed
    both = raising("left", 0.2)
    both[:, [19, 21]] = raising("right", 0.2)[:, [19, 21]]
    assert check({"type": "wrist_above", "side": "both", "ref": "head"}, both).passed


def test_wave_oscillates_while_the_hand_is_up_and_a_raise_and_hold_does_not():
    hold = raising("right", 0.0, frames=80)
    wave = hold.copy()
    wave[10:, 21, 0] += 0.12 * np.sin(np.arange(70) * 2 * np.pi / 14)  # side to side, 12 cm, 1.4 Hz
    spec = {"type": "oscillation", "joint": "right_wrist", "raised": True, "min_reversals": 3}
    assert check(spec, wave).passed
    assert not check(spec, hold).passed
    assert not check({**spec, "joint": "left_wrist"}, wave).passed


def test_count_reversals_needs_the_amplitude():
    signal = 0.1 * np.sin(np.linspace(0, 4 * np.pi, 80))  # two periods: peak, trough, peak, trough
    assert count_reversals(signal, 0.05) == 4
    assert count_reversals(signal[:30], 0.05) == 1  # up to the first peak and down past it
    assert count_reversals(signal, 0.3) == 0


def test_bow_leans_the_torso_forward():
    bow = still(40).copy()
    pelvis = REST[0]
    tilt = np.radians(50) * np.sin(np.linspace(0, np.pi, 40))
    upper = [3, 6, 9, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21]
    for t in range(40):
        c, s = np.cos(tilt[t]), np.sin(tilt[t])
        rotate_forward = np.array([[1, 0, 0], [0, c, -s], [0, s, c]])  # about +X: +Y tips towards +Z (forward)
        bow[t, upper] = (REST[upper] - pelvis) @ rotate_forward.T + pelvis
    result = check({"type": "torso_pitch", "min_deg": 35}, bow)
    assert result.passed and result.value == pytest.approx(50, abs=6)
    assert not check({"type": "torso_pitch", "min_deg": 35}, still()).passed
    leaning_back = bow.copy()
    leaning_back[:, :, 2] = 2 * REST[None, :, 2] - bow[:, :, 2]  # mirror the lean backwards
    assert not check({"type": "torso_pitch", "min_deg": 35}, leaning_back).passed


def test_punch_is_a_fast_forward_wrist():
    punch = still(30).copy()
    reach = np.clip(np.arange(30) - 10, 0, 4) / 4 * 0.6  # the right wrist goes 0.6 m forward in 0.2 s
    punch[:, 21, 2] += reach
    punch[:, 21, 1] = REST[17, 1] - 0.05 + 0 * reach
    result = check({"type": "wrist_thrust", "side": "right", "min_speed": 2.0, "min_reach": 0.3}, punch)
    assert result.passed and result.value == pytest.approx(3.0, abs=0.5)
    assert not check({"type": "wrist_thrust", "side": "left", "min_speed": 2.0}, punch).passed
    slow = still(100).copy()
    slow[:, 21, 2] += np.linspace(0, 0.6, 100)  # the same reach over 5 s: a reach, not a punch
    slow[:, 21, 1] = REST[17, 1] - 0.05
    assert not check({"type": "wrist_thrust", "side": "right", "min_speed": 2.0, "min_reach": 0.3}, slow).passed


# --- order and any --------------------------------------------------------------------------------------------------


def test_order_needs_the_first_event_before_the_second():
    both_up = raising("left", 0.2, 40)
    both_up[:, [19, 21]] = raising("right", 0.2, 40)[:, [19, 21]]
    arms_then_squat = np.concatenate([both_up, lowered(0.4 * np.sin(np.linspace(0, np.pi, 40)))])
    up = {"type": "wrist_above", "side": "both", "ref": "head", "min_frames": 3}
    down = {"type": "pelvis_drop", "min_m": 0.3}
    assert check({"type": "order", "first": up, "then": down}, arms_then_squat).passed
    assert not check({"type": "order", "first": down, "then": up}, arms_then_squat).passed


def test_any_passes_when_one_passes():
    right = kicking("right")
    either = {"type": "any", "of": [{"type": "kick", "side": "left"}, {"type": "kick", "side": "right"}]}
    assert check(either, right).passed
    assert not check(either, still()).passed


def test_windows_restrict_what_is_seen():
    left = turning(90)
    assert check({"type": "heading", "min_deg": 30, "window": [0.0, 0.5]}, left).passed
    assert not check({"type": "heading", "min_deg": 80, "window": [0.0, 0.5]}, left).passed


# --- specs and the suite ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"type": "fly"}, "type"),
        ({"type": "travel", "min_m": 1}, "direction"),
        ({"type": "travel", "direction": "up", "min_m": 1}, "direction"),
        ({"type": "travel", "direction": "forward", "min_m": "far"}, "min_m"),
        ({"type": "travel", "direction": "forward", "min_m": -1}, "min_m"),
        ({"type": "speed", "min": 1, "window": [0.5, 0.2]}, "window"),
        ({"type": "kick", "side": "both"}, "side"),
        ({"type": "heading", "min_deg": 10, "sideways": 3}, "sideways"),
        ({"type": "oscillation", "joint": "pelvis", "raised": True}, "raised"),
        ({"type": "order", "first": {"type": "airborne"}, "then": {"type": "nope"}}, "then"),
    ],
)
def test_bad_specs_are_refused_naming_the_field(spec, field):
    with pytest.raises(CheckSpecError, match=field):
        validate_check(spec)


def test_bad_joints_are_refused():
    with pytest.raises(CheckSpecError, match="joints"):
        analyse(np.zeros((10, 21, 3)))
    bad = still(10).copy()
    bad[3, 4, 1] = np.nan
    with pytest.raises(CheckSpecError, match="NaN"):
        evaluate_checks([{"type": "airborne"}], bad)


def test_the_bundled_suite_is_well_formed():
    suite = load_suite()
    assert len(suite.prompts) >= 100
    assert suite.seeds == (0, 1, 2)
    assert all(20 <= p.frames <= MAX_FRAMES for p in suite.prompts)
    heldout = suite.select("heldout")
    assert 0.2 * len(suite.prompts) <= len(heldout) <= 0.5 * len(suite.prompts)
    families = {f for p in suite.prompts for f in p.families}
    for wanted in ("bow", "punch", "throw", "sidestep", "crawl", "climb", "hop", "jog", "sprint", "sequence"):
        assert wanted in families
    # Every check in the suite evaluates on a plain standing clip without error.
    for p in suite.prompts:
        evaluate_checks(list(p.checks), still(p.frames))


def test_malformed_suites_are_refused_naming_the_field():
    good = {"id": "a", "prompt": "x", "families": ["walk"], "frames": 100, "split": "dev",
            "checks": [{"type": "airborne"}]}  # fmt: skip
    with pytest.raises(SuiteError, match=r"frames"):
        parse_suite({"prompts": [{**good, "frames": 400}]})
    with pytest.raises(SuiteError, match=r"families"):
        parse_suite({"prompts": [{**good, "families": ["fly"]}]})
    with pytest.raises(SuiteError, match=r"checks\[0\]"):
        parse_suite({"prompts": [{**good, "checks": [{"type": "nope"}]}]})
    with pytest.raises(SuiteError, match="duplicate"):
        parse_suite({"prompts": [good, {**good, "id": "b"}]})
    with pytest.raises(SuiteError, match="split"):
        load_suite().select("test")
