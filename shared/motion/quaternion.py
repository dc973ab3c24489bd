"""Batched rotation math: quaternions (w, x, y, z; Hamilton; active), rotation matrices, cont6d, Euler angles.

Every function works over arbitrary leading dimensions: quaternions are (..., 4), vectors (..., 3),
matrices (..., 3, 3), cont6d (..., 6).  The cont6d of a matrix is its first two *columns*
(R00, R10, R20, R01, R11, R21), as in HumanML3D `quaternion_to_cont6d`.
"""

from __future__ import annotations

import numpy as np

_EPS = 1e-12


def normalize(v: np.ndarray, axis: int = -1) -> np.ndarray:
    """`v` scaled to unit length along `axis` (zero vectors stay zero)."""
    n = np.sqrt((v * v).sum(axis=axis, keepdims=True))
    return v / np.maximum(n, _EPS)


def qidentity(shape: tuple[int, ...] = ()) -> np.ndarray:
    """Identity quaternions of the given leading shape, (..., 4)."""
    q = np.zeros((*shape, 4), dtype=np.float64)
    q[..., 0] = 1.0
    return q


def qmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product a ⊗ b (apply b first, then a)."""
    aw, ax, ay, az = a[..., 0], a[..., 1], a[..., 2], a[..., 3]
    bw, bx, by, bz = b[..., 0], b[..., 1], b[..., 2], b[..., 3]
    return np.stack(
        [
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ],
        axis=-1,
    )


def cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cross product over the last axis (a lighter np.cross for small batched vectors)."""
    ax, ay, az = a[..., 0], a[..., 1], a[..., 2]
    bx, by, bz = b[..., 0], b[..., 1], b[..., 2]
    return np.stack([ay * bz - az * by, az * bx - ax * bz, ax * by - ay * bx], axis=-1)


def qinv(q: np.ndarray) -> np.ndarray:
    """Conjugate (the inverse of a unit quaternion)."""
    return q * np.array([1.0, -1.0, -1.0, -1.0])


def qnormalize(q: np.ndarray) -> np.ndarray:
    """Unit quaternions."""
    return normalize(q)


def qrot(q: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Rotate vectors v (..., 3) by unit quaternions q (..., 4): q v q⁻¹."""
    w = q[..., :1]
    u = q[..., 1:]
    uv = cross(u, v)
    return v + 2.0 * (w * uv + cross(u, uv))


def qbetween(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Shortest-arc unit quaternion rotating direction a onto b (HumanML3D `qbetween`: w >= 0)."""
    v = cross(a, b)
    w = np.sqrt((a**2).sum(-1, keepdims=True) * (b**2).sum(-1, keepdims=True)) + (a * b).sum(-1, keepdims=True)
    return qnormalize(np.concatenate([w, v], axis=-1))


def qfix(q: np.ndarray) -> np.ndarray:
    """Flip signs along the first axis (time) so consecutive quaternions share a hemisphere."""
    out = q.copy()
    if len(out) < 2:
        return out
    dots = (out[1:] * out[:-1]).sum(-1)
    flips = np.cumsum(dots < 0, axis=0) % 2
    out[1:][flips.astype(bool)] *= -1.0
    return out


def quat_to_matrix(q: np.ndarray) -> np.ndarray:
    """Rotation matrices (..., 3, 3) of quaternions (normalised first)."""
    q = qnormalize(q)
    w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    return np.stack(
        [
            np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
            np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
            np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
        ],
        axis=-2,
    )


def matrix_to_quat(m: np.ndarray) -> np.ndarray:
    """Unit quaternions (w >= 0) of rotation matrices (..., 3, 3); numerically safe branch per element."""
    m00, m11, m22 = m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]
    # Four candidate |components|, pick the largest to divide by (Shepperd's method).
    cand = np.stack([1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22], -1)
    k = np.argmax(cand, axis=-1)
    s = np.sqrt(np.maximum(np.take_along_axis(cand, k[..., None], -1)[..., 0], _EPS)) * 2.0
    d21, d02, d10 = m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0], m[..., 1, 0] - m[..., 0, 1]
    s01, s02, s12 = m[..., 0, 1] + m[..., 1, 0], m[..., 0, 2] + m[..., 2, 0], m[..., 1, 2] + m[..., 2, 1]
    options = np.stack(
        [
            np.stack([0.25 * s, d21 / s, d02 / s, d10 / s], -1),
            np.stack([d21 / s, 0.25 * s, s01 / s, s02 / s], -1),
            np.stack([d02 / s, s01 / s, 0.25 * s, s12 / s], -1),
            np.stack([d10 / s, s02 / s, s12 / s, 0.25 * s], -1),
        ],
        -2,
    )
    q = np.take_along_axis(options, k[..., None, None], -2)[..., 0, :]
    q = np.where(q[..., :1] < 0, -q, q)
    return qnormalize(q)


def matrix_to_cont6d(m: np.ndarray) -> np.ndarray:
    """cont6d = first two columns of R: (R00, R10, R20, R01, R11, R21)."""
    return np.concatenate([m[..., :, 0], m[..., :, 1]], axis=-1)


def cont6d_to_matrix(c: np.ndarray) -> np.ndarray:
    """Gram-Schmidt decoding of cont6d (HumanML3D `cont6d_to_matrix`): R = [x, y, z] as columns."""
    x = normalize(c[..., 0:3])
    z = normalize(cross(x, c[..., 3:6]))
    y = cross(z, x)
    return np.stack([x, y, z], axis=-1)


def quat_to_cont6d(q: np.ndarray) -> np.ndarray:
    """cont6d of quaternions: the first two columns of their rotation matrices."""
    q = qnormalize(q)
    w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    return np.stack(
        [
            1 - 2 * (y * y + z * z),
            2 * (x * y + w * z),
            2 * (x * z - w * y),
            2 * (x * y - w * z),
            1 - 2 * (x * x + z * z),
            2 * (y * z + w * x),
        ],
        axis=-1,
    )


def axis_angle_to_matrix(axis: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """Rodrigues: rotation by `angle` (...,) radians about unit `axis` (..., 3)."""
    half = np.asarray(angle)[..., None] * 0.5
    return quat_to_matrix(np.concatenate([np.cos(half), np.sin(half) * normalize(axis)], -1))


_AXIS_INDEX = {"X": 0, "Y": 1, "Z": 2}


def _elementary(axis: str, radians: np.ndarray) -> np.ndarray:
    c, s = np.cos(radians), np.sin(radians)
    o, z = np.ones_like(radians), np.zeros_like(radians)
    if axis == "X":
        rows = [[o, z, z], [z, c, -s], [z, s, c]]
    elif axis == "Y":
        rows = [[c, z, s], [z, o, z], [-s, z, c]]
    else:
        rows = [[c, -s, z], [s, c, z], [z, z, o]]
    return np.stack([np.stack(r, -1) for r in rows], -2)


def euler_to_matrix(degrees: np.ndarray, order: str) -> np.ndarray:
    """Intrinsic Euler angles as written in BVH: channel order "ZYX" means R = Rz(a)·Ry(b)·Rx(c).

    `degrees` is (..., 3) with the angles in the same order as `order`.
    """
    radians = np.deg2rad(degrees)
    m = _elementary(order[0], radians[..., 0])
    for i in (1, 2):
        m = m @ _elementary(order[i], radians[..., i])
    return m


def matrix_to_euler(m: np.ndarray, order: str) -> np.ndarray:
    """Inverse of `euler_to_matrix` for any of the six Tait-Bryan orders; (..., 3) degrees."""
    i, j, k = (_AXIS_INDEX[a] for a in order)
    # Sign of the permutation (i, j, k): +1 for cyclic XYZ/YZX/ZXY.
    sign = 1.0 if (j - i) % 3 == 1 else -1.0
    middle = np.arcsin(np.clip(sign * m[..., i, k], -1.0, 1.0))
    first = np.arctan2(-sign * m[..., j, k], m[..., k, k])
    last = np.arctan2(-sign * m[..., i, j], m[..., i, i])
    # Gimbal lock: put all of the remaining rotation into the first angle.
    locked = np.abs(m[..., i, k]) > 1.0 - 1e-9
    if np.any(locked):
        first = np.where(locked, np.arctan2(sign * m[..., k, j], m[..., j, j]), first)
        last = np.where(locked, 0.0, last)
    return np.rad2deg(np.stack([first, middle, last], -1))


def qslerp(a: np.ndarray, b: np.ndarray, t: np.ndarray | float) -> np.ndarray:
    """Shortest-arc spherical interpolation from unit a (t = 0) to unit b (t = 1); `t` broadcasts over (...)."""
    t = np.asarray(t, dtype=np.float64)[..., None]
    dot = (a * b).sum(-1, keepdims=True)
    b = np.where(dot < 0.0, -b, b)
    dot = np.abs(dot)
    angle = np.arccos(np.clip(dot, -1.0, 1.0))
    sin = np.sin(angle)
    near = sin < 1e-9  # (nearly) the same rotation: the linear blend is exact enough
    safe = np.where(near, 1.0, sin)
    wa = np.where(near, 1.0 - t, np.sin((1.0 - t) * angle) / safe)
    wb = np.where(near, t, np.sin(t * angle) / safe)
    return qnormalize(wa * a + wb * b)


# Blender's rotation modes (`PoseBone.rotation_mode`, `mathutils.Euler`): angles are always stored as (x, y, z)
# radians; the order names the axes in the sequence they are applied about the fixed parent axes, so "XYZ" is
# R = Rz(z)·Ry(y)·Rx(x) — the intrinsic sequence of the reversed order, which `euler_to_matrix` speaks.


def _xyz_positions(order: str) -> list[int]:
    """Where the angles of `order` reversed (the intrinsic sequence) sit in an (x, y, z) vector."""
    return [_AXIS_INDEX[a] for a in order[::-1]]


def euler_to_quat(angles: np.ndarray, order: str) -> np.ndarray:
    """Unit quaternions of Euler angles (..., 3) = (x, y, z) radians in rotation order `order` ("XYZ": X first)."""
    angles = np.asarray(angles, dtype=np.float64)
    intrinsic = angles[..., _xyz_positions(order)]
    return matrix_to_quat(euler_to_matrix(np.rad2deg(intrinsic), order[::-1]))


def alternate_euler(angles: np.ndarray, order: str) -> np.ndarray:
    """The other Euler triple of the same rotation: first and last angle + π, middle angle π − middle."""
    out = np.asarray(angles, dtype=np.float64) + np.pi
    middle = _AXIS_INDEX[order[1]]
    out[..., middle] = np.pi - angles[..., middle]
    return out


def _wrap(radians: np.ndarray) -> np.ndarray:
    """Angles into (−π, π]."""
    return np.pi - np.mod(np.pi - radians, 2.0 * np.pi)


def quat_to_euler(q: np.ndarray, order: str) -> np.ndarray:
    """(x, y, z) radians in rotation order `order` of quaternions (..., 4); of the two triples in (−π, π] the one
    with the smaller sum of |angles| (ties: middle angle within ±π/2), as `mathutils.Quaternion.to_euler(order)`."""
    intrinsic = np.deg2rad(matrix_to_euler(quat_to_matrix(q), order[::-1]))
    first = np.empty_like(intrinsic)
    first[..., _xyz_positions(order)] = intrinsic
    second = _wrap(alternate_euler(first, order))
    better = np.abs(second).sum(-1, keepdims=True) < np.abs(first).sum(-1, keepdims=True)
    return np.where(better, second, first)


def _angular_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Sum over the three angles of |a − b| taken modulo 2π."""
    return np.abs(_wrap(a - b)).sum(-1)


def continuous_eulers(q: np.ndarray, order: str, start: np.ndarray | None = None) -> np.ndarray:
    """(T, ..., 3) Euler angles of quaternions (T, ..., 4) that change smoothly along the first axis (time): each
    frame takes whichever of its two triples, shifted by multiples of 2π per angle, lies closest to the previous
    frame's (no ±180° flips, angles may leave (−π, π]); frame 0 lies closest to `start` (..., 3) when given."""
    first = quat_to_euler(q, order)
    if len(first) == 0:
        return first
    second = alternate_euler(first, order)
    if start is None:
        initial = np.zeros(first.shape[1:-1], bool)
    else:
        initial = _angular_distance(second[0], start) < _angular_distance(first[0], start)
    # Moving from frame t−1 to t, staying on the same triple costs the same on both (their differences are equal up
    # to sign, modulo 2π), so the choice at each frame is only whether to cross over: a running parity.
    cross = _angular_distance(first[1:], second[:-1]) < _angular_distance(first[1:], first[:-1])
    switched = np.concatenate([initial[None], initial[None] ^ (np.cumsum(cross, axis=0) % 2).astype(bool)])
    chosen = np.where(switched[..., None], second, first)
    if start is None:
        return np.unwrap(chosen, axis=0)
    anchored = np.concatenate([np.asarray(start, dtype=np.float64)[None], chosen])
    return np.unwrap(anchored, axis=0)[1:]


def quat_to_axis_angle(q: np.ndarray) -> np.ndarray:
    """(angle, x, y, z) of quaternions (..., 4): angle = 2·atan2(|v|, w) in [0, 2π] (w < 0 gives angles past π,
    so a hemisphere-continuous track stays continuous); axis +Y for the identity (Blender's default)."""
    q = qnormalize(q)
    v = q[..., 1:]
    norm = np.sqrt((v * v).sum(-1, keepdims=True))
    axis = np.where(norm > 1e-12, v / np.maximum(norm, _EPS), np.array([0.0, 1.0, 0.0]))
    return np.concatenate([2.0 * np.arctan2(norm, q[..., :1]), axis], axis=-1)


def axis_angle_to_quat(axis_angle: np.ndarray) -> np.ndarray:
    """Unit quaternions of (angle, x, y, z) (..., 4), Blender's `rotation_axis_angle` layout."""
    axis_angle = np.asarray(axis_angle, dtype=np.float64)
    half = axis_angle[..., :1] * 0.5
    return np.concatenate([np.cos(half), np.sin(half) * normalize(axis_angle[..., 1:])], axis=-1)
