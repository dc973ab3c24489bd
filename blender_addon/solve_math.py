"""Pure numpy for the solve against the evaluated rig: rotation vectors, each joint's error as measured on the bones
it is read from, the control corrections from a measured transmission matrix, IK bend-plane angles (no bpy)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ._shared import ik, quaternion, skeleton

CARRIERS = tuple(j for j in range(skeleton.NUM_JOINTS) if len(skeleton.children_of(j)) > 1)  # pelvis, spine3
ONLY_CHILD = {j: kids[0] for j in range(skeleton.NUM_JOINTS) if len(kids := skeleton.children_of(j)) == 1}


def orthonormal(m: np.ndarray) -> np.ndarray:
    """(..., 3, 3) the nearest rotation (polar factor): bone matrices may carry scale or shear."""
    u, _, vt = np.linalg.svd(np.asarray(m, dtype=np.float64)[..., :3, :3])
    d = np.sign(np.linalg.det(u @ vt))
    return u @ (np.eye(3) * np.stack([np.ones_like(d), np.ones_like(d), d], -1)[..., None, :]) @ vt


def log_rotation(m: np.ndarray) -> np.ndarray:
    """(..., 3) rotation vectors (axis × angle, |angle| ≤ π) of rotation matrices (..., 3, 3)."""
    q = quaternion.matrix_to_quat(np.asarray(m, dtype=np.float64))
    q = q * np.where(q[..., :1] < 0.0, -1.0, 1.0)
    s = np.linalg.norm(q[..., 1:], axis=-1, keepdims=True)
    angle = 2.0 * np.arctan2(s, q[..., :1])
    return np.where(s > 1e-12, q[..., 1:] / np.maximum(s, 1e-12) * angle, 2.0 * q[..., 1:])


def exp_rotation(v: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotation matrices of rotation vectors (..., 3) (Rodrigues)."""
    v = np.asarray(v, dtype=np.float64)
    angle = np.linalg.norm(v, axis=-1, keepdims=True)
    axis = v / np.maximum(angle, 1e-15)
    return quaternion.axis_angle_to_matrix(axis, angle[..., 0])


def joint_errors(
    heads: np.ndarray, frames: np.ndarray, target_heads: np.ndarray, target_frames: np.ndarray, joints: Sequence[int]
) -> np.ndarray:
    """(len(joints), 3) world rotation vectors that would turn each joint's measured bone onto the target.

    `heads` (22, 3) / `frames` (22, 3, 3): where each joint is read (its bone's head) and that bone's rotation, as the
    rig evaluates them; `target_*` the same for the target. The pelvis and chest (several children) are fitted on
    their children (Kabsch); a joint with one child turns its bone onto the target orientation, then swings so that
    the segment to the child points along the target's (what a bone read as a joint position must satisfy, whatever
    the rig's bone does between the two heads); a leaf turns its bone onto the target orientation.
    """
    rows = np.asarray(joints, dtype=int)
    turns = target_frames[rows] @ np.swapaxes(frames[rows], -1, -2)  # (J, 3, 3) orientation onto target
    single = np.array([j in ONLY_CHILD for j in rows], dtype=bool)
    if single.any():
        parents = rows[single]
        kids = np.array([ONLY_CHILD[j] for j in parents])
        measured = np.einsum("jab,jb->ja", turns[single], heads[kids] - heads[parents])
        wanted = target_heads[kids] - target_heads[parents]
        unit = lambda v: v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)  # noqa: E731
        turns[single] = ik.swing(unit(measured), unit(wanted)) @ turns[single]
    carried = np.array([j in CARRIERS for j in rows], dtype=bool)
    if carried.any():
        for row in np.flatnonzero(carried):
            j = rows[row]
            children = list(skeleton.children_of(j))
            turns[row] = ik.kabsch(heads[children] - heads[j], target_heads[children] - target_heads[j])
    return log_rotation(turns)


def correction_matrix(transmission: np.ndarray, weights: np.ndarray | None = None, damping: float = 1e-3) -> np.ndarray:
    """(D, D) S with δ = S·e: the control turns δ (rows: controls) that best produce the joint turns e (rows:
    the joints the controls are keyed for), given `transmission` T (D, D): how far joint r turns per unit turn of
    control a (measured on the rig). Weighted damped least squares: where the rig cannot turn two joints apart
    (Rigify's hip bones carry the lowest spine bone's own turn), the heavier joint wins, and a joint no control moves
    asks for nothing."""
    t = np.asarray(transmission, dtype=np.float64)
    w = np.ones(len(t)) if weights is None else np.asarray(weights, dtype=np.float64)
    tw = t * (w * w)[:, None]
    return np.linalg.solve(t.T @ tw + damping * np.eye(len(t)), tw.T)


def direction_errors_deg(heads: np.ndarray, target_heads: np.ndarray, joints: Sequence[int]) -> np.ndarray:
    """(len(joints),) degrees between each joint's measured segment to its only child and the target's (0 for
    joints without exactly one child): what a bone read as a joint position shows."""
    out = np.zeros(len(joints))
    for row, j in enumerate(joints):
        if (k := ONLY_CHILD.get(j)) is not None:
            u, v = heads[k] - heads[j], target_heads[k] - target_heads[j]
            cos = u @ v / max(float(np.linalg.norm(u) * np.linalg.norm(v)), 1e-12)
            out[row] = np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))
    return out


def turned_basis(basis: np.ndarray, pose: np.ndarray, turn: np.ndarray) -> np.ndarray:
    """(..., 3, 3) a bone's basis rotation after its evaluated pose rotation `pose` turns by the world rotation
    `turn` (its parent frame fixed): B' = B·Pᵀ·turn·P."""
    return basis @ np.swapaxes(pose, -1, -2) @ turn @ pose


def bend_angle(base: np.ndarray, middle: np.ndarray, target: Sequence[np.ndarray] | np.ndarray) -> float:
    """Signed angle (radians) about the target's base → end axis from the measured bend (`middle` − `base`) to the
    target's (`target` = (base, middle, end) positions), both taken perpendicular to that axis."""
    t_base, t_middle, t_end = (np.asarray(p, dtype=np.float64) for p in target)
    axis = t_end - t_base
    axis /= max(float(np.linalg.norm(axis)), 1e-12)
    measured = middle - base
    wanted = t_middle - t_base
    measured -= axis * (measured @ axis)
    wanted -= axis * (wanted @ axis)
    if np.linalg.norm(measured) < 1e-9 or np.linalg.norm(wanted) < 1e-9:
        return 0.0  # a straight limb has no bend plane
    return float(np.arctan2(np.cross(measured, wanted) @ axis, measured @ wanted))


def chain_length(heads: np.ndarray, joints: Sequence[int]) -> float:
    """Length along a chain of joints (base → middle → end) of (22, 3) joint positions."""
    points = np.asarray(heads, dtype=np.float64)[list(joints)]
    return float(np.linalg.norm(np.diff(points, axis=0), axis=-1).sum())
