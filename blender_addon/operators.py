"""Operators of the Motion panel: read animation and send requests (in timer slices, never waiting), apply results as
one undo step, cancel, connect."""

# Blender declares operator properties as annotations holding calls (`name: StringProperty()`), which mypy rejects.
# mypy: disable-error-code="valid-type"

from __future__ import annotations

import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import bpy
import numpy as np
from bpy.props import StringProperty

from . import armature, readback, results, rig_math, user_keys
from ._shared import BoneMap, client_module, encode_joints, resample
from .action_io import action_bone_names, armature_data, assign_action
from .backend_env import InstallError
from .install_ops import local_backend_command
from .jobs import Controller, Job
from .local_backend import LOCAL_BACKEND
from .properties import preferences, scene_settings
from .steps import Steps

if TYPE_CHECKING:
    from bpy.stub_internal.rna_enums import OperatorReturnItems

MAX_FRAMES_20FPS = 196


def make_client() -> Any:
    """A MotionClient for the address and keys in the preferences."""
    prefs = preferences()
    address = prefs.address if prefs else "tcp://127.0.0.1:5555"
    kwargs: dict[str, Any] = {}
    client = client_module()
    if prefs is not None and prefs.server_key_file:  # CURVE: the server's public key + this client's secret key
        kwargs["server_public_key"] = client.load_public_key(bpy.path.abspath(prefs.server_key_file))
        kwargs["client_secret_key_file"] = bpy.path.abspath(prefs.client_key_file) or None
    return client.MotionClient(address, **kwargs)


def apply_result(request_id: str) -> None:
    """Hand a result to the undo-registered operator (one undo step per result)."""
    bpy.ops.motion.apply_result(request_id=request_id)  # type: ignore[attr-defined]  # registered by this add-on


CONTROLLER = Controller(make_client, apply_result, results.prepare_steps)


def timer_tick() -> float | None:
    """The `bpy.app.timers` function: polls the client, runs a few ms of slices or one result write."""
    interval = CONTROLLER.tick()
    wm = bpy.context.window_manager
    for window in wm.windows if wm is not None else ():
        for area in window.screen.areas if window.screen is not None else ():
            if area.type == "VIEW_3D":
                area.tag_redraw()
    return interval


def ensure_timer() -> None:
    if not bpy.app.timers.is_registered(timer_tick):
        bpy.app.timers.register(timer_tick, first_interval=0.0, persistent=True)


def stop_timer() -> None:
    if bpy.app.timers.is_registered(timer_tick):
        bpy.app.timers.unregister(timer_tick)


def _scene(context: bpy.types.Context) -> bpy.types.Scene:
    scene = context.scene
    if scene is None:
        raise RuntimeError("no scene in this context")
    return scene


_settings = scene_settings


def _seed(settings: Any) -> int:
    if settings.random_seed:
        settings.seed = random.randrange(2**31)
    return int(settings.seed)


def _send(kind: str, fields: dict, arrays: dict | None, target: str, params: dict, batch: str | None = None) -> Job:
    """Submit a request (starting the local backend first where configured); raises when it cannot be sent."""
    if LOCAL_BACKEND.running is False and (prefs := preferences()) is not None and prefs.start_local:
        LOCAL_BACKEND.start(local_backend_command(prefs))
    job = CONTROLLER.submit(kind, fields, arrays, target, params, batch)
    ensure_timer()
    return job


def _read_range(context: bpy.types.Context, settings: Any) -> tuple[int, int]:
    if settings.use_scene_range:
        scene = _scene(context)
        return scene.frame_start, scene.frame_end
    return settings.read_start, settings.read_end


def _read_steps(plan: readback.ReadPlan) -> Steps[tuple[np.ndarray, np.ndarray, float]]:
    """(features (K-1, 263), world joints at 20 fps (K, 22, 3), scene fps) of the planned frames, in slices:
    as many frames per slice as fit in the tick's budget, then the encoding (~5 ms for 9.8 s) as a slice of its own."""
    sampled = yield from readback.sample_joints_steps(plan)
    yield None
    features = encode_joints(sampled.smpl, sampled.fps).astype(np.float32)  # on SMPL's body, as results come
    context_joints = resample.resample_linear(sampled.world, sampled.fps, rig_math.SMPL_FPS)
    return features, context_joints, sampled.fps


def _start_reading(op: bpy.types.Operator, label: str, steps: Steps[Any]) -> set[OperatorReturnItems]:
    """Queue the read-back (and the request it ends with) on the timer; the button press itself returns at once."""
    CONTROLLER.last_error = ""
    CONTROLLER.start_task(label, steps)
    ensure_timer()
    return {"FINISHED"}


def _features_count(first: int, last: int, fps: float) -> int:
    """How many 20 fps feature frames reading scene frames first..last gives (HumanML3D drops the last frame)."""
    return resample.resampled_frame_count(last - first + 1, fps, rig_math.SMPL_FPS) - 1


def context_window_start(first: int, last: int, fps: float, frames20: int) -> int:
    """The first scene frame of the longest read ending at `last` (starting no earlier than `first`) that gives at
    most `frames20` feature frames: a prediction continues from the last window before it."""
    start = max(first, last - int(np.ceil((frames20 + 1) * fps / rig_math.SMPL_FPS)) - 1)
    while start > first and _features_count(start - 1, last, fps) <= frames20:
        start -= 1
    while _features_count(start, last, fps) > frames20:
        start += 1
    return start


def gap_window(first: int, last: int, gap: tuple[int, int], fps: float) -> tuple[int, int] | str:
    """The read range around the filled frames `gap` within first..last that fits the model's window (as much context
    on each side as fits, the side with more losing first), or why none does."""
    if _features_count(gap[0] - 1, gap[1] + 1, fps) > MAX_FRAMES_20FPS:
        span = _features_count(gap[0] - 1, gap[1] + 1, fps)
        return (
            f"the filled frames {gap[0]}-{gap[1]} with a known frame on each side are {span} frames at 20 fps: longer "
            f"than the model's window of {MAX_FRAMES_20FPS} frames (9.8 s)"
        )
    start, end = gap[0] - 1, gap[1] + 1
    while True:  # grow the side with less context first, one scene frame at a time, while the window fits
        sides = sorted([("start", gap[0] - start), ("end", end - gap[1])], key=lambda side: side[1])
        for side, _ in sides:
            wider = (start - 1, end) if side == "start" else (start, end + 1)
            if first <= wider[0] and wider[1] <= last and _features_count(*wider, fps) <= MAX_FRAMES_20FPS:
                start, end = wider
                break
        else:
            break
    return start, end


class MOTION_OT_create_armature(bpy.types.Operator):
    """Add an armature with the HumanML3D rest skeleton (SMPL-22 names, parents and rolls)"""

    bl_idname = "motion.create_armature"
    bl_label = "Create SMPL-22 Armature"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        armature.create_smpl_armature(context)
        return {"FINISHED"}


def _armature_to_write(
    operator: bpy.types.Operator, context: bpy.types.Context, create: bool
) -> tuple[bpy.types.Object, bool] | None:
    """The active armature (its bone mapping checked) or, with `create` (Create SMPL-22 Armature), a new SMPL-22
    armature: (object, whether it was created); None after reporting why neither can be written to."""
    obj = context.active_object
    if obj is not None and obj.type == "ARMATURE":
        try:
            armature.rig_bone_map(obj)
        except ValueError as error:
            operator.report({"ERROR"}, str(error))
            return None
        return obj, False
    if not create:
        operator.report({"ERROR"}, "select an armature (or enable Create SMPL-22 Armature)")
        return None
    return armature.create_smpl_armature(context), True


class MOTION_OT_generate(bpy.types.Operator):
    """Generate motion from the prompt onto the active armature, SMPL-22 or any mapped rig (as new Actions)"""

    bl_idname = "motion.generate"
    bl_label = "Generate"

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        s = _settings(context)
        scene = _scene(context)
        target = _armature_to_write(self, context, s.create_armature)
        if target is None:
            return {"CANCELLED"}
        obj, _ = target
        fps = readback.scene_fps(scene)
        frames = round(s.seconds * fps) if s.length_unit == "SECONDS" else s.frames
        frames20 = rig_math.requested_frames_20fps(frames, fps)
        if frames20 > MAX_FRAMES_20FPS or frames < 2:
            self.report(
                {"ERROR"}, f"{frames} frames at {fps:g} fps: the model makes 2 to 196 frames at 20 fps (9.75 s)"
            )
            return {"CANCELLED"}
        seed = _seed(s)
        fields: dict[str, Any] = {"text": s.prompt, "frames": frames20, "seed": seed, "candidates": s.candidates}
        if s.guidance > 0:
            fields["guidance"] = s.guidance
        start = scene.frame_current if s.use_current_frame else s.start_frame
        params = {"prompt": s.prompt, "seed": seed, "fps": fps, "frames": frames, "start_frame": start}
        params["root_motion"], params["plant_feet"] = s.root_motion, s.plant_feet
        try:
            _send("generate", fields, None, obj.name, params)
        except Exception as error:  # zmq missing, bad key file, invalid fields
            self.report({"ERROR"}, f"could not send the request: {error}")
            return {"CANCELLED"}
        return {"FINISHED"}


def caption_fields(frames20: int) -> dict[str, Any]:
    """A clip longer than the model's window is captioned in windows: ask for time-stamped `segments` (a shorter clip
    sends no field, so that servers without segments still answer)."""
    return {"segments": True} if frames20 > MAX_FRAMES_20FPS else {}


def _caption_steps(plan: readback.ReadPlan, params: dict[str, Any]) -> Steps[None]:
    features, _, fps = yield from _read_steps(plan)
    params |= {"fps": fps, "frames20": len(features)}
    _send("caption", caption_fields(len(features)), {"features": features}, plan.obj.name, params)


class MOTION_OT_caption(bpy.types.Operator):
    """Describe the selected armature's motion over the frame range (a long range in segments: one timeline marker
    each)"""

    bl_idname = "motion.caption"
    bl_label = "Caption"

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        s = _settings(context)
        first, last = _read_range(context, s)
        try:
            plan = readback.plan_read(context.active_object, first, last, s.unit_scale)
        except ValueError as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        anim = plan.obj.animation_data
        action = anim.action if anim is not None else None
        params = {"action": action.name if action else "", "first": first, "last": last}
        return _start_reading(self, f"reading {plan.obj.name} for a caption", _caption_steps(plan, params))


def _caption_all_steps(obj: bpy.types.Object, actions: list[bpy.types.Action], unit: float, batch: str) -> Steps[None]:
    """Each Action in turn: sampled with it assigned (restored after every slice), then sent as a caption request."""
    for action in actions:
        first, last = round(action.frame_range[0]), round(action.frame_range[1])
        try:
            plan = readback.plan_read(obj, first, last, unit, action)
        except ValueError as error:
            CONTROLLER.last_error = f"{action.name}: {error}"
            continue
        features, _, _ = yield from _read_steps(plan)
        fields = caption_fields(len(features))
        _send("caption", fields, {"features": features}, obj.name, {"action": action.name}, batch)


class MOTION_OT_caption_all(bpy.types.Operator):
    """Caption every Action of the selected armature in one batch"""

    bl_idname = "motion.caption_all"
    bl_label = "Caption All Actions"

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        s = _settings(context)
        obj = context.active_object
        if obj is None or obj.type != "ARMATURE":
            self.report({"ERROR"}, "select an armature")
            return {"CANCELLED"}
        bones = {b.name for b in armature_data(obj).bones}
        actions = [a for a in bpy.data.actions if action_bone_names(a) & bones]
        if not actions:
            self.report({"ERROR"}, f"no Action animates the bones of {obj.name}")
            return {"CANCELLED"}
        batch = f"all-{random.randrange(2**31)}"
        CONTROLLER.batch_sizes[batch] = len(actions)
        steps = _caption_all_steps(obj, actions, s.unit_scale, batch)
        return _start_reading(self, f"reading {len(actions)} Actions for captions", steps)


def _context_plan(
    op: bpy.types.Operator, context: bpy.types.Context, first: int, last: int
) -> readback.ReadPlan | None:
    """Shared part of predict / in-between: the read plan, or None (reported) when the request cannot be made."""
    try:
        return readback.plan_read(context.active_object, first, last, _settings(context).unit_scale)
    except ValueError as error:
        op.report({"ERROR"}, str(error))
        return None


def _source_params(obj: bpy.types.Object) -> dict[str, Any]:
    anim = obj.animation_data
    action = anim.action if anim else None
    slot = getattr(anim, "action_slot", None) if anim else None
    return {"source_action": action.name if action else "", "source_slot": slot.identifier if slot else None}


def _user_poses(plan: readback.ReadPlan, frames: list[float]) -> rig_math.KeyedPoses:
    """The poses the assigned Action has at `frames` now (the button press): what a result continues from, and what
    In-between Keys passes through (bones without F-curves: their current values)."""
    bones = rig_math.driven_bone_names(plan.bone_map)
    _, fcurves = user_keys.assigned_fcurves(plan.obj)
    frames_read = np.asarray(sorted(frames), float)
    return user_keys.read_keyed_poses(plan.obj, fcurves, bones, bones[0], frames_read, _ik_controls(plan.bone_map))


def _ik_controls(bone_map: BoneMap) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """(rotated, located, scaled) IK controls of a bone map (IK targets, chain roots, tips; targets, poles; roots)."""
    rotated, located = rig_math.ik_bone_names(bone_map)
    fk = set(rig_math.fk_bone_names(bone_map))
    return tuple(b for b in rotated if b not in fk), located, rig_math.ik_chain_names(bone_map)


def _predict_steps(plan: readback.ReadPlan, fields: dict[str, Any], params: dict[str, Any]) -> Steps[None]:
    features, joints, _ = yield from _read_steps(plan)
    params |= {"context_joints": joints, "known": np.ones(len(features), dtype=bool)}
    _send("predict", fields, {"features": features}, plan.obj.name, params)


class MOTION_OT_predict(bpy.types.Operator):
    """Continue the selected armature's motion after the frame range (as new Actions)"""

    bl_idname = "motion.predict"
    bl_label = "Predict"

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        s = _settings(context)
        first, last = _read_range(context, s)
        fps = readback.scene_fps(_scene(context))
        frames20 = rig_math.requested_frames_20fps(s.predict_frames + 1, fps)
        if frames20 + 2 > MAX_FRAMES_20FPS:
            self.report(
                {"ERROR"},
                f"{s.predict_frames} frames to predict are {frames20} frames at 20 fps: with 2 frames of context "
                f"that is longer than the model's window of {MAX_FRAMES_20FPS} frames (9.8 s)",
            )
            return {"CANCELLED"}
        first = context_window_start(first, last, fps, MAX_FRAMES_20FPS - frames20)  # the last window before
        plan = _context_plan(self, context, first, last)
        if plan is None:
            return {"CANCELLED"}
        seed = _seed(s)
        params = {
            "prompt": "predict",
            "seed": seed,
            "fps": fps,
            "first_frame": first,
            "span": (last + 1, last + s.predict_frames),
            "user_poses": _user_poses(plan, [last]),
            **_source_params(plan.obj),
        }
        fields = {"frames": frames20, "seed": seed, "candidates": s.candidates}
        return _start_reading(self, f"reading {plan.obj.name} to predict", _predict_steps(plan, fields, params))


def _inbetween_steps(
    plan: readback.ReadPlan,
    known_frames: Callable[[int, float], np.ndarray],
    fields: dict[str, Any],
    params: dict[str, Any],
) -> Steps[None]:
    """Read the plan, then send an in-between request whose known mask is `known_frames(feature count, scene fps)`."""
    features, joints, fps = yield from _read_steps(plan)
    known = known_frames(len(features), fps)
    params |= {"context_joints": joints, "known": known}
    arrays = {"features": features, "known": known.astype(np.uint8)}
    _send("inbetween", fields, arrays, plan.obj.name, params)


def known_outside_gap(gap: tuple[int, int], first: int, fps: float, count: int) -> np.ndarray:
    """(count,) mask of the 20 fps feature frames (read from scene frame `first` at `fps`) outside the filled gap."""
    scene_frame = first + np.arange(count) * fps / rig_math.SMPL_FPS
    return (scene_frame < gap[0]) | (scene_frame > gap[1])


class MOTION_OT_inbetween(bpy.types.Operator):
    """Fill frames Fill From..Fill To of the selected armature's motion from the frames around them"""

    bl_idname = "motion.inbetween"
    bl_label = "In-between"

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        s = _settings(context)
        first, last = _read_range(context, s)
        if not first < s.gap_start <= s.gap_end < last:
            self.report({"ERROR"}, f"the filled frames {s.gap_start}-{s.gap_end} must lie inside {first}-{last}")
            return {"CANCELLED"}
        window = gap_window(first, last, (s.gap_start, s.gap_end), readback.scene_fps(_scene(context)))
        if isinstance(window, str):
            self.report({"ERROR"}, window)
            return {"CANCELLED"}
        first, last = window  # the frames around the gap that fit the model's window
        plan = _context_plan(self, context, first, last)
        if plan is None:
            return {"CANCELLED"}
        seed = _seed(s)
        params = {
            "prompt": "inbetween",
            "seed": seed,
            "fps": readback.scene_fps(_scene(context)),
            "first_frame": first,
            "span": (s.gap_start, s.gap_end),
            "user_poses": _user_poses(plan, [s.gap_start - 1, s.gap_end + 1]),
            **_source_params(plan.obj),
        }
        fields = {"seed": seed, "candidates": s.candidates, **_inbetween_text(s)}
        gap = (s.gap_start, s.gap_end)
        steps = _inbetween_steps(plan, lambda count, fps: known_outside_gap(gap, first, fps, count), fields, params)
        return _start_reading(self, f"reading {plan.obj.name} to in-between", steps)


def _inbetween_text(settings: Any) -> dict[str, str]:
    """The optional `text` field of an in-between request: only when the In-between Prompt is not blank."""
    text = settings.inbetween_prompt.strip()
    return {"text": text} if text else {}


def known_at_keys(key_frames: np.ndarray, first: int, fps: float, count: int) -> np.ndarray:
    """(count,) mask of the 20 fps feature frames nearest each key (scene frames at `fps`, read from `first` on)."""
    index = np.rint((np.asarray(key_frames) - first) * rig_math.SMPL_FPS / fps).astype(int)
    known = np.zeros(count, dtype=bool)
    known[np.clip(index, 0, count - 1)] = True
    return known


class MOTION_OT_inbetween_keys(bpy.types.Operator):
    """Fill the span between the poses keyed on the selected armature with motion that passes through every key
    (as a new Action: a copy of yours with your keys kept and the generated keys between them)"""

    bl_idname = "motion.inbetween_keys"
    bl_label = "In-between Keys"

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        s = _settings(context)
        obj = context.active_object
        try:
            bone_map = armature.rig_bone_map(obj)
        except ValueError as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        assert obj is not None  # rig_bone_map refuses None
        action, fcurves = user_keys.assigned_fcurves(obj)
        if action is None:
            self.report({"ERROR"}, f"{obj.name} has no Action: key poses on 2 or more frames first")
            return {"CANCELLED"}
        first, last = _read_range(context, s)
        _, located, scaled = _ik_controls(bone_map)
        keys = user_keys.keyed_frames(fcurves, obj, rig_math.driven_bone_names(bone_map), located, scaled)
        keys = keys[(keys >= first - 1e-4) & (keys <= last + 1e-4)]
        if len(keys) < 2:
            where = f"{action.name!r} (frames {first}-{last})"
            self.report(
                {"ERROR"}, f"In-between Keys needs poses keyed on 2 or more frames of {where}; found {len(keys)}"
            )
            return {"CANCELLED"}
        fps = readback.scene_fps(_scene(context))
        start, end = int(np.floor(keys[0] + 1e-4)), int(np.ceil(keys[-1] - 1e-4))
        # 20 fps frames from the first key until one at or after the last key (the motion must reach it); reading goes
        # on past the last key until the features have them all (HumanML3D drops the last frame read).
        covered = int(np.ceil((keys[-1] - start) * rig_math.SMPL_FPS / fps - 1e-6)) + 1
        read_end = end
        while _features_count(start, read_end, fps) < covered:
            read_end += 1
        if _features_count(start, read_end, fps) > MAX_FRAMES_20FPS:
            self.report(
                {"ERROR"},
                f"the keys at frames {keys[0]:g}-{keys[-1]:g} span {covered} frames at 20 fps: In-between Keys fills "
                f"at most {MAX_FRAMES_20FPS} frames at 20 fps (9.8 s)",
            )
            return {"CANCELLED"}
        plan = _context_plan(self, context, start, read_end)
        if plan is None:
            return {"CANCELLED"}
        seed = _seed(s)
        text = _inbetween_text(s)
        params = {
            "prompt": text.get("text", "in-between keys"),
            "seed": seed,
            "fps": fps,
            "first_frame": start,
            "span": (float(keys[0]), float(keys[-1])),
            "keep_frames": [float(k) for k in keys],
            "user_poses": _user_poses(plan, [float(k) for k in keys]),
            "pass_through": True,
            **_source_params(plan.obj),
        }
        fields = {"seed": seed, "candidates": s.candidates, **text}
        steps = _inbetween_steps(plan, lambda count, fps: known_at_keys(keys, start, fps, count), fields, params)
        return _start_reading(self, f"reading the {len(keys)} keyed poses of {plan.obj.name}", steps)


class MOTION_OT_apply_result(bpy.types.Operator):
    """Write a finished request into the scene (one undo step)"""

    bl_idname = "motion.apply_result"
    bl_label = "Apply Motion Result"
    bl_options = {"REGISTER", "UNDO", "INTERNAL"}

    request_id: StringProperty()

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        job = CONTROLLER.jobs.get(self.request_id)
        if job is None or job.status != "ready":
            return {"CANCELLED"}
        try:
            if job.kind == "caption":
                CONTROLLER.last_caption = results.store_caption(job, _scene(context))
                _settings(context).last_caption = CONTROLLER.last_caption
                job.message = "captioned"
            else:
                written = results.write_takes(job, job.prepared)
                job.message = f"wrote {len(written)} Action(s): {written[0].name}{results.notice_text(job.prepared)}"
        except Exception as error:
            job.status, job.message = "error", f"could not write the result: {error}"
            CONTROLLER.last_error = job.message
            self.report({"ERROR"}, job.message)
            return {"CANCELLED"}
        job.status, job.arrays, job.prepared = "done", {}, None
        return {"FINISHED"}


class MOTION_OT_cancel(bpy.types.Operator):
    """Cancel the requests in flight (nothing is written)"""

    bl_idname = "motion.cancel"
    bl_label = "Cancel"

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        CONTROLLER.cancel_all()
        return {"FINISHED"}


class MOTION_OT_connect(bpy.types.Operator):
    """Connect (again) to the backend at the address in the preferences"""

    bl_idname = "motion.connect"
    bl_label = "Connect"

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        CONTROLLER.close()
        try:
            CONTROLLER.ensure_client()
        except Exception as error:
            self.report({"ERROR"}, f"could not connect: {error}")
            return {"CANCELLED"}
        ensure_timer()
        return {"FINISHED"}


class MOTION_OT_use_candidate(bpy.types.Operator):
    """Assign this candidate Action to the armature"""

    bl_idname = "motion.use_candidate"
    bl_label = "Use Candidate"
    bl_options = {"REGISTER", "UNDO", "INTERNAL"}

    action: StringProperty()

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        obj, action = context.active_object, bpy.data.actions.get(self.action)
        if obj is None or action is None:
            return {"CANCELLED"}
        assign_action(obj, action)
        return {"FINISHED"}


class MOTION_OT_copy_caption(bpy.types.Operator):
    """Copy the last caption to the clipboard"""

    bl_idname = "motion.copy_caption"
    bl_label = "Copy Caption"

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        if context.window_manager is not None:
            context.window_manager.clipboard = _settings(context).last_caption
        return {"FINISHED"}


class MOTION_OT_start_backend(bpy.types.Operator):
    """Start (or restart) the local backend (the installed one, or the command in the preferences) and connect"""

    bl_idname = "motion.start_backend"
    bl_label = "Start Local Backend"

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        prefs = preferences(context)
        if prefs is None:
            return {"CANCELLED"}
        try:
            command = local_backend_command(prefs)
        except InstallError as error:
            self.report({"ERROR"}, error.message)
            return {"CANCELLED"}
        LOCAL_BACKEND.stop()
        try:
            LOCAL_BACKEND.start(command)
        except OSError as error:
            self.report({"ERROR"}, f"could not start the backend: {error}")
            return {"CANCELLED"}
        CONTROLLER.close()  # connect afresh: the panel shows "connected" with the model and device once it answers
        try:
            CONTROLLER.ensure_client()
        except Exception as error:  # zmq missing, bad key file
            self.report({"ERROR"}, f"started the backend but could not connect: {error}")
            return {"CANCELLED"}
        ensure_timer()
        return {"FINISHED"}


class MOTION_OT_stop_backend(bpy.types.Operator):
    """Stop the local backend"""

    bl_idname = "motion.stop_backend"
    bl_label = "Stop Local Backend"

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        LOCAL_BACKEND.stop()
        return {"FINISHED"}


CLASSES = (
    MOTION_OT_create_armature,
    MOTION_OT_generate,
    MOTION_OT_caption,
    MOTION_OT_caption_all,
    MOTION_OT_predict,
    MOTION_OT_inbetween,
    MOTION_OT_inbetween_keys,
    MOTION_OT_apply_result,
    MOTION_OT_cancel,
    MOTION_OT_connect,
    MOTION_OT_use_candidate,
    MOTION_OT_copy_caption,
    MOTION_OT_start_backend,
    MOTION_OT_stop_backend,
)


@bpy.app.handlers.persistent
def _on_load_pre(*_args: Any) -> None:
    """Closing the file: results of jobs in flight must not land in the next file."""
    CONTROLLER.cancel_all()
    CONTROLLER.forget_finished()


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.app.handlers.load_pre.append(_on_load_pre)


def unregister() -> None:
    if _on_load_pre in bpy.app.handlers.load_pre:
        bpy.app.handlers.load_pre.remove(_on_load_pre)
    stop_timer()
    CONTROLLER.close()
    LOCAL_BACKEND.stop()
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
