"""Stepping gaits with planted feet: walk/run in any body direction, curves, turns and spins in place.

The pelvis path integrates the commanded velocity (speed × smooth envelope, rotated by the current heading);
every footstep lands where the pelvis will be at the middle of that foot's stance, offset sideways, and stays
exactly there until the foot lifts again (toe-fixed heel roll first when `heel_lift` > 0). Swing feet travel
on a lifted arc; arm swing, pelvis twist and trunk counter-rotation follow the actual fore-aft separation of
the feet, so arms always swing opposite to the legs. Times in seconds, 20 fps, heading + = left.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .curves import FPS, envelope, frame_times, smooth, smoothstep
from .rig import SIDE_SIGN, Body, Tracks, foot_vectors, heading_vectors

TOE_OUT = 0.08  # rad: feet point slightly outwards at rest
SETTLE = 0.35  # s of standing after the last step


@dataclass(frozen=True)
class State:
    """Where a segment starts: pelvis position (3,), heading, planted ankles (2, 3), foot yaws (2,)."""

    root: np.ndarray
    heading: float
    ankles: np.ndarray
    foot_yaw: np.ndarray
    seated: bool = False


def initial_state(body: Body, heading: float = 0.0) -> State:
    """Standing at the origin, feet under the hips, facing `heading`."""
    root = np.array([0.0, body.standing_height, 0.0])
    ankles = _stance_ankles(body, root, heading)
    return State(root, heading, ankles, heading + SIDE_SIGN * TOE_OUT)


def _stance_ankles(body: Body, root: np.ndarray, heading: float) -> np.ndarray:
    forward, left = heading_vectors(np.asarray(heading))
    st = body.stance
    ankles = root[None] + st[:, :1] * left + st[:, 2:3] * forward
    ankles[:, 1] = body.ankle_height
    return ankles


def still_tracks(body: Body, state: State, frames: int) -> Tracks:
    """`frames` frames of standing (or sitting) still in `state`; every angle 0 (the neutral is added later)."""
    return Tracks(
        root=np.repeat(state.root[None], frames, 0),
        heading=np.full(frames, state.heading),
        pelvis=np.zeros((frames, 3)),
        spine=np.zeros((frames, 3)),
        head=np.zeros((frames, 2)),
        arms=np.zeros((frames, 2, 4)),
        ankles=np.repeat(state.ankles[None], frames, 0),
        foot_yaw=np.repeat(state.foot_yaw[None], frames, 0),
        foot_pitch=np.zeros((frames, 2)),
        planted=np.ones((frames, 2), dtype=bool),
    )


def end_state(tracks: Tracks, seated: bool = False) -> State:
    """The state at the last frame of `tracks`."""
    return State(
        tracks.root[-1].copy(), float(tracks.heading[-1]), tracks.ankles[-1].copy(), tracks.foot_yaw[-1].copy(), seated
    )


@dataclass(frozen=True)
class Gait:
    """A stepping pattern. direction is the unit (left, forward) velocity direction in the body frame."""

    speed: float = 1.2  # m/s of the pelvis at full pace
    direction: tuple[float, float] = (0.0, 1.0)
    turn: float = 0.0  # total heading change over the movement, rad (+ = left)
    cadence: float = 1.9  # steps per second
    swing: float = 0.8  # swing time / step time (walk < 1: double support; run > 1: flight)
    step_height: float = 0.07  # swing-foot lift above the straight path, m
    heel_lift: float = 0.5  # heel roll before toe-off, rad (0: flat steps)
    bob: float = 0.02  # pelvis vertical oscillation, m (+: high at mid-stance, walking; −: low, running)
    sway: float = 0.02  # pelvis sideways shift over the stance foot, m
    crouch: float = 0.0  # pelvis lowered while moving, m
    lean: float = 0.03  # forward trunk lean while moving, rad
    arm_gain: float = 0.5  # shoulder flexion per metre of fore-aft foot separation, rad/m
    elbow: float = 0.2  # extra elbow flexion while moving, rad
    width: float = 0.9  # lateral foot offset while stepping, as a fraction of the standing stance
    first_foot: int = 0  # 0 = left foot steps first


def gait_seconds(gait: Gait, steps: int, start_delay: float) -> float:
    """Duration of `steps` steps after `start_delay` seconds, including the settle time."""
    step = 1.0 / gait.cadence
    return start_delay + (steps - 1) * step + gait.swing * step + 0.25 * step + SETTLE


def ramp_steps(gait: Gait) -> float:
    """Steps spent accelerating (and again decelerating) to the gait's speed."""
    return 1.0 + 0.6 * gait.speed


def steps_for_seconds(gait: Gait, seconds: float, start_delay: float) -> int:
    """The most steps (≥ 2) that fit in `seconds`."""
    step = 1.0 / gait.cadence
    fixed = start_delay + gait.swing * step + 0.25 * step + SETTLE
    return max(2, math.floor((seconds - fixed) / step) + 1)


def gait_tracks(body: Body, state: State, gait: Gait, steps: int, frames: int, start_delay: float = 0.2) -> Tracks:
    """`frames` frames (≥ gait_seconds·20) of `steps` steps from a standing `state`, ending standing."""
    t = frame_times(frames)
    step = 1.0 / gait.cadence
    # Lift-off and touch-down on whole frames, so the last airborne frame is clearly off the floor.
    swing_frames = max(4, round(gait.swing * step * FPS))
    lift_frames = np.round((start_delay + np.arange(steps) * step) * FPS).astype(int)
    land_frames = lift_frames + swing_frames
    swing, lifts, lands = swing_frames / FPS, lift_frames / FPS, land_frames / FPS
    t_end = lands[-1] + 0.25 * step
    t_start = max(lifts[0] - 0.3 * step, 0.0)
    # Accelerate over more steps when faster, so the first and last steps stay within the legs' reach.
    ramp = min(ramp_steps(gait) * step, 0.5 * (t_end - t_start))
    env = envelope(t, t_start, ramp, t_end, ramp)

    # Heading and base pelvis path (trapezoidal integration of the commanded velocity).
    progress = np.concatenate([[0.0], np.cumsum(0.5 * (env[1:] + env[:-1]))]) / FPS
    heading = state.heading + (gait.turn * progress / progress[-1] if progress[-1] > 0 else 0.0)
    forward, left = heading_vectors(heading)
    velocity = gait.speed * env[:, None] * (gait.direction[1] * forward + gait.direction[0] * left)
    base = state.root[None] + np.concatenate([[np.zeros(3)], np.cumsum(0.5 * (velocity[1:] + velocity[:-1]), 0)]) / FPS

    # Footprints: under the pelvis at mid-stance, the last two at the final standing stance.
    feet = (gait.first_foot + np.arange(steps)) % 2
    # A little past mid-stance: the trailing foot can still reach by rolling onto its toe, the leading one cannot.
    mid = np.minimum(lands + 0.65 * (2 * step - swing), t_end)
    mid[-2:] = t_end
    mid_heading = np.interp(mid, t, heading)
    mid_root = np.stack([np.interp(mid, t, base[:, i]) for i in range(3)], -1)
    fwd_m, left_m = heading_vectors(mid_heading)
    lateral = SIDE_SIGN[feet] * np.abs(body.stance[feet, 0]) * np.where(np.arange(steps) >= steps - 2, 1.0, gait.width)
    prints = mid_root + lateral[:, None] * left_m + body.stance[feet, 2][:, None] * fwd_m
    prints[:, 1] = body.ankle_height[feet]
    print_yaw = mid_heading + SIDE_SIGN[feet] * TOE_OUT

    ankles = np.repeat(state.ankles[None], frames, 0)
    foot_yaw = np.repeat(state.foot_yaw[None], frames, 0)
    pitch = np.zeros((frames, 2))
    planted = np.ones((frames, 2), dtype=bool)
    heel_frames = max(1, round(min(0.4 * (2 * step - swing), 0.25) * FPS))
    index = np.arange(frames)
    planted_at, planted_yaw = state.ankles.copy(), state.foot_yaw.copy()
    for k in range(steps):
        f, lift, land = feet[k], lift_frames[k], land_frames[k]
        # Heel roll about the planted toe just before lift-off.
        if gait.heel_lift > 0:
            roll = (index > lift - heel_frames) & (index <= lift)
            u = (index[roll] - (lift - heel_frames)) / heel_frames
            _heel_roll(body, f, ankles, foot_yaw, pitch, roll, gait.heel_lift * u * u)
        start_yaw = float(planted_yaw[f])
        start_pitch = gait.heel_lift
        one = np.array([start_yaw])
        toe = planted_at[f] + _foot(body, f, one, np.zeros(1))[0]
        start_ankle = toe - _foot(body, f, one, np.array([start_pitch]))[0]
        in_swing = (index > lift) & (index < land)
        u = (index[in_swing] - lift) / swing_frames
        s = smoothstep(u / 0.9)[:, None]
        arc = np.sin(np.pi * u**0.75) ** 0.5  # early apex, steep final descent
        ankles[in_swing, f] = start_ankle + s * (prints[k] - start_ankle)
        ankles[in_swing, f, 1] += gait.step_height * arc
        foot_yaw[in_swing, f] = start_yaw + s[:, 0] * (print_yaw[k] - start_yaw)
        pitch[in_swing, f] = start_pitch * (1.0 - smoothstep(u / 0.6))
        planted[in_swing, f] = False
        after = index >= land
        ankles[after, f] = prints[k]
        foot_yaw[after, f] = print_yaw[k]
        pitch[after, f] = 0.0
        planted_at[f], planted_yaw[f] = prints[k], print_yaw[k]
    _keep_toes_above_floor(body, ankles, foot_yaw, pitch, ~planted)

    tracks = Tracks(
        root=base,
        heading=heading,
        pelvis=np.zeros((frames, 3)),
        spine=np.zeros((frames, 3)),
        head=np.zeros((frames, 2)),
        arms=np.zeros((frames, 2, 4)),
        ankles=ankles,
        foot_yaw=foot_yaw,
        foot_pitch=pitch,
        planted=planted,
    )
    hold = envelope(t, 0.0, max(start_delay, 0.25), t[-1] + 1.0 / FPS, min(0.6, t[-1] - t_end + 0.1))
    _body_motion(body, gait, tracks, env, hold, t - lifts[0] - 0.5 * swing, step, feet[0])
    return tracks


def _heel_roll(
    body: Body, f: int, ankles: np.ndarray, yaw: np.ndarray, pitch: np.ndarray, mask: np.ndarray, angle: np.ndarray
) -> None:
    """Pitch foot f by `angle` (heel up) about its toe joint on the frames in `mask`, in place."""
    if not np.any(mask):
        return
    flat = np.zeros(mask.sum())
    y = yaw[mask, f]
    toe = ankles[mask, f] + _foot(body, f, y, flat)
    ankles[mask, f] = toe - _foot(body, f, y, angle)
    pitch[mask, f] = angle


def _foot(body: Body, f: int, yaw: np.ndarray, pitch: np.ndarray) -> np.ndarray:
    both_yaw = np.stack([yaw, yaw], -1)
    both_pitch = np.stack([pitch, pitch], -1)
    return foot_vectors(body, both_yaw, both_pitch)[:, f]


def _keep_toes_above_floor(
    body: Body, ankles: np.ndarray, yaw: np.ndarray, pitch: np.ndarray, airborne: np.ndarray, clearance: float = 0.01
) -> None:
    """Raise airborne ankles whose toe joint would dip below `clearance`, in place."""
    toes_y = ankles[..., 1] + foot_vectors(body, yaw, pitch)[..., 1]
    ankles[..., 1] += np.where(airborne, np.maximum(clearance - toes_y, 0.0), 0.0)


def _body_motion(
    body: Body,
    gait: Gait,
    tracks: Tracks,
    env: np.ndarray,
    hold: np.ndarray,
    phase_time: np.ndarray,
    step: float,
    first: int,
) -> None:
    """Pelvis height/bob/sway, lean, arm swing and counter-rotation, in place (relative to the neutral pose).

    env: (T,) 0..1 pace of the movement; hold: (T,) 0..1 envelope of the crouch and lean (covers the steps).
    """
    forward, left = heading_vectors(tracks.heading)
    crouch_env = hold
    bob = gait.bob * env * np.cos(2.0 * np.pi * phase_time / step)
    sway = gait.sway * env * np.cos(np.pi * phase_time / step) * (-SIDE_SIGN[first])
    tracks.root[:, 1] = body.standing_height - gait.crouch * crouch_env + bob
    tracks.root += sway[:, None] * left
    # Fore-aft position of each foot relative to the pelvis, along the heading.
    ahead = ((tracks.ankles - tracks.root[:, None]) * forward[:, None]).sum(-1)  # (T, 2)
    separation = smooth(ahead[:, 0] - ahead[:, 1], 1.0)  # + = left foot ahead
    flex = gait.arm_gain * separation  # left arm forward when the right foot is ahead
    tracks.arms[:, 0, 0] = -flex
    tracks.arms[:, 1, 0] = flex
    tracks.arms[:, :, 3] = gait.elbow * env[:, None] + 0.4 * np.maximum(tracks.arms[:, :, 0], 0.0)
    tracks.pelvis[:, 2] = -0.12 * separation
    tracks.pelvis[:, 0] = 0.3 * gait.lean * crouch_env
    tracks.spine[:, 2] = 0.2 * separation
    tracks.spine[:, 0] = 0.7 * gait.lean * crouch_env
