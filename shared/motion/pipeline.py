"""End-to-end motion conversions used by the CLI and the add-on: joints at any rate ⇄ 20 fps features ⇄ rotations."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .humanml3d import FPS, MotionShapeError, check_features, check_joints, features_to_joints, joints_to_features
from .ik import solve_local_rotations
from .resample import resample_linear, resampled_frame_count
from .skeleton import TPOSE_OFFSETS


def encode_joints(joints: np.ndarray, fps: float) -> np.ndarray:
    """(T, 22, 3) joints (Y-up, metres) sampled at `fps` -> (K-1, 263) float32 features at 20 fps."""
    joints = check_joints(joints)
    if resampled_frame_count(len(joints), fps, FPS) < 2:
        raise MotionShapeError(f"joints: {len(joints)} frames at {fps:g} fps is shorter than two frames at 20 fps")
    return joints_to_features(resample_linear(joints, fps, FPS))


@dataclass(frozen=True)
class DecodedMotion:
    """Features decoded for a rig: joints, BVH-style local rotations and root translation, at `fps`."""

    fps: float
    joints: np.ndarray  # (K, 22, 3) Y-up metres
    local_rotations: np.ndarray  # (K, 22, 3, 3) parent-relative, T-pose rest
    root_positions: np.ndarray  # (K, 3)
    rest_offsets: np.ndarray  # (22, 3) the rest skeleton the rotations refer to


def decode_features(features: np.ndarray, fps: float = FPS, rest_offsets: np.ndarray = TPOSE_OFFSETS) -> DecodedMotion:
    """(N, 263) features at 20 fps -> joints resampled to `fps` and per-bone rotations.

    The rest skeleton is `rest_offsets` (a T-pose) with the pelvis/chest triads and bone lengths fitted to the
    motion, so forward kinematics of the rotations lands exactly on the decoded joints.
    """
    joints = resample_linear(features_to_joints(check_features(features)), FPS, fps)
    solved = solve_local_rotations(joints, rest_offsets, fit_triads=True)
    return DecodedMotion(fps, joints, solved.local_rotations, solved.root_positions, solved.rest_offsets)
