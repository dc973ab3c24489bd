"""The retargeting figures of a motion written onto a rig, computed in plain numpy from what Blender evaluated (no
add-on code): segment directions, contact-foot heights and sliding, travel, and the read-back against the source."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from shared.motion.humanml3d import features_to_joints
from shared.motion.skeleton import TPOSE_OFFSETS, children_of

SINGLE = [j for j in range(22) if len(children_of(j)) == 1]  # joints with one child: their segment is a bone
CHILD = {j: children_of(j)[0] for j in SINGLE}
FEET = [7, 10, 8, 11]  # in the order of the contact labels (features 259-262): l_ankle, l_foot, r_ankle, r_foot
FPS = 20.0


def smpl_leg() -> float:
    """SMPL's hip → knee → ankle length (the T-pose template's HumanML3D lengths)."""
    return float(np.linalg.norm(TPOSE_OFFSETS[4]) + np.linalg.norm(TPOSE_OFFSETS[7]))


def leg_scale(rest: np.ndarray) -> float:
    """A rig's leg length over SMPL's from its (22, 3) rest joints: mean of both legs' hip → knee → ankle."""
    legs = [np.linalg.norm(rest[k] - rest[h]) + np.linalg.norm(rest[a] - rest[k]) for h, k, a in ((1, 4, 7), (2, 5, 8))]
    return float(np.mean(legs)) / smpl_leg()


def _angles(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    cos = (a * b).sum(-1) / np.maximum(np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1), 1e-12)
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def _path(root: np.ndarray) -> float:
    return float(np.linalg.norm(np.diff(root[:, [0, 2]], axis=0), axis=-1).sum())


@dataclass(frozen=True)
class Figures:
    """One motion on one rig, against the source scaled by the rig's leg length."""

    direction_mean: float  # degrees, over every single-child segment and frame
    direction_max: float
    foot_height_max: float  # metres: contact feet's height error
    sliding: float  # metres / second: mean extra horizontal speed of contact feet
    travel: float  # pelvis path length / the scaled source's

    def row(self) -> str:
        return (
            f"dir {self.direction_mean:.2f}/{self.direction_max:.2f} deg, feet {self.foot_height_max * 100:.2f} cm, "
            f"sliding {self.sliding * 100:.2f} cm/s, travel {self.travel * 100:.1f} %"
        )


def motion_figures(got: np.ndarray, source: np.ndarray, contacts: np.ndarray, scale: float) -> Figures:
    """`got` (T, 22, 3): the rig's joints (Y-up metres, facing +Z at rest, its floor at y = 0); `source` (T, 22, 3)
    the decoded motion; `contacts` (T, 4) its contact labels; `scale` the rig's leg length over SMPL's."""
    segments = [(j, CHILD[j]) for j in SINGLE]
    errors = np.stack([_angles(got[:, k] - got[:, j], source[:, k] - source[:, j]) for j, k in segments], 1)
    height = np.abs(got[:, FEET, 1] - scale * source[:, FEET, 1])[contacts]
    still = contacts[1:] & contacts[:-1]  # (T-1, 4) contact on both ends of the step
    v_got = np.diff(got[:, FEET][..., [0, 2]], axis=0) * FPS
    v_src = np.diff(source[:, FEET][..., [0, 2]], axis=0) * FPS * scale
    extra = np.linalg.norm(v_got - v_src, axis=-1)[still]
    return Figures(
        float(errors.mean()), float(errors.max()), float(height.max()), float(extra.mean()),
        _path(got[:, 0]) / (scale * _path(source[:, 0])),
    )  # fmt: skip


@dataclass(frozen=True)
class ReadBack:
    """The features read back from a rig against the source's own encoding (both decoded to joints)."""

    joints_mean: float  # metres
    joints_max: float
    travel: float  # decoded pelvis path length / the source's

    def row(self) -> str:
        mean, worst = self.joints_mean * 100, self.joints_max * 100
        return f"read-back {mean:.2f}/{worst:.2f} cm, travel {self.travel * 100:.1f} %"


def read_back_figures(sent: np.ndarray, source_features: np.ndarray) -> ReadBack:
    """Features the add-on sent (read back from the rig) against the source's own features."""
    count = min(len(sent), len(source_features))
    got, want = features_to_joints(sent[:count]), features_to_joints(source_features[:count])
    error = np.linalg.norm(got - want, axis=-1)
    return ReadBack(float(error.mean()), float(error.max()), _path(got[:, 0]) / _path(want[:, 0]))


