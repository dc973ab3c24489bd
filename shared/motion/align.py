"""Ground-plane alignment of joint clips: the yaw + translation that best maps one clip onto another (Y-up)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class GroundTransform:
    """p ↦ rotation · p + translation, with `rotation` a rotation about the vertical (Y) axis."""

    rotation: np.ndarray  # (3, 3)
    translation: np.ndarray  # (3,)

    def apply(self, points: np.ndarray) -> np.ndarray:
        """Transform (..., 3) points."""
        return np.asarray(points, dtype=np.float64) @ self.rotation.T + self.translation


def yaw_matrix(angle: float) -> np.ndarray:
    """Rotation by `angle` radians about +Y (right-handed): +Z turns towards +X."""
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def fit_ground_transform(source: np.ndarray, target: np.ndarray) -> GroundTransform:
    """Least-squares yaw + translation taking `source` points onto `target` (both (..., 3), same shape, Y-up).

    Decoded HumanML3D motion starts at the origin facing +Z; this places it where a reference clip (e.g. the
    user's animation the features were read from) actually is, using the frames both share.
    """
    src = np.asarray(source, dtype=np.float64).reshape(-1, 3)
    dst = np.asarray(target, dtype=np.float64).reshape(-1, 3)
    if src.shape != dst.shape or len(src) == 0:
        raise ValueError(f"source {np.shape(source)} and target {np.shape(target)} must be equal, non-empty (..., 3)")
    src_mean, dst_mean = src.mean(0), dst.mean(0)
    a, b = src - src_mean, dst - dst_mean
    # Σ b·(R a) = cos θ Σ(aₓbₓ + a_z b_z) + sin θ Σ(a_z bₓ − aₓ b_z), maximised at θ = atan2(second, first).
    angle = np.arctan2(np.sum(a[:, 2] * b[:, 0] - a[:, 0] * b[:, 2]), np.sum(a[:, 0] * b[:, 0] + a[:, 2] * b[:, 2]))
    rotation = yaw_matrix(float(angle))
    return GroundTransform(rotation, dst_mean - rotation @ src_mean)
