"""The 263-dim HumanML3D feature codec: 22 joints (Y-up, metres, 20 fps) ⇄ features, with the dataset's quirks.

Follows HumanML3D `motion_representation.ipynb` (`process_file`, `recover_from_ric`) exactly, including the
documented quirks the released data contains: the IK heading uses the hip vector reversed, frame 0's heading
is forced to identity, the heading is Gaussian-smoothed (sigma 20, mode 'nearest'), and the root rotation
velocity is `arcsin` of the relative quaternion's y without forcing w >= 0 (sign flip at a ±180° crossing).
See HUMANML3D.md sections 1-3.
"""

from __future__ import annotations

from itertools import pairwise

import numpy as np

from .quaternion import (
    cont6d_to_matrix,
    cross,
    normalize,
    qbetween,
    qidentity,
    qinv,
    qmul,
    qrot,
    quat_to_cont6d,
    quat_to_matrix,
)
from .skeleton import (
    FACE_JOINTS,
    FOOT_LEFT,
    FOOT_RIGHT,
    KINEMATIC_CHAINS,
    LEFT_JOINTS,
    LOWER_LEG,
    NUM_JOINTS,
    PARENTS,
    RAW_OFFSETS,
    RIGHT_JOINTS,
    TARGET_OFFSETS,
    leg_length,
)

FEATURE_DIM = 263
FPS = 20.0
FEET_THRESHOLD = 0.002  # squared displacement per frame (m²): 0.894 m/s at 20 fps
HEADING_SIGMA = 20.0  # frames


class FeatureLayout:
    """Slices of the 263-dim feature row (HUMANML3D.md section 1.1)."""

    root_rot_velocity = slice(0, 1)
    root_linear_velocity = slice(1, 3)
    root_height = slice(3, 4)
    ric = slice(4, 67)
    rot6d = slice(67, 193)
    local_velocity = slice(193, 259)
    foot_contacts = slice(259, 263)

    BLOCK_NAMES = (
        "root_rot_velocity",
        "root_linear_velocity",
        "root_height",
        "ric",
        "rot6d",
        "local_velocity",
        "foot_contacts",
    )

    def blocks(self) -> dict[str, slice]:
        """Block name -> slice, in feature order."""
        return {name: getattr(self, name) for name in self.BLOCK_NAMES}


LAYOUT = FeatureLayout()
_UP = np.array([0.0, 1.0, 0.0])


def _chain_previous() -> list[int]:
    """For joints 1..21: index into [root, swing_1..swing_21] of the rotation preceding it in its chain."""
    previous = [0] * NUM_JOINTS
    for chain in KINEMATIC_CHAINS:
        for position, child in enumerate(chain[1:]):
            previous[child] = 0 if position == 0 else chain[position]
    return previous[1:]


_CHAIN_PREVIOUS = _chain_previous()


def _ancestry() -> np.ndarray:
    """(22, 21) matrix: [j, k-1] = 1 when bone k (parent(k) -> k) lies on the path from the root to joint j."""
    ancestry = np.zeros((NUM_JOINTS, NUM_JOINTS - 1))
    for j in range(1, NUM_JOINTS):
        k = j
        while k > 0:
            ancestry[j, k - 1] = 1.0
            k = PARENTS[k]
    return ancestry


_ANCESTRY = _ancestry()
_FORWARD = np.array([0.0, 0.0, 1.0])


class MotionShapeError(ValueError):
    """An array does not have the shape or values a motion function needs."""


def check_joints(joints: np.ndarray, name: str = "joints", min_frames: int = 2) -> np.ndarray:
    """Validate (T, 22, 3) finite joints with T >= min_frames; returns float64."""
    joints = np.asarray(joints)
    if joints.ndim != 3 or joints.shape[1:] != (NUM_JOINTS, 3):
        raise MotionShapeError(f"{name}: expected shape (T, {NUM_JOINTS}, 3), got {joints.shape}")
    if joints.shape[0] < min_frames:
        raise MotionShapeError(f"{name}: needs at least {min_frames} frames, got {joints.shape[0]}")
    if not np.all(np.isfinite(joints)):
        raise MotionShapeError(f"{name}: contains NaN or infinite values")
    return joints.astype(np.float64)


def check_features(features: np.ndarray, name: str = "features") -> np.ndarray:
    """Validate (N, 263) finite features with N >= 1; returns float64."""
    features = np.asarray(features)
    if features.ndim != 2 or features.shape[1] != FEATURE_DIM:
        raise MotionShapeError(f"{name}: expected shape (N, {FEATURE_DIM}), got {features.shape}")
    if features.shape[0] < 1:
        raise MotionShapeError(f"{name}: has no frames")
    if not np.all(np.isfinite(features)):
        raise MotionShapeError(f"{name}: contains NaN or infinite values")
    return features.astype(np.float64)


def gaussian_smooth(x: np.ndarray, sigma: float, axis: int = 0, truncate: float = 4.0) -> np.ndarray:
    """1-D Gaussian filter along `axis` with edge ('nearest') extension; equals scipy's gaussian_filter1d."""
    radius = int(truncate * sigma + 0.5)
    offsets = np.arange(-radius, radius + 1)
    kernel = np.exp(-0.5 * (offsets / sigma) ** 2)
    kernel /= kernel.sum()
    moved = np.moveaxis(x, axis, 0)
    padded = np.concatenate([np.repeat(moved[:1], radius, 0), moved, np.repeat(moved[-1:], radius, 0)], 0)
    # (T + 2r, ...) -> windows (T, ..., 2r + 1) weighted by the (symmetric) kernel.
    windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * radius + 1, axis=0)
    return np.moveaxis(windows @ kernel, 0, axis)


def retarget_to_target_skeleton(joints: np.ndarray, target_offsets: np.ndarray = TARGET_OFFSETS) -> np.ndarray:
    """HumanML3D `uniform_skeleton`: every bone keeps its direction but takes the target length; the root
    trajectory is scaled by the ratio of the leg lengths (`skeleton.leg_length`: right hip → knee → ankle) on frame 0.

    The original does this with shortest-arc IK + FK; rotating the raw direction onto the bone direction
    and scaling by the target length is the same map, without the antiparallel singularity.
    """
    target_lengths = np.linalg.norm(target_offsets, axis=-1)  # (22,)
    bones = joints[:, 1:] - joints[:, list(PARENTS[1:])]  # (T, 21, 3)
    scale = target_lengths[list(LOWER_LEG)].sum() / leg_length(joints[0])
    scaled_bones = normalize(bones) * target_lengths[1:, None]
    # Joint j = root + the sum of the bones on the path root -> j.
    return joints[:, :1] * scale + _ANCESTRY @ scaled_bones


def _facing(joints: np.ndarray, hips_reversed: bool) -> np.ndarray:
    """Horizontal forward direction (..., 3) from hips and shoulders of (..., 22, 3) joints (unnormalised)."""
    r_hip, l_hip, r_shoulder, l_shoulder = FACE_JOINTS
    hips = joints[..., r_hip, :] - joints[..., l_hip, :]
    if hips_reversed:  # HumanML3D inverse_kinematics_np unpacks face_joint_indx in the wrong order.
        hips = -hips
    across = normalize(hips + joints[..., r_shoulder, :] - joints[..., l_shoulder, :])
    return cross(np.broadcast_to(_UP, across.shape), across)


def canonicalize(joints: np.ndarray) -> np.ndarray:
    """Steps 1-4 of `process_file`: target skeleton, floor at y=0, frame-0 pelvis at the XZ origin,
    frame 0 facing +Z.  Returns HumanML3D `global_positions` (T, 22, 3)."""
    positions = retarget_to_target_skeleton(joints)
    positions[..., 1] -= positions[..., 1].min()
    positions -= positions[0, 0] * np.array([1.0, 0.0, 1.0])
    forward = normalize(_facing(positions[0], hips_reversed=False))
    return positions @ quat_to_matrix(qbetween(forward, _FORWARD)).T


def heading_ik(positions: np.ndarray, smooth: bool = True) -> np.ndarray:
    """HumanML3D `inverse_kinematics_np`: (T, 22, 4) child-indexed swing quaternions from the raw offsets.

    Index 0 holds the root rotation: the inverse (world->local) smoothed heading, identity at frame 0.
    """
    forward = _facing(positions, hips_reversed=True)
    if smooth:
        forward = gaussian_smooth(forward, HEADING_SIGMA, axis=0)
    root = qbetween(normalize(forward), np.broadcast_to(_FORWARD, forward.shape))
    root[0] = qidentity()
    # Every bone's global rotation is the swing raw_dir -> bone_dir; the stored local rotation is relative to
    # the previous rotation in its kinematic chain, and each chain starts from the root rotation (so the arm
    # chains ignore the spine, issue #119).
    bones = normalize(positions[:, 1:] - positions[:, list(PARENTS[1:])])  # (T, 21, 3)
    swings = qbetween(np.broadcast_to(RAW_OFFSETS[1:], bones.shape), bones)  # (T, 22-1, 4)
    previous = np.concatenate([root[:, None], swings], axis=1)[:, _CHAIN_PREVIOUS]  # (T, 21, 4)
    quats = np.concatenate([root[:, None], qmul(qinv(previous), swings)], axis=1)
    return quats


def foot_contacts(positions: np.ndarray, threshold: float = FEET_THRESHOLD) -> np.ndarray:
    """(T-1, 4) contact flags [l_ankle, l_foot, r_ankle, r_foot]: squared step of that joint < threshold."""
    feet = list(FOOT_LEFT) + list(FOOT_RIGHT)
    step = ((positions[1:, feet] - positions[:-1, feet]) ** 2).sum(-1)
    return (step < threshold).astype(np.float64)


def joints_to_features(joints: np.ndarray, feet_threshold: float = FEET_THRESHOLD) -> np.ndarray:
    """HumanML3D `process_file`: (T, 22, 3) joints, Y-up, 20 fps, any scale -> (T-1, 263) float32."""
    joints = check_joints(joints)
    positions = canonicalize(joints)
    contacts = foot_contacts(positions, feet_threshold)
    quats = heading_ik(positions, smooth=True)
    r_rot = quats[:, 0]  # (T, 4) world -> heading frame
    velocity = qrot(r_rot[1:], positions[1:, 0] - positions[:-1, 0])
    # Relative heading t -> t+1; arcsin of y without forcing w >= 0 (the dataset's ±180° quirk).
    rot_velocity = np.arcsin(np.clip(qmul(r_rot[1:], qinv(r_rot[:-1]))[:, 2], -1.0, 1.0))
    rifke = positions - positions[:, :1] * np.array([1.0, 0.0, 1.0])
    to_heading = np.swapaxes(quat_to_matrix(r_rot), -1, -2)  # (T, 3, 3) transposed: row vectors @ Rᵀ
    rifke = rifke @ to_heading
    local_velocity = (positions[1:] - positions[:-1]) @ to_heading[:-1]
    n = len(positions) - 1
    features = np.concatenate(
        [
            rot_velocity[:, None],
            velocity[:, [0, 2]],
            rifke[:-1, 0, 1:2],
            rifke[:-1, 1:].reshape(n, -1),
            quat_to_cont6d(quats[:-1, 1:]).reshape(n, -1),
            local_velocity.reshape(n, -1),
            contacts,
        ],
        axis=-1,
    )
    return features.astype(np.float32)


def recover_root(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """HumanML3D `recover_root_rot_pos`: per-row root rotation (N, 4) (world->heading) and position (N, 3)."""
    features = check_features(features)
    half_yaw = np.zeros(len(features))
    half_yaw[1:] = np.cumsum(features[:-1, 0])
    r_rot = np.zeros((len(features), 4))
    r_rot[:, 0] = np.cos(half_yaw)
    r_rot[:, 2] = np.sin(half_yaw)
    step = np.zeros((len(features), 3))
    step[1:, [0, 2]] = features[:-1, 1:3]
    r_pos = np.cumsum(qrot(qinv(r_rot), step), axis=0)
    r_pos[:, 1] = features[:, 3]
    return r_rot, r_pos


def features_to_joints(features: np.ndarray) -> np.ndarray:
    """HumanML3D `recover_from_ric`: (N, 263) features -> (N, 22, 3) joints (Y-up, metres)."""
    features = check_features(features)
    r_rot, r_pos = recover_root(features)
    ric = features[:, LAYOUT.ric].reshape(-1, NUM_JOINTS - 1, 3)
    ric = ric @ quat_to_matrix(r_rot)  # row vectors @ R = R⁻¹ applied: heading frame -> world
    ric[..., [0, 2]] += r_pos[:, None, [0, 2]]
    return np.concatenate([r_pos[:, None], ric], axis=1)


def features_to_joints_from_rot6d(features: np.ndarray, offsets: np.ndarray = TARGET_OFFSETS) -> np.ndarray:
    """HumanML3D `recover_from_rot`: FK of the rot6d block with the target offsets (a diagnostic only:
    for generated features ric and rot6d are predicted independently)."""
    features = check_features(features)
    r_rot, r_pos = recover_root(features)
    local = cont6d_to_matrix(features[:, LAYOUT.rot6d].reshape(-1, NUM_JOINTS - 1, 6))  # (N, 21, 3, 3)
    root = quat_to_matrix(r_rot)  # the IK root: world -> heading, (N, 3, 3)
    joints = np.zeros((len(features), NUM_JOINTS, 3))
    joints[:, 0] = r_pos
    for chain in KINEMATIC_CHAINS:
        rotation = root
        for parent, child in pairwise(chain):
            rotation = rotation @ local[:, child - 1]
            joints[:, child] = joints[:, parent] + rotation @ offsets[child]
    return joints


def mirror_joints(joints: np.ndarray) -> np.ndarray:
    """HumanML3D mirror augmentation: negate x and swap the left/right chains."""
    mirrored = joints.copy()
    mirrored[..., 0] *= -1.0
    mirrored[..., LEFT_JOINTS + RIGHT_JOINTS, :] = mirrored[..., RIGHT_JOINTS + LEFT_JOINTS, :]
    return mirrored
