"""The animator's own keys on a mapped rig: the frames keyed on its driven bones and the poses keyed there."""

from __future__ import annotations

from collections.abc import Sequence

import bpy
import numpy as np

from .action_io import all_fcurves, bone_path, pose_bones
from .rig_math import KeyedPoses, rotation_property


def slot_fcurves(action: bpy.types.Action, slot_identifier: str | None) -> list[bpy.types.FCurve]:
    """The F-curves that animate the object through `slot_identifier` (4.4+: that slot's channelbags; 4.2/4.3, or
    no slot known: every F-curve of the Action)."""
    slot = (
        next((s for s in action.slots if s.identifier == slot_identifier), None) if hasattr(action, "slots") else None
    )
    if slot is None:
        return all_fcurves(action)
    out: list[bpy.types.FCurve] = []
    for layer in action.layers:
        for strip in layer.strips:
            bag = strip.channelbag(slot)  # type: ignore[attr-defined]  # keyframe strips (the only kind in 4.4-5.x)
            out.extend(bag.fcurves if bag is not None else ())
    return out


def assigned_fcurves(obj: bpy.types.Object) -> tuple[bpy.types.Action | None, list[bpy.types.FCurve]]:
    """The object's assigned Action and the F-curves of its assigned slot (empty without an Action)."""
    anim = obj.animation_data
    action = anim.action if anim is not None else None
    if action is None:
        return None, []
    slot = getattr(anim, "action_slot", None)
    return action, slot_fcurves(action, slot.identifier if slot is not None else None)


def _distinct(frames: np.ndarray, tolerance: float = 1e-4) -> np.ndarray:
    """Sorted frames with near-duplicates (within `tolerance`) dropped; values kept as keyed (no rounding)."""
    frames = np.sort(np.asarray(frames, dtype=np.float64))
    if len(frames) == 0:
        return frames
    return frames[np.concatenate([[True], np.diff(frames) > tolerance])]


def keyed_frames(
    fcurves: Sequence[bpy.types.FCurve],
    obj: bpy.types.Object,
    bones: Sequence[str],
    located: Sequence[str] = (),
    scaled: Sequence[str] = (),
) -> np.ndarray:
    """Sorted distinct frames of the keys on the rotation F-curves (of the property each bone's rotation mode uses)
    and location F-curves of `bones` and `located` (IK targets, poles), and the scale F-curves of `scaled`."""
    pbs = pose_bones(obj)
    wanted = {bone_path(b, rotation_property(pbs[b].rotation_mode)[0]) for b in bones}
    wanted |= {bone_path(b, "location") for b in (*bones, *located)}
    wanted |= {bone_path(b, "scale") for b in scaled}
    frames = [np.zeros(0)]
    for fc in fcurves:
        if fc.data_path in wanted and len(fc.keyframe_points):
            co = np.empty(2 * len(fc.keyframe_points), np.float32)
            fc.keyframe_points.foreach_get("co", co)
            frames.append(co[0::2].astype(np.float64))
    return _distinct(np.concatenate(frames))


def _values(
    lookup: dict[tuple[str, int], bpy.types.FCurve], pb: bpy.types.PoseBone, prop: str, size: int, frames: np.ndarray
) -> np.ndarray:
    """(N, size) values of a pose-bone property at `frames`: its F-curves evaluated, or its current (unanimated)
    value where a component has none."""
    out = np.empty((len(frames), size))
    static = getattr(pb, prop)
    for i in range(size):
        fc = lookup.get((bone_path(pb.name, prop), i))
        out[:, i] = [fc.evaluate(float(f)) for f in frames] if fc is not None else static[i]
    return out


def read_keyed_poses(
    obj: bpy.types.Object,
    fcurves: Sequence[bpy.types.FCurve],
    bones: Sequence[str],
    root_bone: str,
    frames: np.ndarray,
    ik_controls: tuple[Sequence[str], Sequence[str], Sequence[str]] = ((), (), ()),
) -> KeyedPoses:
    """The poses `fcurves` (an Action's, as `slot_fcurves` gives them) hold at `frames`: every bone in its current
    rotation mode, and the root bone's location. `ik_controls` (rotated, located, scaled): the IK controls, whose
    rotations are passed through only where the Action keys them, and whose keyed locations / scales are read."""
    frames = np.asarray(frames, dtype=np.float64)
    lookup = {(fc.data_path, fc.array_index): fc for fc in fcurves}
    paths = {fc.data_path for fc in fcurves}
    pbs = pose_bones(obj)
    modes: dict[str, str] = {b: pbs[b].rotation_mode for b in bones}
    rotations = {b: _values(lookup, pbs[b], *rotation_property(modes[b]), frames) for b in bones}
    root = _values(lookup, pbs[root_bone], "location", 3, frames)
    rotated, located, scaled = ik_controls
    fk = set(bones) - set(rotated)
    loose = frozenset(b for b in rotated if b not in fk and bone_path(b, rotation_property(modes[b])[0]) not in paths)
    locations = {
        b: _values(lookup, pbs[b], "location", 3, frames) for b in located if bone_path(b, "location") in paths
    }
    scales = {b: _values(lookup, pbs[b], "scale", 3, frames) for b in scaled if bone_path(b, "scale") in paths}
    return KeyedPoses(frames, modes, rotations, root, locations, scales, loose)
