"""Actions for generated motion: version-robust F-curve access (legacy 4.2, slotted 4.4+ channelbags) and bulk keys.

BLENDER_NOTES.md §3: on 4.4+ an Action needs a slot, a layer, a keyframe strip and a channelbag; 5.0 removed
`Action.fcurves`. Whole curves are written as sample points turned into linear keys (`set_keys`: a few ms for 91
curves × 400 keys); splices with `keyframe_points.add` + `foreach_set`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import bpy
import numpy as np

from .rig_math import KeyedPoses, PoseTrack, rotation_property, rotation_values
from .steps import Steps, run_steps


def _enum_value(prop: str, item: str) -> int:
    enum = cast(bpy.types.EnumProperty, bpy.types.Keyframe.bl_rna.properties[prop])
    return enum.enum_items[item].value


def bone_path(bone: str, prop: str) -> str:
    """F-curve data path of a pose-bone property."""
    return f'pose.bones["{bone}"].{prop}'


class Channels:
    """The F-curves of one Action as seen by one object: the channelbag of its slot (4.4+) or `action.fcurves`."""

    def __init__(self, obj: bpy.types.Object, action: bpy.types.Action, slot_identifier: str | None = None):
        """Assign `action` to `obj` (with a slot on 4.4+: the one named `slot_identifier`, else a new one)."""
        anim = obj.animation_data or obj.animation_data_create()
        self.bag: Any = None
        if hasattr(action, "slots"):
            slot = next((s for s in action.slots if s.identifier == slot_identifier), None) if slot_identifier else None
            if slot is None:
                slot = action.slots.new(id_type="OBJECT", name=obj.name)
            anim.action = action
            anim.action_slot = slot
            layer = action.layers[0] if len(action.layers) else action.layers.new("Layer")
            strip = layer.strips[0] if len(layer.strips) else layer.strips.new(type="KEYFRAME")
            self.bag = cast(bpy.types.ActionKeyframeStrip, strip).channelbag(slot, ensure=True)
            self.fcurves: Any = self.bag.fcurves
        else:  # 4.2/4.3: legacy F-curves on the Action
            anim.action = action
            self.fcurves = action.fcurves

    def ensure(self, path: str, index: int, group: str) -> bpy.types.FCurve:
        """The F-curve for (path, index), created in `group` if missing."""
        fc = self.fcurves.find(path, index=index)
        if fc is not None:
            return fc
        if self.bag is None:
            return self.fcurves.new(path, index=index, action_group=group)
        try:
            return self.fcurves.new(path, index=index, group_name=group)  # 5.0+
        except TypeError:  # 4.4/4.5: no group argument
            fc = self.fcurves.new(path, index=index)
            fc.group = self.bag.groups.get(group) or self.bag.groups.new(group)
            return fc


_LINEAR: int | None = None


def _linear() -> int:
    global _LINEAR
    if _LINEAR is None:
        _LINEAR = _enum_value("interpolation", "LINEAR")
    return _LINEAR


def track_curves(track: PoseTrack, modes: Sequence[str] | None = None) -> list[tuple[str, int, str]]:
    """(data path, index, group) of the F-curves `write_track` writes: per bone the rotation property its mode uses
    (`modes` per `track.bones`; default quaternion), then the root bone's location x, y, z, then each further located
    bone's (IK targets, poles), then the scale x, y, z of each scaled bone (IK chain roots)."""
    modes = modes or ("QUATERNION",) * len(track.bones)
    out = []
    for bone, mode in zip(track.bones, modes, strict=True):
        prop, size = rotation_property(mode)
        out += [(bone_path(bone, prop), i, bone) for i in range(size)]
    located = (track.root_bone, *track.located)
    out += [(bone_path(bone, "location"), i, bone) for bone in located for i in range(3)]
    return out + [(bone_path(bone, "scale"), i, bone) for bone in track.scaled for i in range(3)]


COLUMN_CHUNK_BONES = 6  # bones converted per slice (Euler conversion of 400 frames: ~2 ms per chunk)


def key_columns_steps(
    start_frame: float | np.ndarray,
    track: PoseTrack,
    modes: Sequence[str] | None = None,
    anchors: KeyedPoses | None = None,
) -> Steps[np.ndarray]:
    """(C, 2K) float32: per F-curve in `track_curves` order the keys as interleaved (frame, value) pairs, ready for
    `foreach_set("co", ...)`, `COLUMN_CHUNK_BONES` bones per slice. Plain numpy: computed before the write.

    `start_frame`: the first key's frame (one key per frame), or every key's frame (K,). Rotations are converted to
    each bone's mode (default quaternion), continuous in time and, with `anchors` (the user's poses around / inside
    the written span), continuing from the user's nearest key: the same quaternion hemisphere, Euler branch and turn.
    """
    k = track.frames
    frames = start_frame + np.arange(k) if np.ndim(start_frame) == 0 else np.asarray(start_frame, np.float64)
    modes = tuple(modes or ("QUATERNION",) * len(track.bones))
    per_bone: dict[int, np.ndarray] = {}
    for mode in dict.fromkeys(modes):  # bones of one mode are converted together
        group = [d for d, m in enumerate(modes) if m == mode]
        for chunk in range(0, len(group), COLUMN_CHUNK_BONES):
            part = group[chunk : chunk + COLUMN_CHUNK_BONES]
            names = [track.bones[d] for d in part]
            user, user_frames = None, None
            if anchors is not None and all(anchors.modes.get(b) == mode for b in names):
                user, user_frames = np.stack([anchors.rotations[b] for b in names], axis=1), anchors.frames
            values = rotation_values(track.quaternions[:, part], frames, mode, user, user_frames)  # (K, G, C)
            per_bone |= {d: values[:, j].T for j, d in enumerate(part)}
            yield len(per_bone) / len(modes)
    extra = track.extra_locations().reshape(k, -1).T  # (3L, K): x, y, z of each located bone in turn
    scales = track.extra_scales().reshape(k, -1).T  # (3S, K)
    values = np.concatenate([*(per_bone[d] for d in range(len(modes))), track.root_locations.T, extra, scales])
    out = np.empty((len(values), k, 2), np.float32)
    out[:, :, 0] = frames
    out[:, :, 1] = values
    return out.reshape(len(values), 2 * k)


def key_columns(
    start_frame: float | np.ndarray,
    track: PoseTrack,
    modes: Sequence[str] | None = None,
    anchors: KeyedPoses | None = None,
) -> np.ndarray:
    """`key_columns_steps` in one go."""
    return run_steps(key_columns_steps(start_frame, track, modes, anchors))


_FRAME_LIMITS: tuple[int, int] | None = None


def _frame_limits() -> tuple[int, int]:
    """The frames `FCurve.convert_to_samples` accepts (Blender's MINAFRAME, MAXFRAME)."""
    global _FRAME_LIMITS
    if _FRAME_LIMITS is None:
        params = cast(Any, bpy.types.FCurve.bl_rna).functions["convert_to_samples"].parameters
        _FRAME_LIMITS = (params["start"].hard_min, params["end"].hard_max)
    return _FRAME_LIMITS


def sampled_starts(columns: np.ndarray) -> list[int | None]:
    """Per row of `columns` ((C, 2K) interleaved (frame, value) pairs, as `key_columns`) its first frame when
    `set_keys` can write it as sample points: 2+ keys, frames strictly ascending, the first one a whole frame inside
    Blender's frame range; else None. All rows at once (~10 µs per row less than one by one)."""
    frames = columns[:, 0::2]
    count = frames.shape[1]
    if count < 2:
        return [None] * len(columns)
    first = frames[:, 0].astype(np.float64)
    low, high = _frame_limits()
    ok = (frames[:, 1:] > frames[:, :-1]).all(axis=1) & (first == np.floor(first)) & (first >= low)
    ok &= first + count <= high
    return [int(f) if good else None for f, good in zip(first.tolist(), ok.tolist(), strict=True)]


def sampled_start(co: np.ndarray) -> int | None:
    """`sampled_starts` of one curve's keys."""
    return sampled_starts(co.reshape(1, -1))[0]


def set_keys(fc: bpy.types.FCurve, co: np.ndarray) -> None:
    """Replace all keys of `fc` by linear keys; `co` is float32 interleaved (frame, value) pairs.

    Where `sampled_start` allows it, the keys go in as sample points, whose `co` `foreach_set` copies as one plain
    array, and `convert_to_keyframes` makes them linear keys with auto-clamped handles, computed by Blender as
    `fc.update()` does: the keys, handles and flags of `keyframe_points.add` + `foreach_set("co")` +
    `foreach_set("interpolation")` + `fc.update()` (the other way, kept for the rest), without the per-key RNA
    access that keyframe `foreach_set` costs (tests/test_blender_key_write.py compares the two).
    """
    write_keys(fc, co, sampled_start(co))


def write_keys(fc: bpy.types.FCurve, co: np.ndarray, start: int | None) -> None:
    """`set_keys` with `start` = `sampled_start(co)` already known (None: the other way)."""
    kp = fc.keyframe_points
    if len(fc.sampled_points):
        start = None
    if len(kp):
        kp.clear()
    n = len(co) // 2
    if start is not None:
        kp.add(1)  # convert_to_samples needs a key; `add` also tags the Action for re-evaluation
        fc.convert_to_samples(start, start + n)
        fc.sampled_points.foreach_set("co", co)
        fc.convert_to_keyframes(start, start + n)
        return
    kp.add(n)
    kp.foreach_set("co", co)
    kp.foreach_set("interpolation", np.full(n, _linear(), np.int32))
    fc.update()


def splice_keys(
    fc: bpy.types.FCurve, co_new: np.ndarray, span: tuple[float, float], keep_frames: Sequence[float] = ()
) -> None:
    """Replace the keys of `fc` inside [span] by linear keys (`co_new`: interleaved (frame, value) pairs); keys
    outside, and keys on `keep_frames`, keep value, interpolation and handles, and new keys on their frames are
    dropped (per curve: a curve without a key on a kept frame gets the new key there)."""
    kp = fc.keyframe_points
    n = len(kp)
    co, left, right = (np.empty(2 * n, np.float32) for _ in range(3))
    interp, left_type, right_type = (np.empty(n, np.int32) for _ in range(3))
    for name, buf in (("co", co), ("handle_left", left), ("handle_right", right), ("interpolation", interp)):
        kp.foreach_get(name, buf)
    kp.foreach_get("handle_left_type", left_type)
    kp.foreach_get("handle_right_type", right_type)
    keep = (co[0::2] < span[0] - 1e-4) | (co[0::2] > span[1] + 1e-4)
    for frame in keep_frames:
        keep |= np.abs(co[0::2] - frame) <= 1e-4
    k = int(keep.sum())
    auto = _enum_value("handle_left_type", "AUTO_CLAMPED")
    new_co = co_new.reshape(-1, 2)
    kept_frames = co[0::2][keep]
    if len(kept_frames) and len(new_co):
        nearest = np.abs(new_co[:, :1] - kept_frames[None, :]).min(axis=1)
        new_co = new_co[nearest > 1e-4]
    count = len(new_co)
    merged = {
        "co": np.concatenate([co.reshape(-1, 2)[keep], new_co]),
        "handle_left": np.concatenate([left.reshape(-1, 2)[keep], new_co]),
        "handle_right": np.concatenate([right.reshape(-1, 2)[keep], new_co]),
        "interpolation": np.concatenate([interp[keep], np.full(count, _linear(), np.int32)]),
        "handle_left_type": np.concatenate([left_type[keep], np.full(count, auto, np.int32)]),
        "handle_right_type": np.concatenate([right_type[keep], np.full(count, auto, np.int32)]),
    }
    order = np.argsort(merged["co"][:, 0], kind="stable")
    kp.clear()
    kp.add(k + count)
    for name, buf in merged.items():
        kp.foreach_set(name, np.ascontiguousarray(buf[order]).ravel())
    fc.update()


def write_track(
    channels: Channels,
    start_frame: float,
    track: PoseTrack,
    span: tuple[float, float] | None = None,
    columns: np.ndarray | None = None,
    keep_frames: Sequence[float] = (),
    modes: Sequence[str] | None = None,
) -> None:
    """Rotation keys for the track's bones (in each bone's rotation mode, `modes`; default quaternion) and location
    keys of its root bone from frame `start_frame` on.

    With `span`, keys of existing curves outside it are kept (predict / in-between into a copy of the user's
    Action); without, each curve holds exactly the track. `columns`: `key_columns(start_frame, track, modes)` when
    already computed (the write itself is then only Blender calls).
    """
    columns = key_columns(start_frame, track, modes) if columns is None else columns
    starts = iter(sampled_starts(columns) if span is None else ())
    for (path, index, group), co in zip(track_curves(track, modes), columns, strict=True):
        fc = channels.ensure(path, index, group)
        if span is None:
            write_keys(fc, co, next(starts))
        else:
            splice_keys(fc, co, span, keep_frames)


def all_fcurves(action: bpy.types.Action) -> list[bpy.types.FCurve]:
    """Every F-curve of an Action: all channelbags of all layers (4.4+) or `action.fcurves` (4.2/4.3)."""
    if not hasattr(action, "layers"):
        return list(action.fcurves)
    strips = [cast(bpy.types.ActionKeyframeStrip, strip) for layer in action.layers for strip in layer.strips]
    return [fc for strip in strips for bag in strip.channelbags for fc in bag.fcurves]


def action_bone_names(action: bpy.types.Action) -> set[str]:
    """Names of the pose bones an Action animates (from its F-curve data paths)."""
    names = set()
    for fc in all_fcurves(action):
        path = fc.data_path
        if path.startswith('pose.bones["'):
            names.add(path[len('pose.bones["') : path.index('"]')])
    return names


def armature_data(obj: bpy.types.Object) -> bpy.types.Armature:
    """The Armature data-block of an armature object (a typed accessor: `Object.data` is any ID)."""
    data = obj.data
    if not isinstance(data, bpy.types.Armature):
        raise ValueError(f"{obj.name} is not an armature")
    return data


def pose_bones(obj: bpy.types.Object) -> bpy.types.bpy_prop_collection[bpy.types.PoseBone]:
    """The pose bones of an armature object."""
    if obj.pose is None:
        raise ValueError(f"{obj.name} has no pose (not an armature)")
    return obj.pose.bones


def current_scene() -> bpy.types.Scene:
    """`bpy.context.scene` (None only in contexts without a window/scene, where the add-on cannot run)."""
    scene = bpy.context.scene
    if scene is None:
        raise RuntimeError("no active scene")
    return scene


def restore_action(obj: bpy.types.Object, action: bpy.types.Action | None, slot: Any) -> None:
    """Put back an (Action, slot) pair read from `obj.animation_data` earlier (slot None before 4.4)."""
    anim = obj.animation_data or obj.animation_data_create()
    anim.action = action
    if action is not None and slot is not None and hasattr(anim, "action_slot"):
        anim.action_slot = slot


def assign_action(obj: bpy.types.Object, action: bpy.types.Action) -> None:
    """Assign an existing Action to `obj`, choosing its first object slot where slots exist (4.4+)."""
    anim = obj.animation_data or obj.animation_data_create()
    anim.action = action
    if hasattr(action, "slots") and anim.action_slot is None:
        slot = next((s for s in action.slots if s.target_id_type == "OBJECT"), None)
        if slot is not None:
            anim.action_slot = slot
