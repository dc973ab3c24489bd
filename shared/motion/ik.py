"""Deterministic positions → per-bone local rotations (HUMANML3D.md §4.3, BVH convention) and forward kinematics."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .skeleton import NUM_JOINTS, PARENTS, TPOSE_OFFSETS

_EPS = 1e-12
_PARENTS = np.array(PARENTS)
_PARENTS[0] = 0  # root: gather index only (never used as a real parent)

# Depth levels of the SMPL-22 tree (joints at the same depth have parents one level up).
_DEPTH = np.zeros(NUM_JOINTS, dtype=int)
for _j in range(1, NUM_JOINTS):
    _DEPTH[_j] = _DEPTH[PARENTS[_j]] + 1
_LEVELS: tuple[np.ndarray, ...] = tuple(np.flatnonzero(_DEPTH == d) for d in range(1, _DEPTH.max() + 1))

_X = np.array([1.0, 0.0, 0.0])
_Y = np.array([0.0, 1.0, 0.0])
_Z = np.array([0.0, 0.0, 1.0])

# §4.3 step 1: rigid triads (joint, its three children).
_TRIADS: tuple[tuple[int, tuple[int, int, int]], ...] = ((0, (1, 2, 3)), (9, (12, 13, 14)))
# §4.3 steps 2 and 5, level 1 (parent known after the triads): spine1, neck (parent-carried +X); collars (chest +Z).
_LVL1_J, _LVL1_C, _LVL1_AX = np.array([3, 12, 13, 14]), np.array([6, 15, 16, 17]), np.stack([_X, _X, _Z, _Z])
# §4.3 step 3: limb roots (hips, shoulders), their child / grandchild and the fixed rest hinge axes.
_LIMB_J, _LIMB_C, _LIMB_G = np.array([1, 2, 16, 17]), np.array([4, 5, 18, 19]), np.array([7, 8, 20, 21])
_LIMB_AX = np.stack([_X, _X, -_Y, _Y])
_SIN_TRANSPORT, _SIN_HINGE = 0.17, 0.34  # sin(bend) below: parallel transport; above: hinge frame; slerp between
# §4.3 step 5: ankles (secondary = knee-carried +X).
_ANKLE_J, _ANKLE_C = np.array([7, 8]), np.array([10, 11])
# §4.3 step 6: leaves copy their parent's global rotation.
_LEAVES = np.array([10, 11, 15, 20, 21])


@dataclass(frozen=True)
class IkResult:
    """Output of `solve_local_rotations`.

    local_rotations: (N, 22, 3, 3) BVH-convention local rotations (root = global pelvis rotation).
    root_positions:  (N, 3) pelvis positions (the BVH root translation, ROOT OFFSET 0).
    rest_offsets:    (22, 3) parent-relative rest offsets the rotations refer to (row 0 = 0); feed these to
                     `forward_kinematics` / the BVH writer.
    """

    local_rotations: np.ndarray
    root_positions: np.ndarray
    rest_offsets: np.ndarray


# ----------------------------------------------------------------------------------------------------------------
# Small batched helpers (arbitrary leading dims)


def _dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(..., 3)·(..., 3) -> (..., 1)."""
    return (a * b).sum(-1, keepdims=True)


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(..., 3)×(..., 3) -> (..., 3); componentwise (cheaper than np.cross for small arrays)."""
    a0, a1, a2 = a[..., 0], a[..., 1], a[..., 2]
    b0, b1, b2 = b[..., 0], b[..., 1], b[..., 2]
    return np.stack([a1 * b2 - a2 * b1, a2 * b0 - a0 * b2, a0 * b1 - a1 * b0], -1)


def _unit(v: np.ndarray) -> np.ndarray:
    """(..., 3) -> (..., 3) unit vectors."""
    return v / np.maximum(np.sqrt(_dot(v, v)), _EPS)


def frame(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """§4.3 Frame(a, b): (..., 3, 3) with columns â, normalise(b − (b·â)â), â × that; a, b (..., 3)."""
    x = _unit(a)
    y = _unit(b - _dot(b, x) * x)
    return np.stack([x, y, _cross(x, y)], -1)


def kabsch(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Best-fit rotation R (..., 3, 3) with R·src_i ≈ dst_i; src, dst (..., K, 3). R = V·diag(1,1,det)·Uᵀ."""
    h = np.swapaxes(src, -1, -2) @ dst  # (..., 3, 3) Σ src_i dst_iᵀ = U S Vᵀ
    u, _, vt = np.linalg.svd(h)
    v = np.swapaxes(vt, -1, -2)
    ut = np.swapaxes(u, -1, -2)
    d = np.sign(np.linalg.det(v @ ut))
    v = v * np.stack([np.ones_like(d), np.ones_like(d), d], -1)[..., None, :]
    return v @ ut


def swing(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Shortest-arc rotation (..., 3, 3) taking unit u onto unit v (..., 3); antipodal: π about an axis ⟂ u."""
    k = _cross(u, v)  # (..., 3)
    c = _dot(u, v)[..., None]  # (..., 1, 1)
    kx = np.zeros((*k.shape, 3))
    kx[..., 0, 1], kx[..., 0, 2], kx[..., 1, 2] = -k[..., 2], k[..., 1], -k[..., 0]
    kx[..., 1, 0], kx[..., 2, 0], kx[..., 2, 1] = k[..., 2], -k[..., 1], k[..., 0]
    r = c * np.eye(3) + kx + k[..., :, None] * k[..., None, :] / np.maximum(1.0 + c, _EPS)
    anti = c[..., 0, 0] < -1.0 + 1e-9
    if np.any(anti):  # 180°: R = 2ppᵀ − I for a unit p ⟂ u
        helper = np.where(np.abs(u[..., :1]) < 0.9, _X, _Y)  # (..., 3) any axis not parallel to u
        p = _unit(_cross(u, helper))
        r = np.where(anti[..., None, None], 2.0 * p[..., :, None] * p[..., None, :] - np.eye(3), r)
    return r


def _prefix_product(m: np.ndarray) -> np.ndarray:
    """Running product along axis 0: out[t] = m[t]·m[t−1]···m[0]; m (N, ..., 3, 3). Hillis–Steele, log2(N) matmuls."""
    out = m.copy()
    step = 1
    while step < len(out):
        out[step:] = out[step:] @ out[:-step]
        step *= 2
    return out


# ----------------------------------------------------------------------------------------------------------------
# Kinematics


def local_to_global(local: np.ndarray) -> np.ndarray:
    """Global rotations (N, 22, 3, 3) from BVH local ones (N, 22, 3, 3): G_0 = L_0, G_j = G_parent·L_j."""
    g = local.copy()
    for level in _LEVELS:
        g[:, level] = g[:, _PARENTS[level]] @ local[:, level]
    return g


def global_to_local(g: np.ndarray) -> np.ndarray:
    """BVH local rotations (N, 22, 3, 3) from global ones: L_j = G_parentᵀ·G_j, L_0 = G_0."""
    local = np.swapaxes(g[:, _PARENTS], -1, -2) @ g
    local[:, 0] = g[:, 0]
    return local


def forward_kinematics(local: np.ndarray, root_positions: np.ndarray, rest_offsets: np.ndarray) -> np.ndarray:
    """Joint positions (N, 22, 3): p_0 = root (N, 3), p_j = p_parent + G_parent·offset_j (rest_offsets (22, 3))."""
    g = local_to_global(local)  # (N, 22, 3, 3)
    bones = np.einsum("njab,jb->nja", g[:, _PARENTS], rest_offsets)  # (N, 22, 3); row 0 unused
    pos = np.empty(bones.shape)
    pos[:, 0] = root_positions
    for level in _LEVELS:
        pos[:, level] = pos[:, _PARENTS[level]] + bones[:, level]
    return pos


def rotation_angle_degrees(r: np.ndarray) -> np.ndarray:
    """Geodesic angle (..., ) in degrees of rotation matrices (..., 3, 3); atan2 form, accurate near 0 and 180°."""
    cos = (r[..., 0, 0] + r[..., 1, 1] + r[..., 2, 2] - 1.0) * 0.5
    s = np.stack([r[..., 2, 1] - r[..., 1, 2], r[..., 0, 2] - r[..., 2, 0], r[..., 1, 0] - r[..., 0, 1]], -1)
    sin = 0.5 * np.sqrt((s * s).sum(-1))
    return np.degrees(np.arctan2(sin, cos))


def per_frame_rotation_change_degrees(local: np.ndarray) -> np.ndarray:
    """Geodesic angle (N−1, J) in degrees between consecutive frames of rotations (N, J, 3, 3); flag > 90°."""
    return rotation_angle_degrees(np.swapaxes(local[:-1], -1, -2) @ local[1:])


# ----------------------------------------------------------------------------------------------------------------
# §4.3 solver


def _wrap(x: float) -> float:
    return (x + math.pi) % (2.0 * math.pi) - math.pi


def _limb_roots(
    joints: np.ndarray, g_parent: np.ndarray, offsets: np.ndarray, world_transport: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Global rotations (N, 4, 3, 3) of hips/shoulders and their hinge weights (N, 4), §4.3 step 3.

    Twist about the bone is the hinge frame where the limb is bent (sin > 0.34), parallel transport where it is
    straight (sin < 0.17), slerped between. Everything is written as R(t) = T(t)·R_ô(φ(t)) with T the pure
    parallel transport (a prefix product of consecutive swings, vectorised) and φ a scalar twist whose
    recursion φ(t) = φ(t−1) + w(t)·wrap(ψ(t) − φ(t−1)) is the only sequential part (ψ = hinge-frame twist).
    Transport runs in the parent's frame (default) or in world space (`world_transport`, §4.3 literally).
    """
    n_frames = len(joints)
    a = joints[:, _LIMB_C] - joints[:, _LIMB_J]  # (N, 4, 3) upper bone
    b = joints[:, _LIMB_G] - joints[:, _LIMB_C]  # (N, 4, 3) lower bone
    hinge = _cross(a, b)  # (N, 4, 3), anatomical sign fixed (never re-signed)
    sin_bend = np.sqrt(_dot(hinge, hinge)[..., 0] / np.maximum(_dot(a, a) * _dot(b, b), _EPS)[..., 0])
    w = np.clip((sin_bend - _SIN_TRANSPORT) / (_SIN_HINGE - _SIN_TRANSPORT), 0.0, 1.0)  # (N, 4)

    o = _unit(offsets[_LIMB_C])  # (4, 3) rest bone directions ô
    h = _unit(_LIMB_AX - _dot(_LIMB_AX, o) * o)  # (4, 3) rest hinge axis ⟂ ô
    # Work in the transport frame F: identity (world) or the parent's global rotation.
    if world_transport:
        d, m = _unit(a), hinge
        first = g_parent[0]  # (4, 3, 3): frame 0 starts from the parent-carried rest orientation
    else:
        gpt = np.swapaxes(g_parent, -1, -2)
        d, m = _unit(np.einsum("ntab,ntb->nta", gpt, a)), np.einsum("ntab,ntb->nta", gpt, hinge)
        first = np.broadcast_to(np.eye(3), (4, 3, 3))
    steps = np.empty((n_frames, 4, 3, 3))
    steps[0] = swing(np.einsum("tab,tb->ta", first, o), d[0]) @ first
    steps[1:] = swing(d[:-1], d[1:])
    transport = _prefix_product(steps)  # (N, 4, 3, 3), maps ô → d̂(t)
    u_t = np.einsum("ntab,tb->nta", transport, h)  # (N, 4, 3) transported hinge reference, ⟂ d̂
    v_t = _cross(d, u_t)
    m_hat = _unit(m)
    psi = np.arctan2(_dot(v_t, m_hat)[..., 0], _dot(u_t, m_hat)[..., 0])  # (N, 4) hinge twist vs transport

    phi = np.zeros((n_frames, 4))
    psi_l, w_l = psi.T.tolist(), w.T.tolist()
    for k in range(4):
        prev, pk, wk, out = 0.0, psi_l[k], w_l[k], phi[:, k]
        for t in range(n_frames):
            wt = wk[t]
            if wt >= 1.0:
                prev = pk[t]
            elif wt > 0.0:
                prev = prev + wt * _wrap(pk[t] - prev)
            out[t] = prev
    u = np.cos(phi)[..., None] * u_t + np.sin(phi)[..., None] * v_t
    r = frame(d, u) @ np.swapaxes(frame(o, h), -1, -2)  # (N, 4, 3, 3) in the transport frame
    return (r if world_transport else g_parent @ r), w


def _rest_frames(offsets: np.ndarray, children: np.ndarray, axes: np.ndarray) -> np.ndarray:
    """Frame(O_child, axis)ᵀ (K, 3, 3) for rest offsets (22, 3), children (K,), secondary axes (K, 3)."""
    return np.swapaxes(frame(offsets[children], axes), -1, -2)


def _fitted_offsets(joints: np.ndarray, template: np.ndarray) -> np.ndarray:
    """Rest offsets (22, 3) for which FK reproduces `joints`: clip triads in the frame-0 Kabsch frame, and every
    other bone the template direction at the clip's mean bone length."""
    bones = joints[:, 1:] - joints[:, _PARENTS[1:]]  # (N, 21, 3)
    lengths = np.sqrt((bones * bones).sum(-1)).mean(0)  # (21,)
    out = np.zeros((NUM_JOINTS, 3))
    out[1:] = _unit(template[1:]) * lengths[:, None]
    for j, children in _TRIADS:
        c = list(children)
        r0 = kabsch(template[c], joints[0, c] - joints[0, j])  # (3, 3)
        out[c] = (joints[0, c] - joints[0, j]) @ r0  # rows: r0ᵀ·(P_c − P_j)
    return out


def solve_local_rotations(
    joints: np.ndarray,
    rest_offsets: np.ndarray = TPOSE_OFFSETS,
    fit_triads: bool = False,
    world_transport: bool = False,
) -> IkResult:
    """§4.3 IK: joints (N, 22, 3) (Y-up, SMPL-22) → `IkResult` (local (N, 22, 3, 3), root (N, 3), offsets (22, 3)).

    Rotations are relative to `rest_offsets` (default: the §4.3 T-pose). With `fit_triads`, the pelvis/chest
    triads take the clip's own frame-0 shape and every bone the clip's (mean) length, so that
    `forward_kinematics(result...)` reproduces `joints` exactly; `result.rest_offsets` holds the offsets used.
    Near-straight limbs are parallel-transported in the parent's frame (invariant to parent motion);
    `world_transport=True` transports in world space as §4.3 writes it.
    """
    p = np.asarray(joints, dtype=np.float64)
    template = np.asarray(rest_offsets, dtype=np.float64)
    offsets = _fitted_offsets(p, template) if fit_triads else template.copy()
    offsets[0] = 0.0
    n_frames = len(p)
    g = np.empty((n_frames, NUM_JOINTS, 3, 3))

    # 1. Pelvis and chest: Kabsch of the rest triads onto the data triads (one batched SVD).
    src = np.stack([offsets[list(c)] for _, c in _TRIADS])  # (2, 3, 3)
    dst = np.stack([p[:, list(c)] - p[:, j, None] for j, c in _TRIADS], 1)  # (N, 2, 3, 3)
    g[:, [0, 9]] = kabsch(src, dst)

    # 2 + 5. Spine1 (pelvis +X), neck (chest +X), collars (chest +Z).
    sec = np.einsum("ntab,tb->nta", g[:, _PARENTS[_LVL1_J]], _LVL1_AX)
    g[:, _LVL1_J] = frame(p[:, _LVL1_C] - p[:, _LVL1_J], sec) @ _rest_frames(offsets, _LVL1_C, _LVL1_AX)
    # 2. Spine2 (spine1 +X).
    sec = g[:, 3] @ _X
    g[:, 6] = frame(p[:, 9] - p[:, 6], sec) @ _rest_frames(offsets, np.array([9]), _X[None])[0]

    # 3. Hips and shoulders.
    g[:, _LIMB_J], _ = _limb_roots(p, g[:, _PARENTS[_LIMB_J]], offsets, world_transport)

    # 4. Knees and elbows: secondary = the parent's carried hinge axis.
    sec = np.einsum("ntab,tb->nta", g[:, _LIMB_J], _LIMB_AX)
    g[:, _LIMB_C] = frame(p[:, _LIMB_G] - p[:, _LIMB_C], sec) @ _rest_frames(offsets, _LIMB_G, _LIMB_AX)

    # 5. Ankles: secondary = knee-carried +X.
    sec = g[:, _PARENTS[_ANKLE_J]] @ _X
    ax = np.stack([_X, _X])
    g[:, _ANKLE_J] = frame(p[:, _ANKLE_C] - p[:, _ANKLE_J], sec) @ _rest_frames(offsets, _ANKLE_C, ax)

    # 6. Leaves copy the parent; their parents are all solved above.
    g[:, _LEAVES] = g[:, _PARENTS[_LEAVES]]

    # 7. Local rotations; root translation = pelvis.
    return IkResult(global_to_local(g), p[:, 0].copy(), offsets)
