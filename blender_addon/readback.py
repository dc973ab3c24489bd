"""Reading an armature's animation back: evaluated bone heads/tails per frame → SMPL-22 joints (metres, Y-up)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import bpy
import numpy as np

from . import armature, rig_math
from ._shared import BoneMap, axes, joints_from_bones, resample, retarget
from .action_io import armature_data, assign_action, current_scene, pose_bones, restore_action
from .steps import SLICE_S, Steps, run_steps


@dataclass(frozen=True)
class SampledMotion:
    """SMPL-22 joints of frames [first, last] at the scene rate, HumanML3D axes (Y-up), metres."""

    first: int
    last: int
    fps: float
    world: np.ndarray  # (T, 22, 3) world space: the rig's own joints (what results are placed onto)
    armature: np.ndarray  # (T, 22, 3) armature space: where results are written
    smpl: np.ndarray  # (T, 22, 3) the same motion on SMPL's body (`proportions.to_smpl`): what the features encode


def scene_fps(scene: bpy.types.Scene) -> float:
    """Frames per second of the scene, `fps / fps_base` snapped to the intended rate (the BVH importer sets
    120.00048 for a 0.0083333 s frame time, the same rounding `read_bvh` snaps away; 30000/1001 stays)."""
    return resample.nominal_fps(scene.render.fps / scene.render.fps_base)


def _deformed_meshes(obj: bpy.types.Object) -> list[bpy.types.Object]:
    """Visible meshes the armature deforms (hidden while sampling: their evaluation is most of the cost)."""
    out = []
    for other in current_scene().objects:
        if other.type != "MESH" or other.hide_viewport:
            continue
        if other.parent == obj or any(
            isinstance(m, bpy.types.ArmatureModifier) and m.object == obj for m in other.modifiers
        ):
            out.append(other)
    return out


@contextmanager
def evaluation_scope(obj: bpy.types.Object, action: bpy.types.Action | None = None) -> Iterator[None]:
    """While sampling: deformed meshes hidden (their evaluation is most of the cost) and, with `action`, that Action
    assigned to `obj`; on exit the meshes, the current frame and the assigned Action/slot are restored.

    Sampling runs in slices across timer ticks; each slice is one scope, so between ticks the scene is exactly as the
    user left it (the viewport never shows a sampled frame or a borrowed Action)."""
    scene = current_scene()
    hidden = _deformed_meshes(obj)
    current, subframe = scene.frame_current, scene.frame_subframe
    anim = obj.animation_data
    original = (anim.action, getattr(anim, "action_slot", None)) if anim is not None else None
    try:
        for m in hidden:
            m.hide_viewport = True
        if action is not None:
            assign_action(obj, action)
        yield
    finally:
        if action is not None:
            if original is None:
                obj.animation_data_clear()
            else:
                restore_action(obj, *original)
        for m in hidden:
            m.hide_viewport = False
        scene.frame_set(current, subframe=subframe)


@dataclass(frozen=True)
class ReadPlan:
    """What to sample: validated up front so the operator can report a bad request at once."""

    obj: bpy.types.Object
    bone_map: BoneMap
    first: int
    last: int
    unit_scale: float  # metres per armature unit
    action: bpy.types.Action | None = None  # sample this Action instead of the assigned one (Caption All)


def plan_read(
    obj: bpy.types.Object | None,
    first: int,
    last: int,
    unit_scale: float = 0.0,
    action: bpy.types.Action | None = None,
) -> ReadPlan:
    """Check that `obj` is an armature a bone map fits and that [first, last] has two frames or more.

    `unit_scale`: metres per world unit; 0 uses the bone map's unit (1 for armature presets) times the scene's unit
    scale. The bone map is the armature's own mapping or the best-fitting preset (`armature.rig_bone_map`).
    """
    bone_map = armature.rig_bone_map(obj)
    assert obj is not None  # rig_bone_map refuses None
    if last - first < 1:
        raise ValueError(f"frame range {first}-{last} needs at least two frames")
    metres_per_unit = current_scene().unit_settings.scale_length or 1.0
    scale = unit_scale if unit_scale > 0 else bone_map.unit_to_metres * metres_per_unit
    return ReadPlan(obj, bone_map, int(first), int(last), scale, action)


def sample_bone_tracks_steps(
    plan: ReadPlan, names: list[str], slice_s: float = SLICE_S
) -> Steps[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Evaluated ((T, N, 3) heads, (T, N, 3) tails, (T, 4, 4) object matrices), armature space, frames first..last,
    as many frames per slice as fit in `slice_s` (at least one).

    `scene.frame_set` evaluates constraints, drivers, parents and NLA.
    """
    obj, scene = plan.obj, current_scene()
    bones = pose_bones(obj)
    index = [bones.find(n) for n in names]
    lengths = np.array([armature_data(obj).bones[n].length for n in names])
    count = plan.last - plan.first + 1
    buf = np.empty(len(bones) * 16, np.float32)
    matrices = np.empty((count, len(names), 4, 4))
    world = np.empty((count, 4, 4))
    t = 0
    while t < count:
        started = time.perf_counter()
        with evaluation_scope(obj, plan.action):
            while t < count:
                scene.frame_set(plan.first + t)
                bones.foreach_get("matrix", buf)
                matrices[t] = buf.reshape(-1, 4, 4)[index].transpose(0, 2, 1)  # foreach_get is column-major
                world[t] = np.array(obj.matrix_world)
                t += 1
                if time.perf_counter() - started > slice_s:
                    break
        yield t / count
    heads = matrices[..., :3, 3]
    tails = heads + matrices[..., :3, 1] * lengths[None, :, None]  # bone Y axis points head → tail
    return heads, tails, world


def sample_joints_steps(plan: ReadPlan, slice_s: float = SLICE_S) -> Steps[SampledMotion]:
    """SMPL-22 joints of `plan.obj` over its frames through the fitting bone map, in slices."""
    names = plan.bone_map.bones()
    heads, tails, world = yield from sample_bone_tracks_steps(plan, names, slice_s)
    head_of = {n: heads[:, i] for i, n in enumerate(names)}
    tail_of = {n: tails[:, i] for i, n in enumerate(names)}
    local = joints_from_bones(plan.bone_map, head_of, tail_of)  # (T, 22, 3) armature space, Z-up
    in_world = np.einsum("tab,tjb->tja", world[:, :3, :3], local) + world[:, None, :3, 3]
    fps = scene_fps(current_scene())
    scale = plan.unit_scale
    world_yup = axes.zup_to_yup(in_world) * scale
    local_yup = axes.zup_to_yup(local) * scale
    return SampledMotion(plan.first, plan.last, fps, world_yup, local_yup, smpl_body(plan, world_yup))


def smpl_body(plan: ReadPlan, world: np.ndarray) -> np.ndarray:
    """(T, 22, 3) world joints of the planned rig (Y-up metres) carried onto SMPL's proportions in the rig's character
    frame: the inverse of what a result's placement does (`retarget.on_smpl_body`), so a motion written onto any
    rig reads back as the motion it was."""
    obj = plan.obj
    target = rig_math.rig_target(armature.rig_rest(obj), plan.bone_map, np.array(obj.matrix_world), plan.unit_scale)
    return retarget.on_smpl_body(target.frame.world_to_character(world), target.rest_joints, scene_fps(current_scene()))


def sample_joints(
    obj: bpy.types.Object | None, first: int, last: int, unit_scale: float = 0.0, action: bpy.types.Action | None = None
) -> SampledMotion:
    """`sample_joints_steps` in one go (tests, benchmarks, scripts)."""
    return run_steps(sample_joints_steps(plan_read(obj, first, last, unit_scale, action)))
