"""Time profiles for pose tracks: eases, envelopes, Hermite keyframes and frame-axis smoothing (batched numpy)."""

from __future__ import annotations

import numpy as np

from shared.motion.humanml3d import FPS, gaussian_smooth

__all__ = ["FPS", "envelope", "frame_times", "hermite", "smooth", "smoothstep"]


def frame_times(frames: int) -> np.ndarray:
    """(frames,) sample times in seconds at 20 fps."""
    return np.arange(frames) / FPS


def smoothstep(u: np.ndarray) -> np.ndarray:
    """C1 ease 3u² − 2u³ of u clipped to [0, 1] (zero slope at both ends)."""
    u = np.clip(u, 0.0, 1.0)
    return u * u * (3.0 - 2.0 * u)


def envelope(t: np.ndarray, start: float, rise: float, end: float, fall: float) -> np.ndarray:
    """0 → 1 over [start, start + rise], 1 → 0 over [end − fall, end], smooth; (T,) for times t (T,)."""
    up = smoothstep((t - start) / max(rise, 1e-6))
    down = 1.0 - smoothstep((t - (end - fall)) / max(fall, 1e-6))
    return up * down


def hermite(t: np.ndarray, key_times, key_values, key_slopes=None) -> np.ndarray:
    """Piecewise cubic Hermite through keys (K,) times, (K, ...) values, (K, ...) slopes per second.

    Slopes default to 0 (ease in and out of every key: a pose is held at each key). Times before the first key
    or after the last take the end values. A quadratic (a ballistic flight) is reproduced exactly when its
    end slopes are given.
    """
    kt = np.asarray(key_times, dtype=np.float64)
    kv = np.asarray(key_values, dtype=np.float64)
    ks = np.zeros_like(kv) if key_slopes is None else np.asarray(key_slopes, dtype=np.float64)
    tc = np.clip(t, kt[0], kt[-1])
    i = np.clip(np.searchsorted(kt, tc, side="right") - 1, 0, len(kt) - 2)
    h = kt[i + 1] - kt[i]
    s = (tc - kt[i]) / np.maximum(h, 1e-9)
    s2, s3 = s * s, s * s * s
    shape = (-1,) + (1,) * (kv.ndim - 1)
    h00, h10, h01, h11 = (
        (2 * s3 - 3 * s2 + 1).reshape(shape),
        (s3 - 2 * s2 + s).reshape(shape),
        (-2 * s3 + 3 * s2).reshape(shape),
        (s3 - s2).reshape(shape),
    )
    hh = h.reshape(shape)
    return h00 * kv[i] + h10 * hh * ks[i] + h01 * kv[i + 1] + h11 * hh * ks[i + 1]


def smooth(x: np.ndarray, sigma_frames: float) -> np.ndarray:
    """Gaussian smoothing along the frame axis (axis 0) with edge extension; identity for sigma <= 0."""
    if sigma_frames <= 0 or len(x) < 2:
        return x
    return gaussian_smooth(x, sigma_frames, axis=0)
