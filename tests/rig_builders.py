"""Test rigs as plain data (no bpy): SMPL-proportioned rest skeletons with other names, poses, rolls and extra bones,
plus an independent numpy FK of Blender's pose-bone formula (BLENDER_NOTES.md §5.2)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from shared.motion.axes import yup_to_zup
from shared.motion.humanml3d import features_to_joints
from shared.motion.ik import solve_local_rotations
from shared.motion.skeleton import JOINT_NAMES, PARENTS, children_of, tpose_joints

MIXAMO = ("Hips", "LeftUpLeg", "RightUpLeg", "Spine", "LeftLeg", "RightLeg", "Spine1", "LeftFoot", "RightFoot",
          "Spine2", "LeftToeBase", "RightToeBase", "Neck", "LeftShoulder", "RightShoulder", "Head", "LeftArm",
          "RightArm", "LeftForeArm", "RightForeArm", "LeftHand", "RightHand")  # fmt: skip
RIGIFY = ("spine", "thigh.L", "thigh.R", "spine.001", "shin.L", "shin.R", "spine.002", "foot.L", "foot.R",
          "spine.003", "toe.L", "toe.R", "spine.004", "shoulder.L", "shoulder.R", "spine.006", "upper_arm.L",
          "upper_arm.R", "forearm.L", "forearm.R", "hand.L", "hand.R")  # fmt: skip


@dataclass
class RigSpec:
    """A rig to build: bone name per SMPL joint, rest joints (Blender axes, armature units), extra bones, rolls."""

    names: tuple[str, ...]
    joints: np.ndarray  # (22, 3) rest heads, armature space
    rolls: np.ndarray  # (22,) radians
    extras: list[tuple[str, str, np.ndarray, np.ndarray]] = field(default_factory=list)  # name, parent, head, tail
    split: dict[int, str] = field(default_factory=dict)  # SMPL joint j → extra bone inserted at the midpoint of
    # the bone j → main child (j's bone ends there; the extra bone continues to the child and parents it)

    def tails(self) -> np.ndarray:
        main = {0: 3, 9: 12}
        out = np.empty_like(self.joints)
        for j in range(22):
            kids = children_of(j)
            if kids:
                out[j] = self.joints[main.get(j, kids[0])]
            else:
                d = self.joints[j] - self.joints[PARENTS[j]]
                out[j] = self.joints[j] + 0.3 * d
        for j in self.split:
            out[j] = 0.5 * (self.joints[j] + out[j])
        return out


def reference_rest(features: np.ndarray) -> np.ndarray:
    """(22, 3) Y-up T-pose with the clip's own pelvis/chest triads and bone lengths (what its joints imply)."""
    offsets = solve_local_rotations(features_to_joints(features), fit_triads=True).rest_offsets
    rest = tpose_joints(offsets)
    rest[:, 1] -= rest[[7, 8, 10, 11], 1].min()
    return rest


def a_pose(rest_yup: np.ndarray, degrees: float = 40.0) -> np.ndarray:
    """Arms lowered by `degrees` about the shoulders (rotation about ±Z in Y-up)."""
    out = rest_yup.copy()
    for shoulder, chain, sign in ((16, (18, 20), -1.0), (17, (19, 21), 1.0)):
        a = np.radians(degrees) * sign
        rot = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
        for j in chain:
            out[j] = out[shoulder] + rot @ (rest_yup[j] - rest_yup[shoulder])
    return out


def spec(names: tuple[str, ...], rest_yup: np.ndarray, scale: float, rolls: np.ndarray | None = None) -> RigSpec:
    return RigSpec(names, yup_to_zup(rest_yup) * scale, np.zeros(22) if rolls is None else rolls)


def smpl_names() -> tuple[str, ...]:
    return tuple(JOINT_NAMES)
