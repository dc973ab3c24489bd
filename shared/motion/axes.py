"""HumanML3D (Y-up, facing +Z) ⇄ Blender (Z-up, facing −Y): a +90° rotation about X, never a plain axis swap."""

from __future__ import annotations

import numpy as np

# (x, y, z) in HumanML3D axes -> (x, -z, y) in Blender axes; det = +1 (a rotation, not a mirror).
YUP_TO_ZUP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
ZUP_TO_YUP = YUP_TO_ZUP.T


def yup_to_zup(points: np.ndarray) -> np.ndarray:
    """Points (..., 3) from HumanML3D axes to Blender axes: (x, y, z) -> (x, -z, y)."""
    return points @ YUP_TO_ZUP.T


def zup_to_yup(points: np.ndarray) -> np.ndarray:
    """Points (..., 3) from Blender axes to HumanML3D axes: (x, y, z) -> (x, z, -y)."""
    return points @ ZUP_TO_YUP.T


def rotation_yup_to_zup(matrices: np.ndarray) -> np.ndarray:
    """Rotation matrices (..., 3, 3) expressed in Blender axes: C·R·Cᵀ."""
    return YUP_TO_ZUP @ matrices @ ZUP_TO_YUP


def rotation_zup_to_yup(matrices: np.ndarray) -> np.ndarray:
    """Rotation matrices (..., 3, 3) expressed in HumanML3D axes: Cᵀ·R·C."""
    return ZUP_TO_YUP @ matrices @ YUP_TO_ZUP


def quat_yup_to_zup(quats: np.ndarray) -> np.ndarray:
    """Quaternions (..., 4) (w, x, y, z) in Blender axes: (w, x, -z, y)."""
    return np.stack([quats[..., 0], quats[..., 1], -quats[..., 3], quats[..., 2]], axis=-1)


def quat_zup_to_yup(quats: np.ndarray) -> np.ndarray:
    """Quaternions (..., 4) (w, x, y, z) in HumanML3D axes: (w, x, z, -y)."""
    return np.stack([quats[..., 0], quats[..., 1], quats[..., 3], -quats[..., 2]], axis=-1)
