"""Resampling motion by time between frame rates (20 fps HumanML3D ⇄ any scene rate, e.g. 30000/1001)."""

from __future__ import annotations

import numpy as np

from .quaternion import qfix, qnormalize


class FrameRateError(ValueError):
    """A frame rate is not a positive finite number."""


def _check_fps(name: str, fps: float) -> float:
    fps = float(fps)
    if not np.isfinite(fps) or fps <= 0:
        raise FrameRateError(f"{name}: frame rate must be a positive number, got {fps}")
    return fps


def resampled_frame_count(frames: int, src_fps: float, dst_fps: float) -> int:
    """Number of frames at dst_fps covering the duration (frames - 1) / src_fps, first frame at t = 0."""
    duration = (frames - 1) / _check_fps("src_fps", src_fps)
    # The epsilon keeps an exact multiple (e.g. 9 s at 29.97) from losing its last frame to rounding.
    return int(np.floor(duration * _check_fps("dst_fps", dst_fps) + 1e-6)) + 1


def _sample_points(frames: int, src_fps: float, dst_fps: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each output frame: lower source index, upper source index, blend weight in [0, 1]."""
    count = resampled_frame_count(frames, src_fps, dst_fps)
    position = np.arange(count) * (src_fps / dst_fps)  # fractional source frame of each output frame
    position = np.minimum(position, frames - 1)
    lower = np.floor(position).astype(np.int64)
    upper = np.minimum(lower + 1, frames - 1)
    return lower, upper, position - lower


def resample_linear(values: np.ndarray, src_fps: float, dst_fps: float) -> np.ndarray:
    """Linear interpolation in time of (T, ...) values (positions, translations) from src_fps to dst_fps."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) < 1:
        raise ValueError("values: needs at least one frame")
    lower, upper, weight = _sample_points(len(values), src_fps, dst_fps)
    weight = weight.reshape(-1, *([1] * (values.ndim - 1)))
    return values[lower] * (1.0 - weight) + values[upper] * weight


def resample_quaternions(quats: np.ndarray, src_fps: float, dst_fps: float) -> np.ndarray:
    """Slerp in time of (T, ..., 4) unit quaternions from src_fps to dst_fps."""
    quats = qfix(qnormalize(np.asarray(quats, dtype=np.float64)))
    lower, upper, weight = _sample_points(len(quats), src_fps, dst_fps)
    a, b = quats[lower], quats[upper]
    weight = weight.reshape(-1, *([1] * (quats.ndim - 1)))
    cos = np.clip((a * b).sum(-1, keepdims=True), -1.0, 1.0)
    angle = np.arccos(cos)
    sin = np.sin(angle)
    small = sin < 1e-6  # nearly equal: linear blend is exact enough and avoids 0/0
    safe_sin = np.where(small, 1.0, sin)
    wa = np.where(small, 1.0 - weight, np.sin((1.0 - weight) * angle) / safe_sin)
    wb = np.where(small, weight, np.sin(weight * angle) / safe_sin)
    return qnormalize(wa * a + wb * b)


def nominal_fps(fps: float, tolerance: float = 1e-4) -> float:
    """The intended frame rate behind a rounded frame time: 1/0.0083333 -> 120, 1/0.0333667 -> 30000/1001.

    Snaps to the nearest whole rate or NTSC rate (n·1000/1001) within a relative `tolerance`; any other rate
    is returned unchanged.
    """
    fps = _check_fps("fps", fps)
    candidates = (round(fps), round(fps * 1.001) * 1000 / 1001)
    best = min(candidates, key=lambda c: abs(c - fps))
    return float(best) if best > 0 and abs(best - fps) <= tolerance * fps else fps
