"""The action vocabulary: each action turns (rng, body, start state, frame budget) into pose tracks and a label.

Every action starts from and returns to the relaxed standing posture (angle tracks are deltas from the clip's
neutral pose that vanish at both ends, eased over 0.3–0.7 s) and leaves the feet planted, so actions chain
into sequences with a continuous root path and smooth poses. Labels are plain dicts (see `ACTIONS`).
Distances in metres, speeds in m/s, angles in degrees in labels and radians in tracks; + yaw = left.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .curves import FPS, envelope, frame_times, hermite, smooth, smoothstep
from .locomotion import (
    Gait,
    State,
    end_state,
    gait_seconds,
    gait_tracks,
    ramp_steps,
    steps_for_seconds,
    still_tracks,
)
from .rig import SIDE_SIGN, Body, Tracks, foot_vectors, heading_vectors

G = 9.81  # m/s²
SEATED_SPINE, SEATED_ARMS = 0.12, (0.45, 0.0, 0.0, 0.8)  # seated trunk bend, arm pose (hands on the thighs)


@dataclass
class Segment:
    """One action: its tracks, the state after its last frame, and its label."""

    tracks: Tracks
    end: State
    label: dict


ActionFn = Callable[[np.random.Generator, Body, State, int], "Segment | None"]


def _seconds_to_frames(seconds: float) -> int:
    return math.ceil(seconds * FPS) + 1


# ---------------------------------------------------------------------------------------------------------------
# Locomotion-based actions


def _locomote(
    rng: np.random.Generator,
    body: Body,
    state: State,
    max_frames: int,
    gait: Gait,
    steps_range: tuple[int, int],
    label: dict,
    start_delay: float = 0.2,
) -> Segment | None:
    fit = steps_for_seconds(gait, (max_frames - 1) / FPS, start_delay)
    low, high = steps_range
    if fit < low:
        return None
    steps = int(rng.integers(low, min(high, fit) + 1))
    frames = _seconds_to_frames(gait_seconds(gait, steps, start_delay))
    if frames > max_frames:
        return None
    tracks = gait_tracks(body, state, gait, steps, frames, start_delay)
    travel = tracks.root[-1] - tracks.root[0]
    forward, left = heading_vectors(np.asarray(state.heading))
    label = {
        **label,
        "steps": steps,
        "distance": round(float(np.hypot(travel[0], travel[2])), 3),
        "forward_m": round(float(travel @ forward), 3),
        "left_m": round(float(travel @ left), 3),
    }
    return Segment(tracks, end_state(tracks), label)


def _min_steps(gait: Gait) -> int:
    """Enough steps to reach the full speed between the acceleration and deceleration ramps."""
    return math.ceil(2 * ramp_steps(gait) + 0.5)


PACES = {"slow": (0.7, 0.95), "normal": (1.05, 1.35), "fast": (1.45, 1.7)}


def walk(rng, body, state, max_frames, direction: str = "forward", pace: str = "normal") -> Segment | None:
    """Walk forward/backward (any pace) or sidestep left/right (slow), from standing to standing."""
    if direction == "forward":
        speed = rng.uniform(*PACES[pace])
        gait = Gait(
            speed=speed,
            cadence=1.5 + 0.45 * speed + rng.uniform(-0.08, 0.08),
            swing=0.76 + 0.08 * speed,
            step_height=rng.uniform(0.06, 0.09),
            heel_lift=rng.uniform(0.45, 0.65),
            bob=0.01,
            sway=rng.uniform(0.01, 0.025),
            lean=0.02 + 0.03 * speed,
            arm_gain=rng.uniform(0.45, 0.7),
            elbow=rng.uniform(0.1, 0.3) + 0.1 * speed,
            first_foot=int(rng.integers(2)),
        )
    elif direction == "backward":
        speed = rng.uniform(0.55, 0.95)
        pace = "slow" if speed < 0.75 else "normal"
        gait = Gait(
            speed=speed,
            direction=(0.0, -1.0),
            cadence=1.5 + 0.4 * speed,
            swing=0.78,
            step_height=rng.uniform(0.05, 0.07),
            heel_lift=0.0,
            bob=0.008,
            lean=-0.04,
            arm_gain=rng.uniform(0.3, 0.5),
            first_foot=int(rng.integers(2)),
        )
    else:
        speed = rng.uniform(0.3, 0.55)
        pace = "slow"
        sign = 1.0 if direction == "left" else -1.0
        gait = Gait(
            speed=speed,
            direction=(sign, 0.0),
            cadence=rng.uniform(1.4, 1.8),
            swing=0.75,
            step_height=rng.uniform(0.045, 0.065),
            heel_lift=0.0,
            bob=0.005,
            sway=0.0,
            lean=0.0,
            arm_gain=0.0,
            elbow=0.1,
            width=1.1,
            first_foot=0 if direction == "left" else 1,
        )
    low = _min_steps(gait)
    label = {"action": "walk", "direction": direction, "pace": pace, "speed": round(speed, 3)}
    return _locomote(rng, body, state, max_frames, gait, (low, low + 8), label)


@dataclass(frozen=True)
class RunStyle:
    """A running gait's ranges (drawn uniformly per clip) and fixed values."""

    cadence: tuple[float, float]  # steps per second
    swing: tuple[float, float]
    step_height: tuple[float, float]  # m
    heel_lift: tuple[float, float]
    bob: float
    sway: float
    crouch: float
    lean: tuple[float, float]  # rad
    arm_gain: tuple[float, float]
    elbow: tuple[float, float]  # rad
    width: float


RUN_STYLE = RunStyle((2.6, 3.0), (1.25, 1.35), (0.12, 0.18), (0.5, 0.7), -0.025, 0.01, 0.04, (0.12, 0.25), (0.6, 0.8),
                     (1.1, 1.4), 0.45)  # fmt: skip
SPRINT_STYLE = RunStyle((3.3, 3.8), (1.35, 1.45), (0.2, 0.28), (0.6, 0.8), -0.03, 0.005, 0.06, (0.3, 0.4), (0.8, 1.0),
                        (1.3, 1.5), 0.35)  # longer strides, more lean and arm drive  # fmt: skip


def _running_gait(rng: np.random.Generator, speed: float, style: RunStyle) -> Gait:
    """A Gait at `speed` with the style's ranges drawn in a fixed order (cadence, swing, step height, heel lift,
    lean, arm gain, elbow, first foot): the default set's random stream depends on it."""
    return Gait(
        speed=speed,
        cadence=rng.uniform(*style.cadence),
        swing=rng.uniform(*style.swing),
        step_height=rng.uniform(*style.step_height),
        heel_lift=rng.uniform(*style.heel_lift),
        bob=style.bob,
        sway=style.sway,
        crouch=style.crouch,
        lean=rng.uniform(*style.lean),
        arm_gain=rng.uniform(*style.arm_gain),
        elbow=rng.uniform(*style.elbow),
        width=style.width,
        first_foot=int(rng.integers(2)),
    )


def run(rng, body, state, max_frames, pace: str | None = None) -> Segment | None:
    """Run (or jog) forward with a flight phase, from standing to standing.

    pace None (the default set's draw) labels "jog" or "run" by speed; "jog" (2.0–2.6 m/s) or "sprint"
    (4.8–6.0 m/s, longer strides, more lean, more steps to reach full speed) ask for that pace.
    """
    if pace == "sprint":
        return _sprint(rng, body, state, max_frames)
    speed = rng.uniform(2.0, 2.6) if pace == "jog" else rng.uniform(2.1, 3.0)
    gait = _running_gait(rng, speed, RUN_STYLE)
    low = _min_steps(gait)
    label = {"action": "run", "direction": "forward", "pace": "jog" if speed < 2.7 else "run", "speed": round(speed, 3)}
    if pace == "jog":  # enough steps at full pace that the jog's median speed is the jogging speed
        return _locomote(rng, body, state, max_frames, gait, (low + 3, low + 8), label)
    return _locomote(rng, body, state, max_frames, gait, (low, low + 6), label)


def _sprint(rng, body, state, max_frames) -> Segment | None:
    """Sprint forward: 4.8–6.0 m/s, long flights, strong lean and arm drive."""
    speed = rng.uniform(4.8, 6.0)
    gait = _running_gait(rng, speed, SPRINT_STYLE)
    low = _min_steps(gait) + 6
    label = {"action": "run", "direction": "forward", "pace": "sprint", "speed": round(speed, 3)}
    return _locomote(rng, body, state, max_frames, gait, (low, low + 8), label)


def turn(rng, body, state, max_frames, direction: str = "left", degrees: float = 90.0) -> Segment | None:
    """Turn in place by `degrees` to the left or right, stepping."""
    sign = 1.0 if direction == "left" else -1.0
    angle = degrees + rng.uniform(-8.0, 8.0)
    steps = 2 + round(angle / 55.0)
    gait = Gait(
        speed=0.0,
        turn=sign * math.radians(angle),
        cadence=rng.uniform(1.6, 2.0),
        swing=0.75,
        step_height=rng.uniform(0.04, 0.06),
        heel_lift=0.0,
        bob=0.005,
        sway=0.01,
        lean=0.0,
        arm_gain=0.2,
        first_foot=0 if direction == "left" else 1,
    )
    label = {"action": "turn", "direction": direction, "degrees": round(angle, 1)}
    return _locomote(rng, body, state, max_frames, gait, (steps, steps), label)


def spin(rng, body, state, max_frames, direction: str = "left") -> Segment | None:
    """Spin around in place (300–420°) with quick steps, arms slightly out."""
    sign = 1.0 if direction == "left" else -1.0
    angle = rng.uniform(300.0, 420.0)
    steps = 3 + round(angle / 55.0)
    gait = Gait(
        speed=0.0,
        turn=sign * math.radians(angle),
        cadence=rng.uniform(2.1, 2.5),
        swing=0.7,
        step_height=rng.uniform(0.04, 0.06),
        heel_lift=0.0,
        bob=0.0,
        sway=0.0,
        lean=0.0,
        arm_gain=0.0,
        elbow=0.3,
        first_foot=0 if direction == "left" else 1,
    )
    segment = _locomote(rng, body, state, max_frames, gait, (steps, steps), {})
    if segment is None:
        return None
    t = frame_times(len(segment.tracks))
    out = envelope(t, 0.1, 0.4, t[-1], 0.5)
    segment.tracks.arms[:, :, 1] += rng.uniform(0.3, 0.6) * out[:, None]
    segment.label = {**segment.label, "action": "spin", "direction": direction, "degrees": round(angle, 1)}
    return segment


def curve_walk(rng, body, state, max_frames, direction: str = "left") -> Segment | None:
    """Walk forward while curving left or right (60–180°), or round a full circle."""
    sign = 1.0 if direction == "left" else -1.0
    circle = rng.random() < 0.2
    angle = rng.uniform(330.0, 360.0) if circle else rng.uniform(60.0, 180.0)
    speed = rng.uniform(0.9, 1.3)
    gait = Gait(
        speed=speed,
        turn=sign * math.radians(angle),
        cadence=1.5 + 0.45 * speed,
        swing=0.76 + 0.08 * speed,
        step_height=rng.uniform(0.06, 0.08),
        heel_lift=0.5,
        bob=0.01,
        lean=0.05,
        arm_gain=0.55,
        first_foot=0 if direction == "left" else 1,
    )
    low = max(_min_steps(gait), 6 + int(angle / 40.0)) if circle else max(_min_steps(gait), 5)
    label = {
        "action": "curve_walk",
        "direction": direction,
        "degrees": round(angle, 1),
        "circle": circle,
        "pace": "normal",
        "speed": round(speed, 3),
    }
    return _locomote(rng, body, state, max_frames, gait, (low, low + 5), label)


def crouch_walk(rng, body, state, max_frames) -> Segment | None:
    """Walk forward slowly in a crouch, trunk bent forward."""
    speed = rng.uniform(0.45, 0.8)
    gait = Gait(
        speed=speed,
        cadence=rng.uniform(1.3, 1.6),
        swing=0.75,
        step_height=rng.uniform(0.06, 0.08),
        heel_lift=0.2,
        bob=0.0,
        sway=0.015,
        crouch=rng.uniform(0.2, 0.3),
        lean=rng.uniform(0.45, 0.7),
        arm_gain=0.3,
        elbow=0.6,
        first_foot=int(rng.integers(2)),
    )
    low = _min_steps(gait) + 1
    label = {"action": "crouch_walk", "direction": "forward", "pace": "slow", "speed": round(speed, 3)}
    return _locomote(rng, body, state, max_frames, gait, (low, low + 5), label, start_delay=0.7)


# ---------------------------------------------------------------------------------------------------------------
# Standing actions (feet planted unless stated)


def idle(rng, body, state, max_frames) -> Segment | None:
    """Stand still: breathing, a slow weight shift, a glance around."""
    seconds = rng.uniform(2.0, 4.5)
    frames = min(_seconds_to_frames(seconds), max_frames)
    if frames < 30:
        return None
    tracks = still_tracks(body, state, frames)
    t = frame_times(frames)
    env = envelope(t, 0.0, 0.6, t[-1], 0.6)
    _, left = heading_vectors(tracks.heading)
    shift = rng.uniform(0.01, 0.03) * np.sin(2 * np.pi * t / rng.uniform(2.5, 4.0) + rng.uniform(0, 6.3)) * env
    tracks.root += shift[:, None] * left
    tracks.pelvis[:, 1] = -2.0 * shift
    tracks.spine[:, 0] = 0.02 * np.sin(2 * np.pi * 0.25 * t) * env
    tracks.head[:, 1] = rng.uniform(-0.5, 0.5) * np.sin(np.pi * t / t[-1]) * env
    return Segment(tracks, end_state(tracks), {"action": "idle"})


def _arm_side(hand: str) -> list[int]:
    return {"left": [0], "right": [1], "both": [0, 1]}[hand]


def wave(rng, body, state, max_frames, hand: str = "right") -> Segment | None:
    """Raise a hand (or both) above the shoulder and wave it side to side, then lower it."""
    raise_s, lower_s = rng.uniform(0.4, 0.7), rng.uniform(0.4, 0.7)
    period, waves = rng.uniform(0.35, 0.6), int(rng.integers(2, 6))
    start = rng.uniform(0.1, 0.3)
    t_up, t_down = start + raise_s, start + raise_s + waves * period
    frames = _seconds_to_frames(t_down + lower_s + rng.uniform(0.1, 0.4))
    if frames > max_frames:
        return None
    tracks = still_tracks(body, state, frames)
    t = frame_times(frames)
    keys = [0.0, start, t_up, t_down, t_down + lower_s]
    held = hermite(t, keys, [0.0, 0.0, 1.0, 1.0, 0.0])
    swinging = envelope(t, t_up - 0.15, 0.3, t_down + 0.15, 0.3)
    abduction, elbow = rng.uniform(1.55, 2.0), rng.uniform(1.3, 1.6)
    for side in _arm_side(hand):
        phase = rng.uniform(0, 0.5) if hand == "both" else 0.0
        tracks.arms[:, side, 0] = rng.uniform(0.1, 0.4) * held
        tracks.arms[:, side, 1] = abduction * held
        tracks.arms[:, side, 2] = rng.uniform(1.3, 1.55) * held
        tracks.arms[:, side, 3] = elbow * held + 0.4 * swinging * np.sin(2 * np.pi * (t - t_up) / period + phase)
    if hand != "both":
        tracks.spine[:, 1] = -SIDE_SIGN[_arm_side(hand)[0]] * 0.05 * held
    return Segment(tracks, end_state(tracks), {"action": "wave", "hand": hand, "waves": waves})


def _held_pose(
    body: Body, state: State, max_frames: int, seconds: tuple[float, float, float, float, float]
) -> tuple[Tracks, np.ndarray] | None:
    """Standing tracks for (wait, move in, hold, move out, rest) seconds and the pose's weight over them [T]:
    0, eased to 1, held, eased back to 0; None when that is longer than max_frames."""
    start, move_in, hold, move_out, rest = seconds
    standing = _standing(body, state, max_frames, start + move_in + hold + move_out + rest)
    if standing is None:
        return None
    tracks, t = standing
    knots = [0.0, start, start + move_in, start + move_in + hold, start + move_in + hold + move_out]
    return tracks, hermite(t, knots, [0, 0, 1, 1, 0])


def _standing(body: Body, state: State, max_frames: int, seconds: float) -> tuple[Tracks, np.ndarray] | None:
    """Standing tracks of `seconds` and their frame times [T] (s); None when longer than max_frames."""
    frames = _seconds_to_frames(seconds)
    if frames > max_frames:
        return None
    return still_tracks(body, state, frames), frame_times(frames)


def raise_arms(rng, body, state, max_frames, hand: str = "both", style: str = "up") -> Segment | None:
    """Raise one or both arms forward, straight up or out to the side, hold, and lower them."""
    start, up_s, hold, down_s = (
        rng.uniform(0.1, 0.4),
        rng.uniform(0.5, 0.9),
        rng.uniform(0.4, 1.8),
        rng.uniform(0.5, 0.9),
    )
    posed = _held_pose(body, state, max_frames, (start, up_s, hold, down_s, rng.uniform(0.1, 0.4)))
    if posed is None:
        return None
    tracks, held = posed
    for side in _arm_side(hand):
        if style == "forward":
            tracks.arms[:, side, 0] = rng.uniform(1.35, 1.65) * held
        elif style == "up":
            tracks.arms[:, side, 0] = rng.uniform(2.6, 2.95) * held
            tracks.arms[:, side, 1] = rng.uniform(0.0, 0.25) * held
        else:
            tracks.arms[:, side, 1] = rng.uniform(1.4, 1.6) * held
        tracks.arms[:, side, 3] = -0.15 * held  # straighten the elbow (cancels most of the neutral bend)
    label = {"action": "raise_arms", "hand": hand, "style": style}
    return Segment(tracks, end_state(tracks), label)


def kick(rng, body, state, max_frames, side: str = "right") -> Segment | None:
    """Shift the weight onto one foot and kick forward with the other, then put it back down."""
    f = 0 if side == "left" else 1
    t0 = rng.uniform(0.1, 0.3)
    t_lift = t0 + rng.uniform(0.25, 0.4)
    t_wind = t_lift + rng.uniform(0.25, 0.35)
    t_hit = t_wind + rng.uniform(0.18, 0.28)
    t_back = t_hit + rng.uniform(0.25, 0.35)
    t_down = round((t_back + rng.uniform(0.35, 0.45)) * FPS) / FPS  # touch-down on a whole frame
    t_over = t_down - 0.15
    end = t_down + rng.uniform(0.5, 0.8)
    standing = _standing(body, state, max_frames, end)
    if standing is None:
        return None
    tracks, t = standing
    reach, height = rng.uniform(0.45, 0.7), rng.uniform(0.3, 0.7)
    # (forward, up) of the ankle relative to its footprint; the touch-down comes straight down at 0.6 m/s.
    keys = [0.0, t_lift, t_wind, t_hit, t_back, t_over, t_down]
    fwd = hermite(t, keys, [0, 0, -0.2, reach, 0.15, 0.0, 0.0])
    up = hermite(t, keys, [0, 0, 0.12, height, 0.2, 0.05, 0.0], [0, 0, 0, 0, 0, -0.6, -0.6])
    forward, _ = heading_vectors(np.asarray(state.heading))
    air = (t > t_lift) & (t < t_down)
    tracks.ankles[:, f] = state.ankles[f] + fwd[:, None] * forward + up[:, None] * np.array([0.0, 1.0, 0.0])
    tracks.foot_pitch[:, f] = hermite(t, keys, [0, 0, 0.3, 0.6, 0.3, 0.0, 0.0])
    tracks.planted[air, f] = False
    shift = hermite(t, [0.0, t0, t_lift, t_down, end - 0.1], [0, 0, 1, 1, 0])
    # Weight over the stance foot: the pelvis moves 3/4 of the way towards it horizontally.
    towards_stance = (state.ankles[1 - f] - state.root) * np.array([1.0, 0.0, 1.0])
    tracks.root += 0.75 * shift[:, None] * towards_stance
    kick_pose = hermite(t, [0.0, t_wind, t_hit, t_back, t_down], [0, 0.3, 1.0, 0.5, 0.0])
    tracks.spine[:, 0] = -0.15 * kick_pose
    tracks.pelvis[:, 0] = -0.1 * kick_pose
    tracks.arms[:, :, 1] = 0.35 * shift[:, None]
    tracks.arms[:, 1 - f, 0] = 0.5 * kick_pose
    tracks.arms[:, f, 0] = -0.3 * kick_pose
    _keep_planted_above_floor(body, tracks)
    return Segment(tracks, end_state(tracks), {"action": "kick", "side": side, "height": round(height, 3)})


def _keep_planted_above_floor(body: Body, tracks: Tracks) -> None:
    toes_y = tracks.ankles[..., 1] + foot_vectors(body, tracks.foot_yaw, tracks.foot_pitch)[..., 1]
    tracks.ankles[..., 1] += np.where(~tracks.planted, np.maximum(0.02 - toes_y, 0.0), 0.0)


def squat(rng, body, state, max_frames) -> Segment | None:
    """Squat down (pelvis 0.3–0.45 m lower, hips back) and stand up again, 1–3 times."""
    count = int(rng.choice([1, 1, 2, 3]))
    depth, back = rng.uniform(0.3, 0.45), rng.uniform(0.06, 0.14)
    arms_forward = rng.random() < 0.5
    keys, values, t_now = [0.0], [0.0], rng.uniform(0.2, 0.4)
    for _ in range(count):
        down, hold, up = rng.uniform(0.6, 0.9), rng.uniform(0.1, 0.5), rng.uniform(0.6, 0.9)
        keys += [t_now, t_now + down, t_now + down + hold]
        values += [0.0, 1.0, 1.0]
        t_now += down + hold + up
    keys.append(t_now)
    values.append(0.0)
    frames = _seconds_to_frames(t_now + rng.uniform(0.2, 0.5))
    if frames > max_frames:
        return None
    tracks = still_tracks(body, state, frames)
    t = frame_times(frames)
    low = hermite(t, keys, values)
    forward, _ = heading_vectors(tracks.heading)
    tracks.root[:, 1] -= depth * low
    tracks.root -= back * low[:, None] * forward
    tracks.spine[:, 0] = rng.uniform(0.3, 0.55) * low
    tracks.pelvis[:, 0] = 0.25 * low
    tracks.head[:, 0] = -0.25 * low
    if arms_forward:
        tracks.arms[:, :, 0] = rng.uniform(1.2, 1.5) * low[:, None]
    else:
        tracks.arms[:, :, 0] = 0.4 * low[:, None]
        tracks.arms[:, :, 3] = 0.6 * low[:, None]
    label = {"action": "squat", "count": count, "depth": round(depth, 3)}
    return Segment(tracks, end_state(tracks), label)


def _sit_motion(rng, body, state, frames, t_move: float, duration: float, sitting_down: bool) -> Tracks:
    """Tracks of moving between standing and sitting on an (invisible) chair behind the feet."""
    tracks = still_tracks(body, state, frames)
    t = frame_times(frames)
    u = smoothstep((t - t_move) / duration)
    seated = u if sitting_down else 1.0 - u
    forward, _ = heading_vectors(tracks.heading)
    drop, back = rng.uniform(0.4, 0.47), rng.uniform(0.22, 0.3)
    if sitting_down:
        tracks.root[:, 1] -= drop * seated
        tracks.root -= back * seated[:, None] * forward
    else:  # the state is seated: rise to standing over the feet
        standing_root = _standing_root_over_feet(body, state)
        tracks.root += (1.0 - seated)[:, None] * (standing_root - state.root)
    lean = np.sin(np.pi * np.clip((t - t_move) / duration, 0.0, 1.0)) ** 2
    tracks.spine[:, 0] = SEATED_SPINE * seated + rng.uniform(0.45, 0.7) * lean
    tracks.pelvis[:, 0] = 0.25 * lean
    tracks.head[:, 0] = -0.2 * lean
    tracks.arms += np.array(SEATED_ARMS) * seated[:, None, None]
    tracks.arms[:, :, 0] += 0.5 * lean[:, None]
    return tracks


def _standing_root_over_feet(body: Body, state: State) -> np.ndarray:
    forward, left = heading_vectors(np.asarray(state.heading))
    centre = state.ankles.mean(0)
    st = body.stance.mean(0)
    root = centre - st[0] * left - st[2] * forward
    root[1] = body.standing_height
    return root


def sit_down(rng, body, state, max_frames) -> Segment | None:
    """Sit down onto a chair-height seat behind the feet (pelvis ~0.45 m lower) and stay seated."""
    t_move, duration = rng.uniform(0.2, 0.6), rng.uniform(1.0, 1.6)
    frames = _seconds_to_frames(t_move + duration + rng.uniform(0.4, 1.5))
    if frames > max_frames:
        return None
    tracks = _sit_motion(rng, body, state, frames, t_move, duration, True)
    return Segment(tracks, end_state(tracks, seated=True), {"action": "sit_down"})


def stand_up(rng, body, state, max_frames) -> Segment | None:
    """From sitting (`state.seated`), stand up over the feet."""
    t_move, duration = rng.uniform(0.3, 1.0), rng.uniform(1.0, 1.5)
    frames = _seconds_to_frames(t_move + duration + rng.uniform(0.3, 0.8))
    if frames > max_frames or not state.seated:
        return None
    tracks = _sit_motion(rng, body, state, frames, t_move, duration, False)
    return Segment(tracks, end_state(tracks), {"action": "stand_up"})


def seated_state(rng: np.random.Generator, body: Body, state: State) -> State:
    """The state at the end of sitting down from `state` (a clip that starts seated)."""
    tracks = _sit_motion(rng, body, state, 2, -10.0, 1.0, True)
    return end_state(tracks, seated=True)


def jump(rng, body, state, max_frames, direction: str = "in_place") -> Segment | None:
    """Jump up (in place, 1–3 times) or forward (0.5–1.1 m, 1–2 times): crouch, push off, fly, land, recover."""
    count = int(rng.choice([1, 1, 2, 3] if direction == "in_place" else [1, 1, 2]))
    parts, current, heights, distance = [], state, [], 0.0
    budget = max_frames
    for i in range(count):
        part = _jump_once(rng, body, current, direction, pre=0.2 if i == 0 else 0.05)
        if len(part.tracks) > budget:
            break
        parts.append(part.tracks if i == 0 else _drop_first(part.tracks))
        budget -= len(part.tracks)
        heights.append(part.label["height"])
        distance += part.label["distance"]
        current = part.end
    if not parts:
        return None
    tracks = Tracks.concatenate(parts)
    label = {
        "action": "jump",
        "direction": direction,
        "count": len(parts),
        "height": round(min(heights), 3),
        "distance": round(distance, 3),
    }
    return Segment(tracks, end_state(tracks), label)


def _drop_first(tracks: Tracks) -> Tracks:
    return Tracks(**{k: v[1:] for k, v in vars(tracks).items()})


def _jump_once(rng, body, state, direction: str, pre: float) -> Segment:
    flight_frames = int(rng.integers(9, 12))
    tau = flight_frames / FPS
    v_up = G * tau / 2.0  # lands at the take-off height after exactly `flight_frames` frames
    crouch, absorb = rng.uniform(0.14, 0.24), rng.uniform(0.1, 0.18)
    t_c = pre + rng.uniform(0.35, 0.55)
    push = max(round(2.4 * crouch / v_up * FPS), 3) / FPS
    t_to = round((t_c + push) * FPS) / FPS
    t_land = t_to + tau
    t_abs = t_land + 2.5 * absorb / v_up
    t_rise = t_abs + rng.uniform(0.4, 0.7)
    frames = _seconds_to_frames(t_rise + rng.uniform(0.15, 0.4))
    tracks = still_tracks(body, state, frames)
    t = frame_times(frames)
    stand = state.root[1]
    keys = [0.0, pre, t_c, t_to, t_land, t_abs, t_rise]
    tracks.root[:, 1] = hermite(
        t,
        keys,
        [stand, stand, stand - crouch, stand, stand, stand - absorb, stand],
        [0, 0, 0, v_up, -v_up, 0, 0],
    )
    forward, _ = heading_vectors(np.asarray(state.heading))
    distance = rng.uniform(0.5, 1.1) if direction == "forward" else 0.0
    if distance > 0:
        lead = (t_to - t_c) / 2.5  # Hermite stays monotonic when an end slope is at most 3× the mean slope
        trail = (t_abs - t_land) / 2.5
        v_h = distance / (tau + lead + trail)
        along = hermite(
            t,
            [0.0, t_c, t_to, t_land, t_abs],
            [0, 0, lead * v_h, lead * v_h + v_h * tau, distance],
            [0, 0, v_h, v_h, 0],
        )
        tracks.root += along[:, None] * forward
    # Feet: heel roll during the push-off, then fly from the take-off pose to the landing footprints.
    index = np.arange(frames)
    to_f, land_f = round(t_to * FPS), round(t_land * FPS)
    push_frames = (index > round(t_c * FPS)) & (index <= to_f)
    roll = rng.uniform(0.5, 0.8)
    u_push = smoothstep((t - t_c) / (t_to - t_c))
    flat_toes = state.ankles + foot_vectors(body, state.foot_yaw[None], np.zeros((1, 2)))[0]
    pitch_push = roll * u_push[push_frames, None] * np.ones(2)
    yaw_push = np.repeat(state.foot_yaw[None], push_frames.sum(), 0)
    tracks.ankles[push_frames] = flat_toes - foot_vectors(body, yaw_push, pitch_push)
    tracks.foot_pitch[push_frames] = pitch_push
    take_off = flat_toes - foot_vectors(body, state.foot_yaw[None], np.full((1, 2), roll))[0]
    landing = state.ankles + distance * forward
    air = (index > to_f) & (index < land_f)
    u = (index[air] - to_f) / (land_f - to_f)
    s = smoothstep(u / 0.85)[:, None, None]
    lift = (tracks.root[air, 1] - stand)[:, None, None] + 0.1 * np.sin(np.pi * u)[:, None, None]
    tracks.ankles[air] = take_off + s * (landing - take_off) + lift * np.array([0.0, 1.0, 0.0])
    tracks.foot_pitch[air] = roll * (1.0 - smoothstep(u / 0.8))[:, None]
    tracks.planted[air] = False
    tracks.ankles[index >= land_f] = landing
    tracks.foot_pitch[index >= land_f] = 0.0
    # Arms back in the crouch, up through take-off and flight, down on landing; trunk folds with the crouch.
    arm_keys = [0.0, pre, t_c, t_to, t_land, t_abs, t_rise]
    tracks.arms[:, :, 0] = hermite(t, arm_keys, [0, 0, -0.7, 1.3, 0.6, 0.2, 0])[:, None]
    tracks.spine[:, 0] = hermite(t, arm_keys, [0, 0, 0.45, 0.0, 0.05, 0.3, 0])
    tracks.pelvis[:, 0] = hermite(t, arm_keys, [0, 0, 0.2, 0.0, 0.0, 0.15, 0])
    end = end_state(tracks)
    return Segment(tracks, end, {"height": round(v_up**2 / (2 * G), 3), "distance": round(distance, 3)})


# ---------------------------------------------------------------------------------------------------------------
# Extra families (not in the default set: see EXTRA_ACTIONS and DEFAULT_FAMILIES)


def _swing_foot(
    tracks: Tracks, t: np.ndarray, f: int, t_lift: float, t_land: float, target: np.ndarray, height: float
) -> None:
    """Step foot f from where it is at `t_lift` to `target` (ankle) on a lifted arc landing at `t_land`, in place."""
    index = np.arange(len(t))
    lift_f, land_f = round(t_lift * FPS), round(t_land * FPS)
    start = tracks.ankles[lift_f, f].copy()
    air = (index > lift_f) & (index < land_f)
    u = (index[air] - lift_f) / max(land_f - lift_f, 1)
    tracks.ankles[air, f] = start + smoothstep(u / 0.9)[:, None] * (target - start)
    tracks.ankles[air, f, 1] += height * np.sin(np.pi * u)
    tracks.ankles[index >= land_f, f] = target
    tracks.planted[air, f] = False


def bow(rng, body, state, max_frames, depth: str | None = None) -> Segment | None:
    """Bow: the trunk pitches forward 30–70° from the hips (hips back a little, feet planted) and comes back up.

    depth "slight" (30–40°), "deep" (55–70°) or None (30–70°).
    """
    low, high = {"slight": (30.0, 40.0), "deep": (55.0, 70.0)}.get(depth or "", (30.0, 70.0))
    degrees = rng.uniform(low, high)
    start, down, hold, up = rng.uniform(0.1, 0.3), rng.uniform(0.6, 1.0), rng.uniform(0.3, 1.0), rng.uniform(0.6, 1.0)
    posed = _held_pose(body, state, max_frames, (start, down, hold, up, rng.uniform(0.4, 0.7)))
    if posed is None:
        return None
    tracks, held = posed
    a = math.radians(degrees)
    forward, _ = heading_vectors(tracks.heading)
    tracks.pelvis[:, 0] = 0.55 * a * held  # most of a bow is hip flexion
    tracks.spine[:, 0] = 0.6 * a * held
    tracks.head[:, 0] = 0.15 * held
    tracks.root -= (0.12 * math.sin(a) * held)[:, None] * forward  # the hips go back to keep the balance
    tracks.root[:, 1] -= 0.03 * math.sin(a) * held
    tracks.arms[:, :, 0] = 0.45 * a * held[:, None]  # the arms hang from the bent trunk
    return Segment(tracks, end_state(tracks), {"action": "bow", "degrees": round(degrees, 1)})


GUARD = (0.2, 0.3, 0.0, 2.4)  # boxing guard per arm: flexion, abduction, twist, elbow (fists by the chin)


def punch(rng, body, state, max_frames, hand: str = "right") -> Segment | None:
    """Raise the fists to a guard, throw 1–3 straight punches (hand "both": 2–4, alternating), back to standing."""
    sides = _arm_side(hand)
    count = int(rng.integers(2, 5)) if hand == "both" else int(rng.integers(1, 4))
    first = int(rng.integers(2)) if hand == "both" else sides[0]
    t_guard = rng.uniform(0.1, 0.3) + rng.uniform(0.35, 0.55)
    keys_by_side: dict[int, list[tuple[float, float, float]]] = {0: [], 1: []}
    t_now = t_guard + rng.uniform(0.1, 0.3)
    for k in range(count):
        side = (first + k) % 2 if hand == "both" else first
        out, back = rng.uniform(0.06, 0.09), rng.uniform(0.2, 0.3)
        keys_by_side[side].append((t_now, t_now + out, t_now + out + back))
        t_now += out + rng.uniform(0.03, 0.1) + back + rng.uniform(0.05, 0.3)
    t_end_guard = t_now + rng.uniform(0.4, 0.6)
    standing = _standing(body, state, max_frames, t_end_guard + rng.uniform(0.2, 0.4))
    if standing is None:
        return None
    tracks, t = standing
    guard = hermite(t, [0.0, t_guard - 0.45, t_guard, t_now, t_end_guard], [0, 0, 1, 1, 0])
    tracks.arms[:] = np.array(GUARD) * guard[:, None, None]
    height = rng.uniform(1.4, 1.6)  # shoulder flexion at full extension (about shoulder height)
    for side, hits in keys_by_side.items():
        for start, hit, back in hits:
            pulse = hermite(t, [start, hit, back], [0.0, 1.0, 0.0])
            target = np.array([height, 0.05, 0.0, -0.2])  # straight arm forward, slightly in
            tracks.arms[:, side] += pulse[:, None] * (target - np.array(GUARD))
            tracks.spine[:, 2] += -SIDE_SIGN[side] * 0.6 * pulse  # the punching shoulder comes forward
            tracks.spine[:, 0] += 0.2 * pulse
            tracks.pelvis[:, 2] += -SIDE_SIGN[side] * 0.12 * pulse
    tracks.spine[:, 0] += 0.08 * guard
    label = {"action": "punch", "hand": hand, "count": count}
    return Segment(tracks, end_state(tracks), label)


def throw(rng, body, state, max_frames, hand: str = "right", step: bool | None = None) -> Segment | None:
    """Overhand throw with one arm: wind the hand up behind the head, whip it forward fast, follow through.

    With `step` (None: a coin flip) the other foot steps forward during the wind-up and the throwing side's foot
    joins it after the follow-through.
    """
    s = _arm_side(hand)[0]
    if step is None:
        step = bool(rng.random() < 0.5)
    t0 = rng.uniform(0.1, 0.3)
    t_wind = t0 + rng.uniform(0.5, 0.8)
    t_cock = t_wind + rng.uniform(0.1, 0.2)
    t_release = t_cock + rng.uniform(0.14, 0.18)
    t_follow = t_release + rng.uniform(0.2, 0.3)
    t_back = t_follow + rng.uniform(0.5, 0.8)
    standing = _standing(body, state, max_frames, t_back + rng.uniform(0.3, 0.5))
    if standing is None:
        return None
    tracks, t = standing
    keys = [0.0, t0, t_wind, t_cock, t_release, t_follow, t_back]
    #  flexion, abduction, twist, elbow of the throwing arm through the keys
    arm = hermite(
        t,
        keys,
        [[0, 0, 0, 0], [0, 0, 0, 0], [0.9, 1.5, 1.4, 1.6], [0.8, 1.6, 1.7, 1.8], [1.7, 0.3, 0.0, 0.0],
         [0.9, 0.1, 0.0, 0.3], [0, 0, 0, 0]],
    )  # fmt: skip
    tracks.arms[:, s] = arm
    tracks.arms[:, 1 - s, 0] = hermite(t, keys, [0, 0, 1.1, 1.1, 0.3, 0.1, 0])  # the other arm aims, then pulls
    away = SIDE_SIGN[s]  # + twists the trunk towards the throwing arm's side (away from the target)
    tracks.spine[:, 2] = away * hermite(t, keys, [0, 0, 0.45, 0.5, -0.35, -0.4, 0])
    tracks.pelvis[:, 2] = away * hermite(t, keys, [0, 0, 0.15, 0.2, -0.15, -0.15, 0])
    tracks.spine[:, 0] = hermite(t, keys, [0, 0, -0.15, -0.2, 0.3, 0.4, 0])
    tracks.head[:, 1] = -0.5 * tracks.spine[:, 2]  # the eyes stay on the target
    if step:
        forward, _ = heading_vectors(np.asarray(state.heading))
        stride = rng.uniform(0.25, 0.4)
        _swing_foot(tracks, t, 1 - s, t0 + 0.15, t_wind, state.ankles[1 - s] + stride * forward, 0.06)
        _swing_foot(tracks, t, s, t_follow, t_back - 0.15, state.ankles[s] + stride * forward, 0.05)
        tracks.root += hermite(t, [0.0, t0, t_wind, t_release, t_follow, t_back], [0, 0, 0.3, 0.6, 0.7, 1.0])[
            :, None
        ] * (stride * forward)
        _keep_planted_above_floor(body, tracks)
    label = {"action": "throw", "hand": hand, "step": step}
    return Segment(tracks, end_state(tracks), label)


def hop(rng, body, state, max_frames, side: str = "left", direction: str = "in_place") -> Segment | None:
    """Hop 3–7 times on one foot (`side`), in place or forward (0.2–0.35 m a hop); the other foot stays raised."""
    f, r = (0, 1) if side == "left" else (1, 0)
    forward, _ = heading_vectors(np.asarray(state.heading))
    count = int(rng.integers(3, 8))
    stride = rng.uniform(0.2, 0.35) if direction == "forward" else 0.0
    flight_frames, stance_frames = int(rng.integers(6, 8)), int(rng.integers(4, 6))
    tau = flight_frames / FPS
    v_up = G * tau / 2.0
    crouch, raise_h = rng.uniform(0.06, 0.1), rng.uniform(0.25, 0.35)
    t0 = rng.uniform(0.05, 0.2)
    t_shift = t0 + rng.uniform(0.3, 0.4)
    t_to = [round((t_shift + rng.uniform(0.2, 0.3)) * FPS) / FPS]
    for _ in range(count - 1):
        t_to.append(t_to[-1] + (flight_frames + stance_frames) / FPS)
    t_land = [x + tau for x in t_to]
    t_abs = t_land[-1] + rng.uniform(0.15, 0.25)
    t_rise = t_abs + rng.uniform(0.25, 0.35)
    t_down = t_rise + rng.uniform(0.15, 0.25)
    end = t_down + rng.uniform(0.25, 0.4)
    standing = _standing(body, state, max_frames, end)
    if standing is None:
        return None
    tracks, t = standing
    stand = state.root[1]
    # Pelvis height: crouch before each take-off, ballistic flights, absorb each landing.
    keys, heights, slopes = [0.0, t0, t_shift], [stand, stand, stand], [0.0, 0.0, 0.0]
    for k in range(count):
        before = t_land[k - 1] if k else t_shift
        keys += [0.5 * (before + t_to[k]), t_to[k], t_land[k]]
        heights += [stand - crouch, stand, stand]
        slopes += [0.0, v_up, -v_up]
    keys += [t_abs, t_rise, end]
    heights += [stand - crouch, stand, stand]
    slopes += [0.0, 0.0, 0.0]
    tracks.root[:, 1] = hermite(t, keys, heights, slopes)
    # Forward: constant speed from the first crouch to the last landing's absorb.
    distance = stride * count
    along = distance * smoothstep((t - t_shift) / (t_abs - t_shift))
    if distance > 0:
        v = distance / (t_abs - t_shift)
        along = hermite(t, [t_shift, t_to[0], t_land[-1], t_abs], [0, 0.2 * distance, 0.9 * distance, distance],
                        [0, v, v, 0])  # fmt: skip
    weight = hermite(t, [0.0, t0, t_shift, t_down, end], [0, 0, 1, 1, 0])
    towards_stance = (state.ankles[f] - state.root) * np.array([1.0, 0.0, 1.0])
    tracks.root += 0.8 * weight[:, None] * towards_stance + along[:, None] * forward
    # Stance foot: planted between hops, flies with the pelvis (toes pointing down a little).
    index = np.arange(len(t))
    for k in range(count):
        to_f, land_f = round(t_to[k] * FPS), round(t_land[k] * FPS)
        mid_next = t_land[k] + 0.5 * stance_frames / FPS if k < count - 1 else t_abs
        start_print = tracks.ankles[to_f, f].copy()
        landing = state.ankles[f] + float(np.interp(mid_next, t, along)) * forward
        air = (index > to_f) & (index < land_f)
        u = (index[air] - to_f) / (land_f - to_f)
        lift = tracks.root[air, 1] - stand + 0.04 * np.sin(np.pi * u)
        tracks.ankles[air, f] = start_print + smoothstep(u / 0.85)[:, None] * (landing - start_print)
        tracks.ankles[air, f, 1] += lift
        tracks.foot_pitch[air, f] = 0.3 * np.sin(np.pi * u)
        tracks.planted[air, f] = False
        tracks.ankles[index >= land_f, f] = landing
    # Raised foot: up behind the body while hopping, follows the pelvis, put down beside the stance foot.
    up = hermite(t, [0.0, t0 + 0.15, t_shift, t_rise, t_down], [0, 0, 1, 1, 0])
    rest = state.ankles[r] + distance * forward * smoothstep((t - t_rise) / (t_down - t_rise))[:, None]
    carried = state.ankles[r] + along[:, None] * forward - 0.12 * forward
    carried[:, 1] = state.ankles[r][1] + (tracks.root[:, 1] - stand) + raise_h
    tracks.ankles[:, r] = rest + up[:, None] * (carried - rest)
    tracks.foot_pitch[:, r] = 0.35 * up
    tracks.planted[:, r] = up < 1e-3
    tracks.arms[:, :, 1] = 0.3 * up[:, None]  # arms a little out for balance
    tracks.arms[:, :, 3] = 0.4 * up[:, None]
    tracks.spine[:, 1] = SIDE_SIGN[f] * 0.06 * weight
    _keep_planted_above_floor(body, tracks)
    label = {"action": "hop", "side": side, "direction": direction, "count": count, "distance": round(distance, 3)}
    return Segment(tracks, end_state(tracks), label)


KNEEL_PITCH = 2.4  # rad: the kneeling foot points back, its instep on the floor


def _kneel(body: Body, toes: np.ndarray, yaw: np.ndarray, heading: float) -> tuple[np.ndarray, np.ndarray]:
    """Ankles (2, 3) of feet kneeling with their toe joints at `toes`, and the pelvis (3,) over the knees."""
    ankles = toes - foot_vectors(body, yaw[None], np.full((1, 2), KNEEL_PITCH))[0]
    forward, _ = heading_vectors(np.asarray(heading))
    root = ankles.mean(0) + 0.9 * float(body.shin.mean()) * forward
    root[1] = 0.06 + 0.97 * float(body.thigh.mean())
    return ankles, root


def crawl(rng, body, state, max_frames) -> Segment | None:
    """Get down on hands and knees, crawl forward (diagonal limbs together, pelvis ~0.45 m up), stand up again."""
    cycle = rng.uniform(0.9, 1.3)
    stride = rng.uniform(0.22, 0.32)  # each knee moves this far per cycle
    t_down = rng.uniform(0.1, 0.3) + rng.uniform(1.0, 1.4)
    cycles = int(rng.integers(2, 6))
    while cycles > 1 and _seconds_to_frames(t_down + cycles * cycle + 1.6) > max_frames:
        cycles -= 1
    t_crawl = t_down + 0.2
    t_stop = t_crawl + cycles * cycle
    t_up = t_stop + 0.2 + rng.uniform(1.0, 1.4)
    frames = _seconds_to_frames(t_up + rng.uniform(0.2, 0.4))
    if frames > max_frames:
        return None
    tracks = still_tracks(body, state, frames)
    t = frame_times(frames)
    forward, _ = heading_vectors(np.asarray(state.heading))
    yaw = state.foot_yaw
    toes0 = state.ankles + foot_vectors(body, yaw[None], np.zeros((1, 2)))[0]
    _, kneel_root = _kneel(body, toes0, yaw, state.heading)
    distance = cycles * stride
    # Kneeling amount (0 standing .. 1 on all fours): the toes stay put while the feet roll onto their insteps.
    kneeling = hermite(t, [0.0, t_down - 1.1, t_down, t_stop + 0.2, t_up], [0, 0, 1, 1, 0])
    along = distance * smoothstep((t - t_crawl) / (t_stop - t_crawl))
    # Knees forward in turn (diagonal gait: the left knee with the right hand), each toe dragged on a low arc.
    for f in (0, 1):
        phase = 0.0 if f == 0 else 0.5
        moved, lift = np.zeros(frames), np.zeros(frames)
        for c in range(cycles):
            a = t_crawl + (c + phase) * cycle
            u = np.clip((t - a) / (0.45 * cycle), 0.0, 1.0)
            moved += stride * smoothstep((u - 0.1) / 0.75)  # lifts first, sets down after arriving
            lift += 0.05 * np.sqrt(np.sin(np.pi * u))
            tracks.planted[(u > 0) & (u < 1), f] = False
        toe = toes0[f] + moved[:, None] * forward
        pitch = KNEEL_PITCH * smoothstep(kneeling / 0.8)
        tracks.foot_pitch[:, f] = pitch
        tracks.ankles[:, f] = toe - foot_vectors(body, np.repeat(yaw[None], frames, 0), np.stack([pitch] * 2, -1))[:, f]
        tracks.ankles[:, f, 1] += lift
    end_toes = toes0 + distance * forward
    standing_end = _standing_root_over_feet(body, State(state.root, state.heading, end_toes - _flat(body, yaw), yaw))
    standing = state.root + smoothstep((t - t_stop) / (t_up - t_stop))[:, None] * (standing_end - state.root)
    crawling = kneel_root + along[:, None] * forward
    tracks.root = standing + kneeling[:, None] * (crawling - standing)
    # Trunk level with the floor, arms straight down to the hands, head up; the arms reach in turn.
    reach = np.zeros((frames, 2))
    for f in (0, 1):
        phase = 0.5 if f == 0 else 0.0  # the left hand moves with the right knee
        for c in range(cycles):
            a = t_crawl + (c + phase) * cycle
            reach[:, f] += np.sin(np.pi * np.clip((t - a) / (0.45 * cycle), 0.0, 1.0))
    tracks.pelvis[:, 0] = 1.2 * kneeling
    tracks.spine[:, 0] = 0.25 * kneeling
    tracks.head[:, 0] = -0.9 * kneeling
    tracks.arms[:, :, 0] = (1.35 * kneeling)[:, None] + 0.25 * reach
    tracks.arms[:, :, 1] = -0.05 * kneeling[:, None]
    label = {"action": "crawl", "direction": "forward", "cycles": cycles, "distance": round(distance, 3)}
    label["speed"] = round(stride / cycle, 3)
    return Segment(tracks, end_state(tracks), label)


def _flat(body: Body, yaw: np.ndarray) -> np.ndarray:
    """(2, 3) ankle->toe vectors of flat feet with yaws (2,)."""
    return foot_vectors(body, yaw[None], np.zeros((1, 2)))[0]


def climb(rng, body, state, max_frames) -> Segment | None:
    """Walk up a flight of 4–9 stairs (risers 0.14–0.18 m), one step per stair, both feet on the top one.

    Ends higher than it started, so it is the last action of a clip (make_clip and compose_clip stop there).
    """
    riser, tread = rng.uniform(0.14, 0.18), rng.uniform(0.28, 0.34)
    cadence = rng.uniform(1.3, 1.6)
    gait = Gait(
        speed=tread * cadence,
        cadence=cadence,
        swing=0.75,
        step_height=rng.uniform(0.08, 0.1),
        heel_lift=0.2,
        bob=0.01,
        sway=0.02,
        lean=rng.uniform(0.1, 0.2),
        arm_gain=0.4,
        first_foot=int(rng.integers(2)),
    )
    low = max(_min_steps(gait), 5)
    segment = _locomote(rng, body, state, max_frames, gait, (low, low + 5), {})
    if segment is None:
        return None
    tracks = segment.tracks
    frames = len(tracks)
    index = np.arange(frames)
    # Each step lands one stair higher; the last brings the trailing foot up beside the leading one.
    level = np.zeros((frames, 2))
    stair = 0
    for f_index in _swings(tracks.planted):
        f, lift, land = f_index
        stair = stair + 1 if stair < segment.label["steps"] - 1 else stair
        before = level[lift, f]
        u = np.clip((index - lift) / max(land - lift, 1), 0.0, 1.0)
        level[:, f] = np.where(index > lift, before + (stair * riser - before) * smoothstep(u / 0.5), level[:, f])
    tracks.ankles[..., 1] += level
    tracks.root[:, 1] += smooth(level.mean(1), 3.0)
    height = float(level[-1].mean())
    segment.label = {
        **segment.label,
        "action": "climb",
        "direction": "forward",
        "stairs": stair,
        "height": round(height, 3),
    }
    segment.end = end_state(tracks)
    return segment


def _swings(planted: np.ndarray) -> list[tuple[int, int, int]]:
    """(foot, last planted frame, first planted frame again) of every swing, in time order."""
    out = []
    for f in (0, 1):
        lifted = ~planted[:, f]
        starts = np.flatnonzero(lifted[1:] & ~lifted[:-1]) + 1
        for s in starts:
            ends = np.flatnonzero(~lifted[s:])
            out.append((f, int(s) - 1, int(s + ends[0]) if len(ends) else len(lifted) - 1))
    return sorted(out, key=lambda x: x[1])


# ---------------------------------------------------------------------------------------------------------------
# Registry: name -> (weight, generator drawing its own variant)


def _choice(rng: np.random.Generator, options):
    return options[int(rng.integers(len(options)))]


ACTIONS: dict[str, tuple[float, ActionFn]] = {
    "walk": (
        3.0,
        lambda r, b, s, m: walk(
            r, b, s, m, _choice(r, ["forward"] * 3 + ["backward", "left", "right"]), _choice(r, list(PACES))
        ),
    ),
    "run": (1.2, run),
    "turn": (
        2.0,
        lambda r, b, s, m: turn(r, b, s, m, _choice(r, ["left", "right"]), _choice(r, [45, 90, 90, 135, 180])),
    ),
    "curve_walk": (1.0, lambda r, b, s, m: curve_walk(r, b, s, m, _choice(r, ["left", "right"]))),
    "spin": (0.6, lambda r, b, s, m: spin(r, b, s, m, _choice(r, ["left", "right"]))),
    "crouch_walk": (0.6, crouch_walk),
    "jump": (1.2, lambda r, b, s, m: jump(r, b, s, m, _choice(r, ["in_place", "forward"]))),
    "squat": (0.8, squat),
    "sit_down": (0.7, sit_down),
    "wave": (1.2, lambda r, b, s, m: wave(r, b, s, m, _choice(r, ["left", "right", "right", "both"]))),
    "raise_arms": (
        1.0,
        lambda r, b, s, m: raise_arms(
            r, b, s, m, _choice(r, ["left", "right", "both", "both"]), _choice(r, ["forward", "up", "sideways"])
        ),
    ),
    "kick": (0.8, lambda r, b, s, m: kick(r, b, s, m, _choice(r, ["left", "right"]))),
    "idle": (0.4, idle),
}

# Every action by name, taking its variant as keyword arguments (e.g. walk(direction="left", pace="slow")).
ACTION_FUNCTIONS: dict[str, Callable[..., Segment | None]] = {
    "walk": walk,
    "run": run,
    "turn": turn,
    "curve_walk": curve_walk,
    "spin": spin,
    "crouch_walk": crouch_walk,
    "jump": jump,
    "squat": squat,
    "sit_down": sit_down,
    "stand_up": stand_up,
    "wave": wave,
    "raise_arms": raise_arms,
    "kick": kick,
    "idle": idle,
}


# Families beyond the default set, with their own weights: a set only draws them when asked (`families`), so the
# default set (DEFAULT_FAMILIES) and its random stream stay exactly as they were.
EXTRA_ACTIONS: dict[str, tuple[float, ActionFn]] = {
    "bow": (0.7, lambda r, b, s, m: bow(r, b, s, m, _choice(r, ["slight", "deep", None]))),
    "punch": (0.8, lambda r, b, s, m: punch(r, b, s, m, _choice(r, ["left", "right", "right", "both"]))),
    "throw": (0.7, lambda r, b, s, m: throw(r, b, s, m, _choice(r, ["left", "right", "right"]))),
    "hop": (
        0.7,
        lambda r, b, s, m: hop(r, b, s, m, _choice(r, ["left", "right"]), _choice(r, ["in_place", "forward"])),
    ),
    "crawl": (0.5, crawl),
    "climb": (0.5, climb),
    "jog": (0.8, lambda r, b, s, m: run(r, b, s, m, pace="jog")),
    "sprint": (0.6, lambda r, b, s, m: run(r, b, s, m, pace="sprint")),
}
DEFAULT_FAMILIES: tuple[str, ...] = tuple(ACTIONS)  # the first set (the models installed before the embedded one)
ALL_FAMILIES: tuple[str, ...] = DEFAULT_FAMILIES + tuple(EXTRA_ACTIONS)
# A family excludes these from the next pick (a sprint after a run is one long run).
RELATED_FAMILIES: dict[str, frozenset[str]] = {"run": frozenset({"run", "jog", "sprint"})}
ACTION_FUNCTIONS.update(
    {
        "bow": bow,
        "punch": punch,
        "throw": throw,
        "hop": hop,
        "crawl": crawl,
        "climb": climb,
        "jog": lambda rng, body, state, max_frames: run(rng, body, state, max_frames, pace="jog"),
        "sprint": lambda rng, body, state, max_frames: run(rng, body, state, max_frames, pace="sprint"),
    }
)


def family_actions(families: tuple[str, ...]) -> dict[str, tuple[float, ActionFn]]:
    """The (weight, generator) registry restricted to `families`, in the default order then the extra ones."""
    unknown = set(families) - set(ALL_FAMILIES)
    if unknown:
        raise ValueError(f"families: unknown {sorted(unknown)}; known: {', '.join(ALL_FAMILIES)}")
    return {name: entry for name, entry in {**ACTIONS, **EXTRA_ACTIONS}.items() if name in families}
