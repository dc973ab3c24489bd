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
# Children and secondary axes of every Frame-solved joint: spine1, neck, collars, spine2, knees/elbows, ankles.
_SOLVE_C = np.concatenate([_LVL1_C, [9], _LIMB_G, _ANKLE_C])
_SOLVE_AX = np.concatenate([_LVL1_AX, _X[None], _LIMB_AX, _X[None], _X[None]])


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
    return np.einsum("...i,...i->...", a, b)[..., None]


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(..., 3)×(..., 3) -> (..., 3); componentwise (cheaper than np.cross for small arrays)."""
    a0, a1, a2 = a[..., 0], a[..., 1], a[..., 2]
    b0, b1, b2 = b[..., 0], b[..., 1], b[..., 2]
    return np.stack([a1 * b2 - a2 * b1, a2 * b0 - a0 * b2, a0 * b1 - a1 * b0], -1)


def _unit(v: np.ndarray) -> np.ndarray:
    """(..., 3) -> (..., 3) unit vectors."""
    return v / np.maximum(np.sqrt(_dot(v, v)), _EPS)


def _matvec(m: np.ndarray, v: np.ndarray) -> np.ndarray:
    """m·v for (..., 3, 3) and (..., 3) -> (..., 3)."""
    return np.einsum("...ab,...b->...a", m, v)


def _tmatvec(m: np.ndarray, v: np.ndarray) -> np.ndarray:
    """mᵀ·v for (..., 3, 3) and (..., 3) -> (..., 3)."""
    return np.einsum("...ba,...b->...a", m, v)


def frame(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """§4.3 Frame(a, b): (..., 3, 3) with columns â, normalise(b − (b·â)â), â × that; a, b (..., 3)."""
    x = _unit(a)
    y = _unit(b - _dot(b, x) * x)
    out = np.empty((*np.broadcast_shapes(x.shape, y.shape), 3))
    out[..., 0], out[..., 1], out[..., 2] = x, y, _cross(x, y)
    return out


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


def _twist_angle(d: np.ndarray, r: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Angle (...,) about unit d from r to v (both (..., 3), r ⟂ d unit; v's component along d ignored)."""
    return np.arctan2(_dot(d, _cross(r, v))[..., 0], _dot(r, v)[..., 0])


def _limb_roots(
    a: np.ndarray, b: np.ndarray, g_parent: np.ndarray, offsets: np.ndarray, world_transport: bool
) -> np.ndarray:
    """Local rotations (N, 4, 3, 3) of hips/shoulders (§4.3 step 3) from their upper/lower bones a, b (N, 4, 3).

    Twist about the bone is the hinge frame where the limb is bent (sin > 0.34), parallel transport where it is
    straight (sin < 0.17), slerped between. Both candidates map ô onto the bone, so they differ by a twist about
    it: each frame gets a well-conditioned reference r(t) ⟂ d̂(t), and the twist β(t) of the result from r(t)
    follows β_pt(t) = β(t−1) + δ(t) (δ: r(t−1) parallel-transported onto d̂(t), measured from r(t); all
    vectorised) and β(t) = β_pt(t) + w(t)·wrap(ψ(t) − β_pt(t)) (ψ: hinge twist); only that scalar recursion
    loops over frames. Transport runs in the parent's frame (default: invariant to parent motion) or in world
    space (`world_transport`, §4.3 literally). Frame 0 starts from the parent-carried rest orientation.
    """
    n_frames = len(a)
    hinge = _cross(a, b)  # (N, 4, 3), anatomical sign fixed (never re-signed)
    sin_bend = np.sqrt(_dot(hinge, hinge)[..., 0] / np.maximum(_dot(a, a) * _dot(b, b), _EPS)[..., 0])
    w = np.clip((sin_bend - _SIN_TRANSPORT) / (_SIN_HINGE - _SIN_TRANSPORT), 0.0, 1.0)  # (N, 4)

    o = _unit(offsets[_LIMB_C])  # (4, 3) rest bone directions ô
    h = _unit(_LIMB_AX - _dot(_LIMB_AX, o) * o)  # (4, 3) rest hinge axis ⟂ ô
    if world_transport:  # transport frame F = I
        d, m = _unit(a), hinge
        first = g_parent[0]  # (4, 3, 3)
    else:  # F = G_parent: directions in the parent's frame
        d, m = _unit(_tmatvec(g_parent, a)), _tmatvec(g_parent, hinge)
        first = np.broadcast_to(np.eye(3), (4, 3, 3))

    # Per-frame reference ⟂ d̂: cross with the coordinate axis least aligned with d̂ (|e × d̂| ≥ √(2/3)).
    r = _unit(_cross(np.eye(3)[np.argmin(np.abs(d), -1)], d))  # (N, 4, 3)
    # δ(t): r(t−1) carried by the swing d̂(t−1) → d̂(t) (Rodrigues), measured from r(t). δ(0): the rest hinge
    # carried by `first` and swung onto d̂(0).
    k = _cross(d[:-1], d[1:])  # (N−1, 4, 3)
    c = _dot(d[:-1], d[1:])  # (N−1, 4, 1)
    carried = c * r[:-1] + _cross(k, r[:-1]) + k * _dot(k, r[:-1]) / np.maximum(1.0 + c, _EPS)
    start = _matvec(swing(_matvec(first, o), d[0]) @ first, h)  # (4, 3)
    delta = _twist_angle(d, r, np.concatenate([start[None], carried]))  # (N, 4)
    psi = _twist_angle(d, r, m)  # (N, 4) hinge twist (ill-defined, and unused, where w = 0)

    beta = np.empty((n_frames, 4))
    for limb, (dk, pk, wk) in enumerate(zip(delta.T.tolist(), psi.T.tolist(), w.T.tolist(), strict=True)):
        prev, out = 0.0, beta[:, limb]
        for t in range(n_frames):
            prev += dk[t]
            wt = wk[t]
            if wt >= 1.0:
                prev = pk[t]
            elif wt > 0.0:
                prev += wt * _wrap(pk[t] - prev)
            out[t] = prev
    u = np.cos(beta)[..., None] * r + np.sin(beta)[..., None] * _cross(d, r)
    rot = frame(d, u) @ np.swapaxes(frame(o, h), -1, -2)  # (N, 4, 3, 3) in the transport frame
    return np.swapaxes(g_parent, -1, -2) @ rot if world_transport else rot


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

    Frame-based joints are solved directly in the parent's frame: with G_j = Frame(a, G_p·s)·Frame(O_c, s)ᵀ,
    L_j = G_pᵀG_j = Frame(G_pᵀa, s)·Frame(O_c, s)ᵀ, so only joints with children need their global rotation.
    """
    p = np.asarray(joints, dtype=np.float64)
    template = np.asarray(rest_offsets, dtype=np.float64)
    offsets = _fitted_offsets(p, template) if fit_triads else template.copy()
    offsets[0] = 0.0
    n_frames = len(p)
    bone = p[:, 1:] - p[:, _PARENTS[1:]]  # (N, 21, 3): bone[:, j − 1] = P_j − P_parent(j)
    # Frame(O_child, s)ᵀ for every Frame-solved joint, in _SOLVE order (one call).
    rest = np.swapaxes(frame(offsets[_SOLVE_C], _SOLVE_AX), -1, -2)  # (15, 3, 3)
    local = np.empty((n_frames, NUM_JOINTS, 3, 3))
    local[:, _LEAVES] = np.eye(3)  # 6. leaves: G = G_parent

    # 1. Pelvis and chest: Kabsch of the rest triads onto the data triads (one batched SVD).
    src = np.stack([offsets[list(c)] for _, c in _TRIADS])  # (2, 3, 3)
    dst = np.stack([bone[:, [c - 1 for c in cs]] for _, cs in _TRIADS], 1)  # (N, 2, 3, 3)
    g_root_chest = kabsch(src, dst)  # (N, 2, 3, 3)
    g0, g9 = g_root_chest[:, 0], g_root_chest[:, 1]
    local[:, 0] = g0

    # 2 + 5. Spine1 (pelvis +X), neck (chest +X), collars (chest +Z): parents 0, 9, 9, 9.
    gp = g_root_chest[:, [0, 1, 1, 1]]  # (N, 4, 3, 3)
    lvl1 = frame(_tmatvec(gp, bone[:, _LVL1_C - 1]), _LVL1_AX) @ rest[0:4]
    local[:, _LVL1_J] = lvl1
    g_lvl1 = gp @ lvl1  # globals of 3, 12, 13, 14
    # 2. Spine2 (spine1 +X); then the chest's local rotation.
    local[:, 6] = frame(_tmatvec(g_lvl1[:, 0], bone[:, 8]), _X) @ rest[4]
    g6 = g_lvl1[:, 0] @ local[:, 6]
    local[:, 9] = np.swapaxes(g6, -1, -2) @ g9

    # 3. Hips (parent pelvis) and shoulders (parents: collars).
    gp = np.stack([g0, g0, g_lvl1[:, 2], g_lvl1[:, 3]], 1)  # (N, 4, 3, 3)
    upper, lower = bone[:, _LIMB_C - 1], bone[:, _LIMB_G - 1]
    local[:, _LIMB_J] = _limb_roots(upper, lower, gp, offsets, world_transport)
    g_limb = gp @ local[:, _LIMB_J]

    # 4. Knees and elbows: secondary = the parent's carried hinge axis (the rest axis in the parent's frame).
    local[:, _LIMB_C] = frame(_tmatvec(g_limb, lower), _LIMB_AX) @ rest[5:9]
    g_knee = g_limb[:, :2] @ local[:, _LIMB_C[:2]]

    # 5. Ankles: secondary = knee-carried +X.
    local[:, _ANKLE_J] = frame(_tmatvec(g_knee, bone[:, _ANKLE_C - 1]), _X) @ rest[9:11]

    # 7. Root translation = pelvis.
    return IkResult(local, p[:, 0].copy(), offsets)
