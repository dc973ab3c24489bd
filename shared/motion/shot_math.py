"""Numpy math of shots: the pelvis path and facing of 263-dim features, paths timed along their length, how far a
motion is from its waypoints / paths / reach targets, foot sliding on contact frames, jerk at segment joins and the
minimum-jerk smoothing of the transition around each join."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .humanml3d import FPS, LAYOUT, features_to_joints, recover_root
from .retarget import proportioned_joints
from .skeleton import FOOT_LEFT, FOOT_RIGHT, tpose_joints

CONTACT_JOINTS = (FOOT_LEFT[0], FOOT_LEFT[1], FOOT_RIGHT[0], FOOT_RIGHT[1])  # the order of features 259..262


def root_path(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(T, 263) features -> the pelvis floor path (T, 2) as (x, z) and its facing (T,) in radians: 0 = +Z, +pi/2 = +X.

    HumanML3D's root rotation at frame t is the quaternion (cos a, 0, sin a, 0) with a the running sum of feature 0
    (half angles); it maps world to the heading frame, so the heading frame's +Z is +Z turned by -2a about +Y."""
    r_rot, r_pos = recover_root(features)
    half = np.arctan2(r_rot[:, 2], r_rot[:, 0])
    return r_pos[:, [0, 2]], -2.0 * half


def facing_of_joints(joints: np.ndarray) -> np.ndarray:
    """(T, 22, 3) joints -> the body's facing (T,) in radians (0 = +Z, +pi/2 = +X) from its hips and shoulders."""
    across = (joints[:, 2] - joints[:, 1]) + (joints[:, 17] - joints[:, 16])  # right minus left
    return np.arctan2(across[:, 2], -across[:, 0])  # forward = up x across = (across_z, 0, -across_x)


def path_arc_lengths(points: np.ndarray) -> np.ndarray:
    """(N,) running length along a polyline (N, 2), starting at 0."""
    points = np.asarray(points, dtype=np.float64)
    return np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(points, axis=0), axis=1))])


def path_positions(points: np.ndarray, start: float, end: float, times: np.ndarray) -> np.ndarray:
    """Where the pelvis should be at `times` (N,) on a polyline walked at an even pace from `start` to `end` (s):
    the first point at `start` (and before), the last at `end` (and after) -> (N, 2)."""
    points = np.asarray(points, dtype=np.float64)
    lengths = path_arc_lengths(points)
    u = np.clip((np.asarray(times, dtype=np.float64) - start) / (end - start), 0.0, 1.0)
    if lengths[-1] <= 0.0:
        return np.repeat(points[:1], len(u), axis=0)
    along = u * lengths[-1]
    return np.stack([np.interp(along, lengths, points[:, k]) for k in range(2)], axis=1)


def polyline_distance(points: np.ndarray, polyline: np.ndarray) -> np.ndarray:
    """Distance of each of `points` (N, 2) to the nearest point of `polyline` (M, 2) -> (N,)."""
    p = np.asarray(points, dtype=np.float64)[:, None]  # (N, 1, 2)
    poly = np.asarray(polyline, dtype=np.float64)
    a, b = poly[:-1][None], poly[1:][None]  # (1, M-1, 2)
    ab = b - a
    t = np.clip(((p - a) * ab).sum(-1) / np.maximum((ab * ab).sum(-1), 1e-12), 0.0, 1.0)
    nearest = a + t[..., None] * ab
    return np.linalg.norm(p - nearest, axis=-1).min(axis=1)


def foot_sliding(features: np.ndarray, joints: np.ndarray | None = None, fps: float = FPS) -> float:
    """Mean horizontal speed (m/s) of the foot joints over the frames their contact label (features 259..262) marks
    planted: joint k's step t -> t+1 counts when its label at t is on (> 0.5). 0 when nothing is planted."""
    joints = features_to_joints(features) if joints is None else joints
    contacts = np.asarray(features)[:-1, LAYOUT.foot_contacts] > 0.5  # (T-1, 4)
    feet = joints[:, list(CONTACT_JOINTS)][:, :, [0, 2]]  # (T, 4, 2)
    speed = np.linalg.norm(np.diff(feet, axis=0), axis=-1) * fps  # (T-1, 4)
    return float(speed[contacts].mean()) if contacts.any() else 0.0


def pelvis_speed(features: np.ndarray, fps: float = FPS) -> float:
    """Mean horizontal speed (m/s) of the pelvis over the clip's frame steps (its floor path length / duration)."""
    path, _ = root_path(features)
    steps = np.linalg.norm(np.diff(path, axis=0), axis=1)  # (T-1,) metres per frame
    return float(steps.mean() * fps) if len(steps) else 0.0


def sliding_per_speed(features: np.ndarray, joints: np.ndarray | None = None, fps: float = FPS) -> float:
    """Foot sliding on contact frames (m/s) per m/s of pelvis speed: 0 for feet that stay put where planted, 1 for
    feet that glide along with the body. Unlike `foot_sliding` it does not rise just because a motion travels faster
    (a shot steered to another pace than its unconstrained twin). 0 for a motion that does not travel."""
    speed = pelvis_speed(features, fps)
    return foot_sliding(features, joints, fps) / speed if speed > 1e-6 else 0.0


def jerk(joints: np.ndarray, fps: float = FPS) -> np.ndarray:
    """(T, 22, 3) positions -> (T-3,) the largest joint jerk magnitude (m/s^3) of each third difference, which spans
    frames t..t+3."""
    third = np.diff(np.asarray(joints, dtype=np.float64), n=3, axis=0) * fps**3  # (T-3, 22, 3)
    return np.linalg.norm(third, axis=-1).max(axis=1)


def peak_jerk_near(joints: np.ndarray, frames: list[int], radius: int = 5, fps: float = FPS) -> float:
    """The largest jerk (m/s^3) of any joint over the third differences touching frames within `radius` of `frames`
    (segment joins)."""
    values = jerk(joints, fps)
    peak = 0.0
    for frame in frames:
        lo, hi = max(frame - radius - 3, 0), min(frame + radius + 1, len(values))
        if lo < hi:
            peak = max(peak, float(values[lo:hi].max()))
    return peak


@dataclass(frozen=True)
class JoinSmoothing:
    """The transition around each join, smoothed for least jerk: frames within `plateau` frames of a join move to the
    motion of least jerk through their neighbours (staying on the generated pose weighs 1 against `strength` times
    the squared third differences), and less and less from there to `radius` frames away, where nothing moves. At
    strength 30 a fully smoothed frame keeps what the motion does below about 1.8 Hz and loses the jitter above it;
    a prompt's motion often starts with a jerk of its own (a wave's hand flung up), which the plateau takes in."""

    radius: int = 14  # frames either side of a join (0.7 s at 20 fps)
    strength: float = 30.0  # weight of the squared third differences against the generated pose
    plateau: int = 6  # frames either side of a join smoothed fully (the fade out runs from here to `radius`)


DEFAULT_JOIN_SMOOTHING = JoinSmoothing()
NO_JOIN_SMOOTHING = JoinSmoothing(radius=0)
_EDGE_WEIGHT = 1e4  # the data weight where the smoothing fades out: the frames there all but keep their values
_ROOT_VELOCITIES = slice(0, 3)  # smoothed as their running sums, so that the root ends where it ended
_SMOOTHED = slice(0, LAYOUT.foot_contacts.start)  # every feature but the contact labels


def _join_weights(frames: int, joins: list[int], radius: int, plateau: int = 0) -> np.ndarray:
    """How much each frame (T,) is smoothed: 1 up to `plateau` frames from a join, then a raised cosine down to 0 at
    `radius` frames away."""
    if not joins or radius <= 0:
        return np.zeros(frames)
    distance = np.abs(np.arange(frames)[:, None] - np.asarray(joins)[None]).min(axis=1)
    fraction = np.clip((distance - plateau) / max(radius - plateau, 1), 0.0, 1.0)
    return 0.5 * (1.0 + np.cos(np.pi * fraction))


def _stretches(free: np.ndarray) -> list[tuple[int, int]]:
    """Runs [start, end) of True in `free` (T,), runs fewer than four frames apart merged (a third difference
    couples them)."""
    starts = np.flatnonzero(free & ~np.r_[False, free[:-1]])
    ends = np.flatnonzero(free & ~np.r_[free[1:], False]) + 1
    runs: list[tuple[int, int]] = []
    for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
        if runs and start - runs[-1][1] < 4:
            runs[-1] = (runs[-1][0], end)
        else:
            runs.append((start, end))
    return runs


def smooth_joins(
    features: np.ndarray,
    joins: Sequence[int],
    smoothing: JoinSmoothing = DEFAULT_JOIN_SMOOTHING,
    pinned: Sequence[int] = (),
) -> np.ndarray:
    """(T, 263) features -> the same with the frames around each join (the first frame of a new stretch) smoothed
    for least jerk (`JoinSmoothing`); frames in `pinned` (a reach target's frame) and the contact labels are kept.

    Each stretch of smoothed frames is solved on its own with three kept frames either side: minimise
    sum_t w_t |x_t - y_t|^2 + strength * sum |third difference of x|^2, w_t = EDGE^(1 - bump_t). The root velocities
    are smoothed as their running sums, so the root travels and turns as far as before."""
    out = np.array(features, dtype=np.float64)
    frames = len(out)
    bump = _join_weights(frames, list(joins), smoothing.radius, smoothing.plateau)
    bump[[f for f in pinned if 0 <= f < frames]] = 0.0
    if not bump.any():
        return out.astype(np.asarray(features).dtype)
    values = out[:, _SMOOTHED].copy()  # (T, C)
    values[:, _ROOT_VELOCITIES] = np.cumsum(out[:, _ROOT_VELOCITIES], axis=0)
    for start, end in _stretches(bump > 0):
        lo, hi = max(start - 3, 0), min(end + 3, frames)
        span = values[lo:hi]  # (S, C)
        unknown = np.flatnonzero(bump[lo:hi] > 0)
        known = np.flatnonzero(bump[lo:hi] == 0)
        third = np.diff(np.eye(hi - lo), n=3, axis=0)  # (S-3, S)
        third_u, third_k = third[:, unknown], third[:, known]
        weight = _EDGE_WEIGHT ** (1.0 - bump[lo:hi][unknown])  # (U,)
        system = np.diag(weight) + smoothing.strength * third_u.T @ third_u
        rhs = weight[:, None] * span[unknown] - smoothing.strength * third_u.T @ (third_k @ span[known])
        values[lo + unknown] = np.linalg.solve(system, rhs)
    moved = np.flatnonzero(bump > 0)
    out[moved, _SMOOTHED] = values[moved]
    # A root velocity changes where its running sum did and on the frame after (the step back onto the kept sums).
    stepped = np.union1d(moved, moved[moved + 1 < frames] + 1)
    out[stepped, _ROOT_VELOCITIES] = np.diff(values[:, _ROOT_VELOCITIES], axis=0, prepend=0.0)[stepped]
    return out.astype(np.asarray(features).dtype)


@dataclass(frozen=True)
class ConstraintErrors:
    """How far a motion is from a shot's constraints, in metres (one entry per waypoint / path / target)."""

    waypoints: tuple[float, ...]
    path_mean: tuple[float, ...]  # mean distance of the pelvis to the polyline over the path's time range
    path_max: tuple[float, ...]
    path_timed_mean: tuple[float, ...]  # mean distance to where the even pace puts it at each frame
    targets: tuple[float, ...]  # the joint of the motion on the SMPL-22 rest skeleton (bone lengths of the rest)
    targets_raw: tuple[float, ...]  # the features' own joint position (bone lengths as generated)
    facing_deg: tuple[float, ...]  # per waypoint with a `facing`: the facing error in degrees

    def to_dict(self) -> dict[str, list[float]]:
        return {
            "waypoints_m": [round(v, 4) for v in self.waypoints],
            "path_mean_m": [round(v, 4) for v in self.path_mean],
            "path_max_m": [round(v, 4) for v in self.path_max],
            "path_timed_mean_m": [round(v, 4) for v in self.path_timed_mean],
            "targets_m": [round(v, 4) for v in self.targets],
            "targets_raw_m": [round(v, 4) for v in self.targets_raw],
            "facing_deg": [round(v, 2) for v in self.facing_deg],
        }


def waypoint_window(times: list[float], arrive: list[bool], index: int, total: float) -> tuple[float, float]:
    """The time range (s) in which waypoint `index` may be passed: its own time when it must arrive then, otherwise
    from the previous waypoint's time to the next one's (the shot's start and end at the ends)."""
    if arrive[index]:
        return times[index], times[index]
    earlier = [t for t in times if t < times[index]]
    later = [t for t in times if t > times[index]]
    return (max(earlier) if earlier else 0.0), (min(later) if later else total)


def constraint_errors(features: np.ndarray, shot: object) -> ConstraintErrors:
    """The errors of `features` (T, 263) against a `shared.shot.Shot` (duck-typed to keep this module data-free)."""
    joints = features_to_joints(features)
    path, facing = root_path(features)
    last = len(features) - 1
    frame = lambda t: int(min(max(round(t * FPS), 0), last))  # noqa: E731
    waypoints, facing_errors = [], []
    times = [w.time for w in shot.waypoints]  # type: ignore[attr-defined]
    arrive = [w.arrive for w in shot.waypoints]  # type: ignore[attr-defined]
    total = last / FPS
    for i, waypoint in enumerate(shot.waypoints):  # type: ignore[attr-defined]
        lo, hi = waypoint_window(times, arrive, i, total)
        span = path[frame(lo) : frame(hi) + 1]
        distance = np.linalg.norm(span - np.asarray(waypoint.position), axis=1)
        waypoints.append(float(distance.min()))
        if waypoint.facing is not None:
            at = frame(lo) + int(distance.argmin())
            error = np.angle(np.exp(1j * (facing[at] - np.deg2rad(waypoint.facing))))
            facing_errors.append(float(abs(np.rad2deg(error))))
    means, maxes, timed = [], [], []
    for p in shot.paths:  # type: ignore[attr-defined]
        frames = np.arange(frame(p.start), frame(p.end) + 1)
        points = p.array()
        distance = polyline_distance(path[frames], points)
        means.append(float(distance.mean()))
        maxes.append(float(distance.max()))
        expected = path_positions(points, p.start, p.end, frames / FPS)
        timed.append(float(np.linalg.norm(path[frames] - expected, axis=1).mean()))
    rest = proportioned_joints(joints, tpose_joints(), 1.0)  # what the SMPL-22 armature and the BVH output show
    targets, raw = [], []
    for t in shot.targets:  # type: ignore[attr-defined]
        point = np.asarray(t.position)
        targets.append(float(np.linalg.norm(rest[frame(t.time), t.joint_index] - point)))
        raw.append(float(np.linalg.norm(joints[frame(t.time), t.joint_index] - point)))
    return ConstraintErrors(
        tuple(waypoints), tuple(means), tuple(maxes), tuple(timed), tuple(targets), tuple(raw), tuple(facing_errors)
    )
