"""Differentiable HumanML3D root recovery for shots: raw 263-dim features -> pelvis path, facing and world joints,
continuing from a given start pose (torch; the numpy reference is `shared.motion.humanml3d.recover_root`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from shared.motion.skeleton import PARENTS, TPOSE_OFFSETS, depth_first_order

RIC = slice(4, 67)  # 21 joints x (x, y, z) in the heading frame, y absolute
CONTACTS = slice(259, 263)


@dataclass(frozen=True)
class RootStart:
    """Where a window starts in the shot, per candidate: pelvis floor point [B, 2] (x, z) and facing [B] (radians,
    0 = +Z, +pi/2 = +X)."""

    position: torch.Tensor
    facing: torch.Tensor


def _turn(x: torch.Tensor, z: torch.Tensor, facing: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Heading-frame (x, z) -> world, for a heading frame whose +Z faces `facing` (about +Y)."""
    cos, sin = torch.cos(facing), torch.sin(facing)
    return x * cos + z * sin, -x * sin + z * cos


def root_path(raw: torch.Tensor, start: RootStart) -> tuple[torch.Tensor, torch.Tensor]:
    """Raw features [B, T, 263] -> pelvis floor path [B, T, 2] and facing [B, T], frame 0 at `start`.

    As HumanML3D's recovery: facing(t) = start - 2 * sum(features[:t, 0]); the step into frame t is features[t-1, 1:3]
    turned by facing(t)."""
    half = torch.cumsum(raw[:, :-1, 0], dim=1)  # [B, T-1]
    facing = torch.cat([torch.zeros_like(raw[:, :1, 0]), -2.0 * half], dim=1) + start.facing[:, None]  # [B, T]
    dx, dz = _turn(raw[:, :-1, 1], raw[:, :-1, 2], facing[:, 1:])
    steps = torch.stack([dx, dz], dim=-1)  # [B, T-1, 2]
    path = torch.cat([raw.new_zeros(len(raw), 1, 2), torch.cumsum(steps, dim=1)], dim=1) + start.position[:, None]
    return path, facing


def world_joints(raw: torch.Tensor, start: RootStart) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Raw features [B, T, 263] -> world joints [B, T, 22, 3], the pelvis path [B, T, 2] and facing [B, T]."""
    path, facing = root_path(raw, start)
    ric = raw[..., RIC].reshape(*raw.shape[:2], 21, 3)  # [B, T, 21, 3]
    x, z = _turn(ric[..., 0], ric[..., 2], facing[..., None])
    others = torch.stack([x + path[..., :1], ric[..., 1], z + path[..., 1:]], dim=-1)
    pelvis = torch.stack([path[..., 0], raw[..., 3], path[..., 1]], dim=-1)[:, :, None]  # [B, T, 1, 3]
    return torch.cat([pelvis, others], dim=2), path, facing


def _reference_lengths() -> tuple[list[int], list[int], list[float]]:
    """Depth-first joints, their parents and the SMPL-22 rest bone lengths (HumanML3D's target skeleton)."""
    order = depth_first_order()[1:]
    lengths = np.linalg.norm(TPOSE_OFFSETS, axis=-1)
    return list(order), [PARENTS[j] for j in order], [float(lengths[j]) for j in order]


_ORDER, _PARENT_OF, _LENGTHS = _reference_lengths()


def proportioned(joints: torch.Tensor) -> torch.Tensor:
    """Joints [..., 22, 3] rebuilt with the SMPL-22 rest bone lengths along their own bone directions, from the pelvis:
    where a rig with those proportions (the add-on's SMPL-22 armature) puts them (`retarget.proportioned_joints`)."""
    out: list[torch.Tensor | None] = [None] * 22
    out[0] = joints[..., 0, :]
    for j, parent, length in zip(_ORDER, _PARENT_OF, _LENGTHS, strict=True):
        bone = joints[..., j, :] - joints[..., parent, :]
        unit = bone / torch.linalg.vector_norm(bone, dim=-1, keepdim=True).clamp(min=1e-9)
        out[j] = out[parent] + unit * length
    return torch.stack(out, dim=-2)
