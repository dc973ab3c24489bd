"""One motion on two bodies: SMPL-proportioned joints ⇄ a rig's proportions, the same map both ways (pure numpy).

The writer carries decoded motion onto a rig (`to_rig`), the reader carries a rig's evaluated joints back to SMPL's
proportions before encoding (`to_smpl`); `to_smpl(to_rig(x))` returns `x` up to the source's own non-rigidity, so the
same motion on two rigs of different proportions is read back as the same features.

- The pelvis and the chest (spine3) carry their children rigidly: their rotation is fitted (Kabsch) to the children
  of the body they come from (against that body's rest) and turns the other body's rest offsets. The rigs' own pelvis
  shapes differ a lot (Rigify's thighs start above its pelvis joint), so the hips go where that body's hips are.
- Every other bone keeps its direction and takes the other body's length.
- The pelvis trajectory scales by the ratio of the leg lengths (`skeleton.leg_length`: HumanML3D's right hip → knee
  → ankle, the CLI encoder's convention too), and is lifted so that the rest
  pose of either body stands on the floor: y' = s·y + lift with lift = H' − s·H (H: rest pelvis height over the
  lowest foot joint), so planted feet stay planted and on the floor.

All joints: (T, 22, 3), Y-up, metres, floor at y = 0 (a rig's character frame: see `retarget.CharacterFrame`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .ik import kabsch
from .skeleton import FOOT_LEFT, FOOT_RIGHT, PARENTS, children_of, depth_first_order, leg_length, tpose_joints

_FEET = [*FOOT_LEFT, *FOOT_RIGHT]  # ankles and balls of both feet
CARRIERS = tuple(j for j in range(len(PARENTS)) if len(children_of(j)) > 1)  # pelvis, spine3: rigid triads


def smpl_rest() -> np.ndarray:
    """(22, 3) the SMPL T-pose rest (HumanML3D lengths), lowest foot joint on y = 0, pelvis over the origin."""
    rest = tpose_joints()
    rest[:, 1] -= rest[_FEET, 1].min()
    return rest




def standing_height(rest: np.ndarray) -> float:
    """Pelvis height over the lowest foot joint of a (22, 3) Y-up rest."""
    rest = np.asarray(rest, dtype=np.float64)
    return float(rest[0, 1] - rest[_FEET, 1].min())


@dataclass(frozen=True)
class Proportions:
    """How a rig's body relates to SMPL's: its rest joints (character frame), leg-length ratio and pelvis lift."""

    rest: np.ndarray  # (22, 3) the rig's rest joints, Y-up metres, floor at 0
    scale: float  # the rig's leg length over SMPL's: root travel and heights scale by it
    lift: float  # metres added to the scaled pelvis height so that the rig's rest pose stands on the floor

    @classmethod
    def of(cls, rig_rest: np.ndarray) -> Proportions:
        rest = np.asarray(rig_rest, dtype=np.float64)
        smpl = smpl_rest()
        scale = float(leg_length(rest) / leg_length(smpl))
        return cls(rest, scale, standing_height(rest) - scale * standing_height(smpl))


def reproportion(
    joints: np.ndarray, from_rest: np.ndarray, to_rest: np.ndarray, scale: float, lift: float
) -> np.ndarray:
    """(T, 22, 3) motion of a body with rest `from_rest` → the same motion on a body with rest `to_rest` (both (22, 3),
    same facing): the pelvis at (s·x, s·y + lift, s·z), the carriers' children by the fitted carrier rotation, every
    other bone by direction with `to_rest`'s length."""
    joints = np.asarray(joints, dtype=np.float64)
    src_rest = np.asarray(from_rest, dtype=np.float64)
    dst_rest = np.asarray(to_rest, dtype=np.float64)
    out = np.empty_like(joints)
    out[:, 0] = joints[:, 0] * scale
    out[:, 0, 1] += lift
    turn = {}
    for j in CARRIERS:  # (T, 3, 3) rest → pose rotation of each carrier, fitted on its children
        kids = list(children_of(j))
        turn[j] = kabsch(np.broadcast_to(src_rest[kids] - src_rest[j], (len(joints), len(kids), 3)),
                         joints[:, kids] - joints[:, j : j + 1])  # fmt: skip
    for j in depth_first_order()[1:]:
        p = PARENTS[j]
        offset = dst_rest[j] - dst_rest[p]
        if p in turn:
            out[:, j] = out[:, p] + turn[p] @ offset
        else:
            bone = joints[:, j] - joints[:, p]
            unit = bone / np.maximum(np.linalg.norm(bone, axis=-1, keepdims=True), 1e-12)
            out[:, j] = out[:, p] + unit * np.linalg.norm(offset)
    return out


def to_rig(joints: np.ndarray, body: Proportions) -> np.ndarray:
    """SMPL-proportioned motion (decoded, floor at 0) → the rig's proportions (its character frame)."""
    return reproportion(joints, smpl_rest(), body.rest, body.scale, body.lift)


def to_smpl(joints: np.ndarray, body: Proportions) -> np.ndarray:
    """A rig's motion (its character frame) → SMPL's proportions: the inverse of `to_rig`."""
    return reproportion(joints, body.rest, smpl_rest(), 1.0 / body.scale, -body.lift / body.scale)
