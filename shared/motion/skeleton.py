"""SMPL-22 skeleton constants: joint names, parents, kinematic chains, HumanML3D offsets and a T-pose rest."""

from __future__ import annotations

from itertools import pairwise

import numpy as np

NUM_JOINTS = 22

JOINT_NAMES: tuple[str, ...] = (
    "pelvis",
    "left_hip",
    "right_hip",
    "spine1",
    "left_knee",
    "right_knee",
    "spine2",
    "left_ankle",
    "right_ankle",
    "spine3",
    "left_foot",
    "right_foot",
    "neck",
    "left_collar",
    "right_collar",
    "head",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
)

# HumanML3D `t2m_kinematic_chain`: right leg, left leg, spine->head, right arm, left arm.
KINEMATIC_CHAINS: tuple[tuple[int, ...], ...] = (
    (0, 2, 5, 8, 11),
    (0, 1, 4, 7, 10),
    (0, 3, 6, 9, 12, 15),
    (9, 14, 17, 19, 21),
    (9, 13, 16, 18, 20),
)


def _parents_from_chains(chains: tuple[tuple[int, ...], ...]) -> tuple[int, ...]:
    parents = [-1] * NUM_JOINTS
    for chain in chains:
        for parent, child in pairwise(chain):
            parents[child] = parent
    return tuple(parents)


PARENTS: tuple[int, ...] = _parents_from_chains(KINEMATIC_CHAINS)

# Left/right pairs used for mirroring (HumanML3D mirror augmentation).
LEFT_JOINTS: tuple[int, ...] = (1, 4, 7, 10, 13, 16, 18, 20)
RIGHT_JOINTS: tuple[int, ...] = (2, 5, 8, 11, 14, 17, 19, 21)

# Feature-extraction indices (HumanML3D paramUtil / motion_representation).
FOOT_LEFT: tuple[int, int] = (7, 10)  # left ankle, left foot (ball)
FOOT_RIGHT: tuple[int, int] = (8, 11)
FACE_JOINTS: tuple[int, int, int, int] = (2, 1, 17, 16)  # r_hip, l_hip, r_shoulder, l_shoulder
LOWER_LEG: tuple[int, int] = (5, 8)  # right knee, right ankle: bones whose lengths set the retarget scale

# `t2m_raw_offsets`: unit direction of each bone (parent->joint) in the IK's "arms down" reference pose.
RAW_OFFSETS = np.array(
    [
        [0, 0, 0],
        [1, 0, 0],
        [-1, 0, 0],
        [0, 1, 0],
        [0, -1, 0],
        [0, -1, 0],
        [0, 1, 0],
        [0, -1, 0],
        [0, -1, 0],
        [0, 1, 0],
        [0, 0, 1],
        [0, 0, 1],
        [0, 1, 0],
        [1, 0, 0],
        [-1, 0, 0],
        [0, 0, 1],
        [0, -1, 0],
        [0, -1, 0],
        [0, -1, 0],
        [0, -1, 0],
        [0, -1, 0],
        [0, -1, 0],
    ],
    dtype=np.float64,
)

# First frame of HumanML3D's reference skeleton (clip 000021, after the axis fix), metres, Y-up.
# HumanML3D measures every target bone length on this pose (HUMANML3D.md section 3.2).
REFERENCE_POSE_000021 = np.array(
    [
        [-0.032779, 0.984588, 0.822034],
        [-0.050780, 0.899808, 0.766244],
        [-0.029624, 0.893255, 0.883047],
        [-0.082739, 1.106291, 0.823648],
        [-0.046440, 0.508648, 0.722490],
        [-0.050532, 0.506023, 0.926192],
        [-0.056224, 1.246772, 0.815552],
        [-0.121195, 0.084467, 0.760967],
        [-0.105206, 0.085561, 0.888856],
        [-0.052203, 1.303977, 0.817012],
        [-0.000195, 0.028704, 0.707976],
        [0.029136, 0.027200, 0.918393],
        [-0.069757, 1.522566, 0.822426],
        [-0.070169, 1.417797, 0.742013],
        [-0.058984, 1.423484, 0.895947],
        [-0.001596, 1.591361, 0.787234],
        [-0.103709, 1.401600, 0.615779],
        [-0.055603, 1.421464, 1.018868],
        [-0.134655, 1.146743, 0.608241],
        [-0.097783, 1.164648, 1.057385],
        [-0.054064, 0.894858, 0.579583],
        [-0.009183, 0.914748, 1.107716],
    ],
    dtype=np.float64,
)


def bone_lengths(joints: np.ndarray) -> np.ndarray:
    """Length of every bone parent(j)->j for j >= 1 of (..., 22, 3) joints; (..., 22) with 0 at the root."""
    parents = np.array(PARENTS[1:])
    lengths = np.zeros(joints.shape[:-1], dtype=np.float64)
    lengths[..., 1:] = np.linalg.norm(joints[..., 1:, :] - joints[..., parents, :], axis=-1)
    return lengths


def leg_length(joints: np.ndarray) -> np.ndarray:
    """The leg length of (..., 22, 3) joints, (...): right hip → knee → ankle, the bones ending at `LOWER_LEG`.

    HumanML3D's convention (`uniform_skeleton` scales the root trajectory by the ratio of these lengths): the CLI's
    encoder and the add-on's placement and read-back all scale root motion by it, so one motion travels alike on
    every path.
    """
    return bone_lengths(joints)[..., list(LOWER_LEG)].sum(-1)


def offsets_from_pose(pose: np.ndarray) -> np.ndarray:
    """HumanML3D `get_offsets_joints`: bone length of a (22, 3) pose times the raw direction, (22, 3)."""
    return bone_lengths(pose)[:, None] * RAW_OFFSETS


# Target offsets every HumanML3D clip is retargeted to: 000021's lengths along the raw directions.
TARGET_OFFSETS = offsets_from_pose(REFERENCE_POSE_000021)

# T-pose rest skeleton for rotations/BVH (HUMANML3D.md section 4.3): parent-relative joint offsets,
# Y-up, facing +Z, metres; realistic directions scaled to the HumanML3D target lengths.
TPOSE_OFFSETS = np.array(
    [
        [0.0, 0.0, 0.0],
        [0.0623, -0.0819, -0.0061],
        [-0.0657, -0.0879, -0.0042],
        [-0.0030, 0.1278, -0.0313],
        [0.0358, -0.3920, -0.0047],
        [-0.0388, -0.3881, -0.0090],
        [0.0058, 0.1431, 0.0012],
        [-0.0147, -0.4296, -0.0472],
        [0.0167, -0.4229, -0.0449],
        [0.0014, 0.0517, 0.0248],
        [0.0281, -0.0596, 0.1274],
        [-0.0281, -0.0534, 0.1367],
        [-0.0028, 0.2151, -0.0431],
        [0.0728, 0.1123, -0.0315],
        [-0.0785, 0.1141, -0.0371],
        [0.0064, 0.0807, 0.0638],
        [0.1243, 0.0416, -0.0121],
        [-0.1160, 0.0393, -0.0110],
        [0.2551, -0.0126, -0.0270],
        [-0.2618, -0.0138, -0.0221],
        [0.2658, 0.0096, -0.0012],
        [-0.2697, 0.0082, -0.0059],
    ],
    dtype=np.float64,
)

# Names of the joints in the 22-joint BVH we write (MoMask / HumanIK naming), indexed by SMPL joint.
BVH_JOINT_NAMES: tuple[str, ...] = (
    "Hips",
    "LeftUpLeg",
    "RightUpLeg",
    "Spine",
    "LeftLeg",
    "RightLeg",
    "Spine1",
    "LeftFoot",
    "RightFoot",
    "Spine2",
    "LeftToe",
    "RightToe",
    "Neck",
    "LeftShoulder",
    "RightShoulder",
    "Head",
    "LeftArm",
    "RightArm",
    "LeftForeArm",
    "RightForeArm",
    "LeftHand",
    "RightHand",
)


def children_of(joint: int) -> tuple[int, ...]:
    """SMPL indices whose parent is `joint`, in index order."""
    return tuple(j for j, p in enumerate(PARENTS) if p == joint)


def depth_first_order() -> tuple[int, ...]:
    """Joints in depth-first order, children in SMPL-index order (the BVH motion-line order)."""
    order: list[int] = []

    def visit(j: int) -> None:
        order.append(j)
        for c in children_of(j):
            visit(c)

    visit(0)
    return tuple(order)


def tpose_joints(offsets: np.ndarray = TPOSE_OFFSETS) -> np.ndarray:
    """(22, 3) rest joint positions (Y-up, metres): `offsets` accumulated from the pelvis at the origin."""
    joints = np.zeros((NUM_JOINTS, 3))
    for j in depth_first_order()[1:]:
        joints[j] = joints[PARENTS[j]] + offsets[j]
    return joints
