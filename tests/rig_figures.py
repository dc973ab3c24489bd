"""The retargeting figures of a motion written onto a rig, computed in plain numpy from what Blender evaluated (no
add-on code): segment directions, contact-foot heights and sliding, travel, and the read-back against the source."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from shared.motion.humanml3d import features_to_joints
from shared.motion.skeleton import TPOSE_OFFSETS, children_of

SINGLE = [j for j in range(22) if len(children_of(j)) == 1]  # joints with one child: their segment is a bone
CHILD = {j: children_of(j)[0] for j in SINGLE}
FPS = 20.0


def smpl_leg() -> float:
    """SMPL's right hip → knee → ankle length (the T-pose template's HumanML3D lengths)."""
    return float(np.linalg.norm(TPOSE_OFFSETS[5]) + np.linalg.norm(TPOSE_OFFSETS[8]))


def leg_scale(rest: np.ndarray) -> float:
    """A rig's leg length over SMPL's from its (22, 3) rest joints, as HumanML3D's `uniform_skeleton` measures legs
    (HUMANML3D.md: the right thigh and shin, joints 2 → 5 → 8)."""
    return float(np.linalg.norm(rest[5] - rest[2]) + np.linalg.norm(rest[8] - rest[5])) / smpl_leg()


def _angles(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    cos = (a * b).sum(-1) / np.maximum(np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1), 1e-12)
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def _displacement(root: np.ndarray) -> float:
    return float(np.linalg.norm(root[-1, [0, 2]] - root[0, [0, 2]]))


def _path(root: np.ndarray) -> float:
    return float(np.linalg.norm(np.diff(root[:, [0, 2]], axis=0), axis=-1).sum())


@dataclass(frozen=True)
class Figures:
    """One motion on one rig, against the source scaled by the rig's leg length."""

    direction_mean: float  # degrees, over every single-child segment and frame
    direction_max: float
    foot_height_max: float  # metres: height error of the joint a foot in contact stands on
    sliding: float  # metres / second: its mean extra horizontal speed
    travel: float  # pelvis ground displacement first → last frame / the scaled source's
    worst: tuple[int, int] = (0, 0)  # (frame, joint) of the segment (joint → its child) with the largest error

    def row(self) -> str:
        return (
            f"dir {self.direction_mean:.2f}/{self.direction_max:.2f} deg (worst: frame {self.worst[0]}, joint "
            f"{self.worst[1]}), feet {self.foot_height_max * 100:.2f} cm, sliding {self.sliding * 100:.2f} cm/s, "
            f"travel {self.travel * 100:.1f} %"
        )


def motion_figures(got: np.ndarray, source: np.ndarray, contacts: np.ndarray, scale: float) -> Figures:
    """`got` (T, 22, 3): the rig's joints (Y-up metres, facing +Z at rest, its floor at y = 0); `source` (T, 22, 3)
    the decoded motion; `contacts` (T, 4) its contact labels; `scale` the rig's leg length over SMPL's.

    Feet: on the frames a foot is in contact (ankle or ball label), the joint it stands on in the source (the lower
    of its ankle and ball) must be at the source's height × `scale` and slide no more than the source's × `scale`."""
    segments = [(j, CHILD[j]) for j in SINGLE]
    errors = np.stack([_angles(got[:, k] - got[:, j], source[:, k] - source[:, j]) for j, k in segments], 1)
    heights, extra = [], []
    for side, (ankle, ball) in enumerate(((7, 10), (8, 11))):
        touching = contacts[:, 2 * side] | contacts[:, 2 * side + 1]
        support = np.where(source[:, ankle, 1] <= source[:, ball, 1], ankle, ball)  # (T,) the joint it stands on
        rows = np.arange(len(got))
        heights.append(np.abs(got[rows, support, 1] - scale * source[rows, support, 1])[touching])
        still = touching[1:] & touching[:-1] & (support[1:] == support[:-1])
        v_got = (got[rows[1:], support[1:]] - got[rows[:-1], support[1:]])[:, [0, 2]] * FPS
        v_src = (source[rows[1:], support[1:]] - source[rows[:-1], support[1:]])[:, [0, 2]] * FPS * scale
        extra.append(np.linalg.norm(v_got - v_src, axis=-1)[still])
    frame, segment = np.unravel_index(int(errors.argmax()), errors.shape)
    return Figures(
        float(errors.mean()), float(errors.max()), float(np.concatenate(heights).max()),
        float(np.concatenate(extra).mean()), _displacement(got[:, 0]) / (scale * _displacement(source[:, 0])),
        (int(frame), SINGLE[int(segment)]),
    )  # fmt: skip


@dataclass(frozen=True)
class ReadBack:
    """The features read back from a rig against the source's own encoding (both decoded to joints)."""

    joints_mean: float  # metres
    joints_max: float
    travel: float  # decoded pelvis path length / the source's
    worst: tuple[int, int] = (0, 0)  # (frame, joint) of the largest error

    def row(self) -> str:
        mean, worst = self.joints_mean * 100, self.joints_max * 100
        return f"read-back {mean:.2f}/{worst:.2f} cm, travel {self.travel * 100:.1f} %"


def read_back_figures(sent: np.ndarray, source_features: np.ndarray) -> ReadBack:
    """Features the add-on sent (read back from the rig) against the source's own features."""
    count = min(len(sent), len(source_features))
    got, want = features_to_joints(sent[:count]), features_to_joints(source_features[:count])
    error = np.linalg.norm(got - want, axis=-1)
    worst = np.unravel_index(int(error.argmax()), error.shape)
    travel = _path(got[:, 0]) / _path(want[:, 0])
    return ReadBack(float(error.mean()), float(error.max()), travel, (int(worst[0]), int(worst[1])))


