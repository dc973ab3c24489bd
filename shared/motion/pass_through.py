"""Generated pose tracks made to pass through keyed poses (per-key residuals spread between keys) and written
continuously on from the keys (quaternion hemispheres, Euler branches)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from .quaternion import continuous_eulers, qfix, qinv, qmul, qnormalize, qslerp


def _brackets(times: np.ndarray, at: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each of `at`: the neighbouring entries i, i + 1 of increasing `times` and the blend u ∈ [0, 1] between
    them (clamped outside the first and last time)."""
    times, at = np.asarray(times, dtype=np.float64), np.asarray(at, dtype=np.float64)
    if len(times) == 1:
        zero = np.zeros(len(at), int)
        return zero, zero, np.zeros(len(at))
    right = np.clip(np.searchsorted(times, at, side="right"), 1, len(times) - 1)
    left = right - 1
    u = np.clip((at - times[left]) / (times[right] - times[left]), 0.0, 1.0)
    return left, right, u


def _blend_shape(u: np.ndarray, like: np.ndarray) -> np.ndarray:
    """`u` (N,) shaped to broadcast over (N, ...) arrays without their last axis."""
    return u.reshape(len(u), *([1] * (like.ndim - 2)))


def rotations_at(q: np.ndarray, times: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Unit quaternions (T, ..., 4) sampled at `times` (T,), slerped at the times `at` (N,) → (N, ..., 4)."""
    left, right, u = _brackets(times, at)
    return qslerp(q[left], q[right], _blend_shape(u, q))


def locations_at(loc: np.ndarray, times: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Vectors (T, ..., 3) sampled at `times` (T,), linearly interpolated at the times `at` (N,) → (N, ..., 3)."""
    left, right, u = _brackets(times, at)
    u = _blend_shape(u, loc)[..., None]
    return (1.0 - u) * loc[left] + u * loc[right]


def pin_rotations(q: np.ndarray, times: np.ndarray, key_times: np.ndarray, key_q: np.ndarray) -> np.ndarray:
    """Rotations (T, ..., 4) at `times` (T,) corrected to equal `key_q` (N, ..., 4) at `key_times` (N, increasing).

    At key k the residual is r_k = q_key · q(t_k)⁻¹; between keys k and k + 1 the residual is slerped in time,
    constant before the first key and after the last, and applied on the left: r(t) · q(t).
    """
    q = qnormalize(np.asarray(q, dtype=np.float64))
    if len(key_times) == 0:
        return q
    residual = qmul(qnormalize(np.asarray(key_q, dtype=np.float64)), qinv(rotations_at(q, times, key_times)))
    residual = np.where(residual[..., :1] < 0.0, -residual, residual)  # the short way round
    left, right, u = _brackets(key_times, times)
    spread = qslerp(residual[left], residual[right], _blend_shape(u, q))
    return qnormalize(qmul(spread, q))


def pin_locations(loc: np.ndarray, times: np.ndarray, key_times: np.ndarray, key_loc: np.ndarray) -> np.ndarray:
    """Locations (T, ..., 3) corrected to equal `key_loc` (N, ..., 3) at `key_times`: the residual of each key,
    linear in time between keys, constant outside them."""
    loc = np.asarray(loc, dtype=np.float64)
    if len(key_times) == 0:
        return loc
    residual = np.asarray(key_loc, dtype=np.float64) - locations_at(loc, times, key_times)
    return loc + locations_at(residual, key_times, times)


def anchor_runs(times: np.ndarray, anchor_times: np.ndarray) -> Iterator[tuple[np.ndarray, int]]:
    """(indices of `times`, anchor) runs: every time follows its nearest anchor (ties: the earlier one), listed
    walking away from it, so a run continues its anchor's value frame by frame. No anchors: one run from the start."""
    times = np.asarray(times, dtype=np.float64)
    if len(anchor_times) == 0:
        yield np.arange(len(times)), -1
        return
    anchor_times = np.asarray(anchor_times, dtype=np.float64)
    nearest = np.argmin(np.abs(times[:, None] - anchor_times[None, :]), axis=1)
    for k, at in enumerate(anchor_times):
        mine = np.flatnonzero(nearest == k)
        after, before = mine[times[mine] >= at], mine[times[mine] < at]
        if len(after):
            yield after, k
        if len(before):
            yield before[::-1], k


def anchored_quaternions(
    q: np.ndarray, times: np.ndarray, anchor_times: np.ndarray, anchor_q: np.ndarray
) -> np.ndarray:
    """Signs of quaternions (T, ..., 4) chosen so each run from its nearest anchor is hemisphere-continuous and starts
    on the anchor's hemisphere (`anchor_q` (N, ..., 4)): F-curves interpolate per component, so the keys next to a
    user's key must not cross to the opposite sign. No anchors: frame 0 has w ≥ 0."""
    q = np.asarray(q, dtype=np.float64)
    out = np.empty_like(q)
    for run, k in anchor_runs(times, anchor_times):
        if k < 0:
            start = np.where(q[:1, ..., :1] < 0.0, -q[:1], q[:1])
        else:
            start = np.asarray(anchor_q[k : k + 1], dtype=np.float64)
        out[run] = qfix(np.concatenate([start, q[run]]))[1:]
    return out


def anchored_eulers(
    q: np.ndarray, order: str, times: np.ndarray, anchor_times: np.ndarray, anchor_euler: np.ndarray
) -> np.ndarray:
    """Euler angles (T, ..., 3) (`quaternion.quat_to_euler` convention) of quaternions (T, ..., 4), each run from its
    nearest anchor continuous and starting next to the anchor's own angles (`anchor_euler` (N, ..., 3)), whatever
    branch or multiple of 2π the user's keys are on."""
    q = np.asarray(q, dtype=np.float64)
    out = np.empty((*q.shape[:-1], 3))
    for run, k in anchor_runs(times, anchor_times):
        out[run] = continuous_eulers(q[run], order, None if k < 0 else np.asarray(anchor_euler[k], dtype=np.float64))
    return out
