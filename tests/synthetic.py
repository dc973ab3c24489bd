"""Synthetic test motions built by hand from HumanML3D's reference pose (no code under test involved)."""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from shared.motion.skeleton import REFERENCE_POSE_000021

FPS = 20.0


def yaw_matrix(radians: float | np.ndarray) -> np.ndarray:
    """Rotation(s) about +Y by the given angle (positive = counter-clockwise seen from above = turn left)."""
    return Rotation.from_euler("y", np.asarray(radians)[..., None]).as_matrix()


def canonical_pose() -> np.ndarray:
    """The 000021 pose facing +Z (hips + shoulders rule), pelvis over the XZ origin, lowest joint on y = 0."""
    pose = REFERENCE_POSE_000021.copy()
    across = (pose[2] - pose[1]) + (pose[17] - pose[16])  # right minus left
    forward = np.cross([0.0, 1.0, 0.0], across)
    heading = np.arctan2(forward[0], forward[2])  # angle of forward from +Z towards +X
    pose = pose @ yaw_matrix(-heading).T
    pose -= pose[0] * np.array([1.0, 0.0, 1.0])
    pose[:, 1] -= pose[:, 1].min()
    return pose


def rigid_path(headings: np.ndarray, pelvis_xz: np.ndarray) -> np.ndarray:
    """The canonical pose carried rigidly along a path: (T,) yaw angles and (T, 2) pelvis x, z -> (T, 22, 3)."""
    pose = canonical_pose()
    joints = np.einsum("tij,kj->tki", yaw_matrix(headings), pose)
    joints[..., 0] += pelvis_xz[:, None, 0]
    joints[..., 2] += pelvis_xz[:, None, 1]
    return joints


def circle_walk(frames: int = 200, radius: float = 2.0, degrees_per_second: float = 36.0, left: bool = True):
    """Rigid pose walking a circle, facing along the tangent; a left turn is counter-clockwise from above."""
    sign = 1.0 if left else -1.0
    heading = sign * np.deg2rad(degrees_per_second) * np.arange(frames) / FPS
    # Centre of the circle is on the walker's left (+X at frame 0) for a left turn.
    pelvis_xz = sign * radius * np.stack([1 - np.cos(heading), np.sin(heading)], -1)
    return rigid_path(heading, pelvis_xz)


def straight_walk(frames: int = 100, speed: float = 1.2) -> np.ndarray:
    """Rigid pose moving along +Z (the way it faces) at `speed` m/s."""
    z = speed * np.arange(frames) / FPS
    return rigid_path(np.zeros(frames), np.stack([np.zeros(frames), z], -1))


def rest_slide_rest(speed: float, frames_each: int = 20) -> np.ndarray:
    """Pose at rest, then sliding forward at `speed` m/s, then at rest again."""
    steps = np.concatenate([np.zeros(frames_each), np.full(frames_each, speed / FPS), np.zeros(frames_each - 1)])
    z = np.concatenate([[0.0], np.cumsum(steps)])
    return rigid_path(np.zeros(len(z)), np.stack([np.zeros(len(z)), z], -1))
