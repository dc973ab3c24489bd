"""Pure-numpy rig math for the add-on: HumanML3D joints (Y-up) → pose-bone quaternions and root locations (Z-up).

Conventions (BLENDER_NOTES.md §5.2): `rest_rotations[j]` is the rotation part of `bone.matrix_local` (armature
space, Blender axes); a parent-relative SMPL rotation `r` (T-pose rest, identity joint frames) expressed in Blender
axes `C·r·Cᵀ` becomes the pose-bone basis `R⁻¹·r·R`; the root's `location` lives in its rest bone frame.
Quaternions are (w, x, y, z), consecutive frames on one hemisphere (F-curves interpolate per component).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._shared import axes, ik, quaternion, resample, skeleton
from .steps import Steps, run_steps

SMPL_FPS = 20.0


@dataclass(frozen=True)
class PoseTrack:
    """Keys for the 22 SMPL bones: (K, 22, 4) basis quaternions and (K, 3) pelvis locations at `fps`."""

    fps: float
    quaternions: np.ndarray
    root_locations: np.ndarray

    @property
    def frames(self) -> int:
        return len(self.quaternions)


def rest_offsets_yup(rest_heads: np.ndarray) -> np.ndarray:
    """(22, 3) parent-relative rest offsets in HumanML3D axes from (22, 3) armature-space bone heads (Z-up)."""
    heads = np.asarray(rest_heads, dtype=np.float64)
    offsets = heads - heads[np.maximum(np.array(skeleton.PARENTS), 0)]
    offsets[0] = 0.0
    return axes.zup_to_yup(offsets)


def continuous_quaternions(quats: np.ndarray) -> np.ndarray:
    """(K, ..., 4) with every frame flipped onto the previous frame's hemisphere (and w ≥ 0 on frame 0)."""
    q = np.array(quats, dtype=np.float64)
    q[0] *= np.where(q[0, ..., :1] < 0.0, -1.0, 1.0)
    return quaternion.qfix(q)


def requested_frames_20fps(scene_frames: int, scene_fps: float) -> int:
    """20 fps frames whose duration covers `scene_frames` frames at `scene_fps` (first frame at t = 0)."""
    return int(np.ceil((scene_frames - 1) * SMPL_FPS / scene_fps - 1e-6)) + 1


def joints_at_scene_rate(joints_20fps: np.ndarray, scene_fps: float, frames: int | None = None) -> np.ndarray:
    """(T, 22, 3) joints at 20 fps → `frames` frames at `scene_fps` (by time; default: the whole duration)."""
    out = resample.resample_linear(joints_20fps, SMPL_FPS, scene_fps)
    if frames is not None:
        if frames > len(out):
            raise ValueError(f"{len(joints_20fps)} frames at 20 fps cover {len(out)} frames at {scene_fps:g} fps")
        out = out[:frames]
    return out


IK_CHUNK_FRAMES = 32  # frames solved per slice (1.5-3 ms of numpy on a loaded 2-core machine)


def bone_rotations(
    joints: np.ndarray, rest_heads: np.ndarray, rest_rotations: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(K, 22, 3) joints (HumanML3D axes, armature units) → ((K, 22, 4) basis quaternions, (K, 3) pelvis positions
    in armature space). Frames are independent (any chunk of frames gives the same rows); quaternion signs are not
    yet made continuous.

    `rest_heads` (22, 3) and `rest_rotations` (22, 3, 3) describe the armature's rest pose in armature space, in
    SMPL joint order. The IK solves against the armature's own rest offsets, so bone directions follow the motion
    and the pelvis lands exactly on the motion's pelvis.
    """
    solved = ik.solve_local_rotations(np.asarray(joints, dtype=np.float64), rest_offsets_yup(rest_heads))
    local_zup = axes.rotation_yup_to_zup(solved.local_rotations)  # (K, 22, 3, 3) C·r·Cᵀ
    rest = np.asarray(rest_rotations, dtype=np.float64)
    basis = np.swapaxes(rest, -1, -2)[None] @ local_zup @ rest[None]  # R⁻¹·r·R
    return quaternion.matrix_to_quat(basis), axes.yup_to_zup(solved.root_positions)


def pose_track_steps(
    joints_20fps: np.ndarray,
    scene_fps: float,
    rest_heads: np.ndarray,
    rest_rotations: np.ndarray,
    frames: int | None = None,
    root_motion: bool = True,
) -> Steps[PoseTrack]:
    """Joints at 20 fps (HumanML3D axes) → a `PoseTrack` of `frames` keys at the scene rate, `IK_CHUNK_FRAMES`
    frames per slice. With `root_motion` False the pelvis keeps its ground position of frame 0 (vertical motion and
    turning are kept)."""
    joints = joints_at_scene_rate(joints_20fps, scene_fps, frames)
    quats = np.empty((len(joints), skeleton.NUM_JOINTS, 4))
    pelvis = np.empty((len(joints), 3))
    for start in range(0, len(joints), IK_CHUNK_FRAMES):
        end = start + IK_CHUNK_FRAMES
        quats[start:end], pelvis[start:end] = bone_rotations(joints[start:end], rest_heads, rest_rotations)
        yield min(1.0, end / len(joints))
    if not root_motion:
        pelvis[:, :2] = pelvis[:1, :2]
    rest = np.asarray(rest_rotations, dtype=np.float64)
    location = (pelvis - np.asarray(rest_heads, dtype=np.float64)[0]) @ rest[0]  # R_rootᵀ·Δp, row form
    return PoseTrack(float(scene_fps), continuous_quaternions(quats), location)


def pose_track(
    joints_20fps: np.ndarray,
    scene_fps: float,
    rest_heads: np.ndarray,
    rest_rotations: np.ndarray,
    frames: int | None = None,
    root_motion: bool = True,
) -> PoseTrack:
    """`pose_track_steps` in one go."""
    return run_steps(pose_track_steps(joints_20fps, scene_fps, rest_heads, rest_rotations, frames, root_motion))
