"""Reading an armature's animation back: evaluated bone heads/tails per frame → SMPL-22 joints (metres, Y-up)."""

from __future__ import annotations

from dataclasses import dataclass

import bpy
import numpy as np

from ._shared import BoneMap, axes, joints_from_bones, resample, rig_bone_map


@dataclass(frozen=True)
class SampledMotion:
    """SMPL-22 joints of frames [first, last] at the scene rate, HumanML3D axes (Y-up), metres."""

    first: int
    last: int
    fps: float
    world: np.ndarray  # (T, 22, 3) world space: what the features are computed from
    armature: np.ndarray  # (T, 22, 3) armature space: where results are written


def scene_fps(scene: bpy.types.Scene) -> float:
    """Frames per second of the scene, `fps / fps_base` snapped to the intended rate (the BVH importer sets
    120.00048 for a 0.0083333 s frame time, the same rounding `read_bvh` snaps away; 30000/1001 stays)."""
    return resample.nominal_fps(scene.render.fps / scene.render.fps_base)


def _deformed_meshes(obj: bpy.types.Object) -> list[bpy.types.Object]:
    """Visible meshes the armature deforms (hidden while sampling: their evaluation is most of the cost)."""
    out = []
    for other in bpy.context.scene.objects:
        if other.type != "MESH" or other.hide_viewport:
            continue
        if other.parent == obj or any(m.type == "ARMATURE" and m.object == obj for m in other.modifiers):
            out.append(other)
    return out


def sample_bone_tracks(
    obj: bpy.types.Object, names: list[str], first: int, last: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Evaluated ((T, N, 3) heads, (T, N, 3) tails, (T, 4, 4) object matrices), armature space, frames first..last.

    `scene.frame_set` evaluates constraints, drivers, parents and NLA; the current frame is restored afterwards.
    """
    scene = bpy.context.scene
    bones = obj.pose.bones
    index = [bones.find(n) for n in names]
    lengths = np.array([obj.data.bones[n].length for n in names])
    count = last - first + 1
    buf = np.empty(len(bones) * 16, np.float32)
    matrices = np.empty((count, len(names), 4, 4))
    world = np.empty((count, 4, 4))
    hidden = _deformed_meshes(obj)
    current, subframe = scene.frame_current, scene.frame_subframe
    try:
        for m in hidden:
            m.hide_viewport = True
        for t, frame in enumerate(range(first, last + 1)):
            scene.frame_set(frame)
            bones.foreach_get("matrix", buf)
            matrices[t] = buf.reshape(-1, 4, 4)[index].transpose(0, 2, 1)  # foreach_get is column-major
            world[t] = np.array(obj.matrix_world)
    finally:
        for m in hidden:
            m.hide_viewport = False
        scene.frame_set(current, subframe=subframe)
    heads = matrices[..., :3, 3]
    tails = heads + matrices[..., :3, 1] * lengths[None, :, None]  # bone Y axis points head → tail
    return heads, tails, world


def sample_joints(
    obj: bpy.types.Object, first: int, last: int, unit_scale: float = 0.0, bone_map: BoneMap | None = None
) -> SampledMotion:
    """SMPL-22 joints of `obj` over frames [first, last] through the fitting bone map.

    `unit_scale`: metres per armature unit; 0 uses the bone map's unit (1 for SMPL-named rigs).
    """
    if obj is None or obj.type != "ARMATURE":
        raise ValueError("select an armature")
    bone_map = bone_map or rig_bone_map(b.name for b in obj.data.bones)
    if bone_map is None:
        raise ValueError(f"{obj.name}: no bone map fits this armature's bone names (SMPL, CMU or cgspeed names)")
    if last - first < 1:
        raise ValueError(f"frame range {first}-{last} needs at least two frames")
    names = bone_map.bones()
    heads, tails, world = sample_bone_tracks(obj, names, first, last)
    head_of = {n: heads[:, i] for i, n in enumerate(names)}
    tail_of = {n: tails[:, i] for i, n in enumerate(names)}
    local = joints_from_bones(bone_map, head_of, tail_of)  # (T, 22, 3) armature space, Z-up
    in_world = np.einsum("tab,tjb->tja", world[:, :3, :3], local) + world[:, None, :3, 3]
    scale = unit_scale if unit_scale > 0 else bone_map.unit_to_metres
    fps = scene_fps(bpy.context.scene)
    return SampledMotion(first, last, fps, axes.zup_to_yup(in_world) * scale, axes.zup_to_yup(local) * scale)
