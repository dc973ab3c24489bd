"""Turning a finished job into Blender data: new Actions for motion, captions on Actions (main thread only)."""

from __future__ import annotations

import json
from dataclasses import dataclass

import bpy
import numpy as np

from . import armature, rig_math, rig_solve
from ._shared import fit_ground_transform, humanml3d
from .action_io import Channels, key_columns_steps, pose_bones, write_track
from .jobs import Job
from .steps import Steps, run_steps

PROP_PROMPT = "motiongpt3_prompt"
PROP_SEED = "motiongpt3_seed"
PROP_GROUP = "motiongpt3_group"  # request id of the result an Action belongs to (candidate list)
PROP_CANDIDATE = "motiongpt3_candidate"
PROP_CAPTION = "motiongpt3_caption"
PROP_SEGMENTS = "motiongpt3_caption_segments"  # on an Action: JSON [[start_s, end_s, caption], ...] of a long clip
PROP_MARKERS = "motiongpt3_caption_markers"  # on a scene: JSON [[frame, name], ...] of the markers captions placed
MARKER_NAME_BYTES = 63


def action_name(prompt: str, seed: int, candidate: int, candidates: int) -> str:
    """'<prompt> · seed <n>' (+ ' · k/N' for several candidates), prompt shortened to fit Blender's 63 bytes."""
    suffix = f" · seed {seed}" + (f" · {candidate + 1}/{candidates}" if candidates > 1 else "")
    text = " ".join(prompt.split()) or "motion"
    while len((text + suffix).encode()) > 63:
        text = text[:-2] + "…"
    return text + suffix


def _target(job: Job) -> bpy.types.Object:
    obj = bpy.data.objects.get(job.target)
    if obj is None or obj.type != "ARMATURE":
        raise ValueError(f"the target armature {job.target!r} is gone")
    return obj


def _motions(job: Job) -> np.ndarray:
    motions = np.asarray(job.arrays["motions"], dtype=np.float32)
    if motions.ndim != 3 or motions.shape[-1] != humanml3d.FEATURE_DIM:
        raise ValueError(f"backend returned motions of shape {motions.shape}, expected (candidates, T, 263)")
    return motions


@dataclass(frozen=True)
class Take:
    """One candidate ready to be keyed: its Action's name and the keys from scene frame `start` on."""

    name: str
    candidate: int
    start: float
    track: rig_math.PoseTrack
    modes: tuple[str, ...]  # rotation mode of each of `track.bones` (the keys are written in it)
    columns: np.ndarray  # `key_columns_steps(start, track, modes, ...)`: the keys as the write hands them to Blender
    notices: tuple[str, ...] = ()  # what the solve against the evaluated rig wants the animator to know


def notice_text(takes: list[Take] | None) -> str:
    """'' or '; ' + the takes' notices (each once), for the job's message."""
    notes = list(dict.fromkeys(n for take in takes or () for n in take.notices))
    return "".join(f"; {n}" for n in notes)


def _rotation_modes(obj: bpy.types.Object, bones: tuple[str, ...]) -> tuple[str, ...]:
    """The bones' rotation modes: keys are written in each bone's own mode (the user's Euler keys keep working)."""
    pbs = pose_bones(obj)
    return tuple(pbs[b].rotation_mode for b in bones)


def prepare_steps(job: Job) -> Steps[list[Take]]:
    """Everything before the keyframe write, in slices (decode, placement, IK, quaternions): plain numpy, run by the
    timer across ticks so that the undo-registered write that follows is short. Captions need none."""
    if job.kind == "caption":
        return []
    obj = _target(job)
    target = armature.target_of(obj)
    bones = rig_math.driven_bone_names(target.bone_map)
    evaluated = rig_solve.needs_solve(obj, target.bone_map)  # constraint-driven controls: solved on the evaluated rig
    motions = _motions(job)
    p = job.params
    user = p.get("user_poses")  # predict / in-between: the user's poses when the button was pressed (KeyedPoses)
    if user is not None and not set(bones) <= set(user.rotations):
        user = None  # the bone map changed since: no anchors
    takes = []
    yield None  # reading the rig's rest (~4.5 ms of RNA access) is a slice of its own
    for c in range(len(motions)):
        joints = humanml3d.features_to_joints(motions[c])
        contacts = motions[c][:, humanml3d.FEATURE_DIM - 4 :]  # contact labels: feet stand where the motion's do
        plant = bool(p.get("plant_feet"))
        if job.kind in ("generate", "shot"):  # a new motion from the start frame (not spliced into the user's)
            placed = rig_math.place_motion(target, joints, contacts, not p.get("root_motion", True), plant)
            yield None  # decoding and placement (~1.5 ms), then the IK in chunks
            track = yield from rig_math.pose_track_steps(placed, p["fps"], target, p.get("frames"))
            notices: tuple[str, ...] = ()
            if evaluated:
                scene_rate = rig_math.joints_at_scene_rate(placed, p["fps"], p.get("frames"))
                track, report = yield from rig_solve.solve_steps(obj, target, scene_rate, track)
                notices = tuple(report.notices)
            name = action_name(p["prompt"], p["seed"], c, len(motions))
            start = float(p["start_frame"])
            modes = _rotation_modes(obj, track.bones)
            columns = yield from key_columns_steps(start, track, modes)
            takes.append(Take(name, c, start, track, modes, columns, notices))
            continue
        # Predict / in-between: the decoded motion starts at the origin facing +Z; in the rig's proportions it is placed
        # onto the user's animation by the yaw + translation that best fits its known frames (`known`, 20 fps) to the
        # frames read (world, 20 fps → the rig's character frame).
        context = target.frame.world_to_character(np.asarray(p["context_joints"]))
        known = np.asarray(p["known"], dtype=bool)  # (K,) frames of the result that are the user's
        proportioned = rig_math.place_motion(target, joints, contacts, plant=plant)
        shared = min(len(joints), len(context), len(known))
        fit = known[:shared]
        placed = fit_ground_transform(proportioned[:shared][fit], context[:shared][fit]).apply(proportioned)
        yield None
        track = yield from rig_math.pose_track_steps(placed, p["fps"], target)
        first, span = float(p["first_frame"]), (float(p["span"][0]), float(p["span"][1]))
        frames = first + np.arange(track.frames)
        inside = (frames >= span[0] - 1e-6) & (frames <= span[1] + 1e-6)
        notices = ()
        if evaluated:
            scene_rate = rig_math.joints_at_scene_rate(placed, p["fps"], track.frames)
            track, report = yield from rig_solve.solve_steps(obj, target, scene_rate, track, inside)
            notices = tuple(report.notices)
        if p.get("pass_through") and user is not None:  # In-between Keys: exactly through every keyed pose
            track = rig_math.pass_through_keys(track, frames, user)
        clipped = track.sliced(inside)
        name = action_name(f"{p['prompt']} {p.get('source_action') or ''}", p["seed"], c, len(motions))
        modes = _rotation_modes(obj, track.bones)
        columns = yield from key_columns_steps(frames[inside], clipped, modes, user)
        takes.append(Take(name, c, first, clipped, modes, columns, notices))
    return takes


def _tag(action: bpy.types.Action, job: Job, take: Take) -> None:
    action.use_fake_user = True
    action[PROP_GROUP] = job.request_id
    action[PROP_CANDIDATE] = take.candidate
    action[PROP_PROMPT] = str(job.params.get("prompt", job.kind))
    action[PROP_SEED] = int(job.params.get("seed", 0))


def write_takes(job: Job, takes: list[Take]) -> list[bpy.types.Action]:
    """The keyframe write (inside the undo-registered operator): each take → a new Action; the first is assigned.

    Generate: Actions hold exactly the generated keys. Predict / in-between: each Action is a copy of the user's
    Action with only the keys inside `params['span']` replaced (keys on `params['keep_frames']` stay, per curve).
    The user's Action itself is never modified; when the armature was its only user it gets a fake user (Blender
    drops Actions without users when saving). Rotations are keyed in each bone's own rotation mode (quaternion,
    any Euler order, axis-angle), so switching back to the user's Action plays their keys as before.
    """
    obj = _target(job)
    spliced = job.kind in ("predict", "inbetween")
    source = bpy.data.actions.get(job.params.get("source_action") or "") if spliced else None
    slot = job.params.get("source_slot") if spliced else None
    span = (float(job.params["span"][0]), float(job.params["span"][1])) if spliced else None
    previous = obj.animation_data.action if obj.animation_data is not None else None
    if previous is not None and previous.users <= 1:
        previous.use_fake_user = True  # it loses its only user now: without one, saving the file would drop it
    bones = pose_bones(obj)
    for take in takes:  # each bone keeps its rotation mode; set only if it was changed while the keys were prepared
        for name, mode in zip(take.track.bones, take.modes, strict=True):
            if bones[name].rotation_mode != mode:
                bones[name].rotation_mode = mode  # type: ignore[assignment]  # one of the modes read from Blender
    actions = []
    for take in takes:
        action = source.copy() if source is not None else bpy.data.actions.new(take.name)
        action.name = take.name
        _tag(action, job, take)
        actions.append(action)
    for action, take in reversed(list(zip(actions, takes, strict=True))):  # the first one stays assigned
        keep = [float(f) for f in job.params.get("keep_frames", ())]
        write_track(Channels(obj, action, slot), take.start, take.track, span, take.columns, keep, take.modes)
    obj["motiongpt3_last_group"] = job.request_id
    return actions


def write_result(job: Job) -> list[bpy.types.Action]:
    """Prepare (all slices at once) and write: for scripts and tests that do not go through the timer."""
    return write_takes(job, run_steps(prepare_steps(job)))


def caption_segments(job: Job) -> list[tuple[float, float, str]]:
    """(start_s, end_s, caption) of a caption job: the server's `segments`, or the whole clip as one segment."""
    segments = job.fields.get("segments")
    if isinstance(segments, list) and segments:
        return [(float(g["start_s"]), float(g["end_s"]), str(g["caption"]).strip()) for g in segments]
    return [(0.0, float(job.params.get("frames20", 0)) / 20.0, str(job.fields.get("caption", "")).strip())]


def marker_name(caption: str) -> str:
    """A timeline marker's name for a caption (Blender keeps at most 63 bytes)."""
    if len(caption.encode("utf-8")) <= MARKER_NAME_BYTES:
        return caption
    while len((caption + "…").encode("utf-8")) > MARKER_NAME_BYTES:
        caption = caption[:-1]
    return caption.rstrip() + "…"


def place_caption_markers(
    scene: bpy.types.Scene, first: int, last: int, fps: float, segments: list[tuple[float, float, str]]
) -> list[bpy.types.TimelineMarker]:
    """One timeline marker per segment at its first scene frame (the read started at `first`, at `fps`); markers an
    earlier caption placed in first..last are replaced, the user's own markers are left alone."""
    placed = [tuple(m) for m in json.loads(scene.get(PROP_MARKERS, "[]"))]
    stale = {(frame, name) for frame, name in placed if first <= frame <= last}
    for marker in list(scene.timeline_markers):
        if (marker.frame, marker.name) in stale:
            scene.timeline_markers.remove(marker)
    markers = []
    for start_s, _, caption in segments:
        frame = min(last, first + round(start_s * fps))
        markers.append(scene.timeline_markers.new(marker_name(caption), frame=frame))
    kept = [entry for entry in placed if entry not in stale] + [(m.frame, m.name) for m in markers]
    scene[PROP_MARKERS] = json.dumps(kept)
    return markers


def store_caption(job: Job, scene: bpy.types.Scene | None = None) -> str:
    """The caption of a caption job, stored on the Action it was read from (custom property); a caption of a read
    range (the Caption button, not Caption All) also gets one timeline marker per segment on `scene`."""
    caption = str(job.fields.get("caption", "")).strip()
    action = bpy.data.actions.get(job.params.get("action") or "")
    if action is not None:
        action[PROP_CAPTION] = caption
        segments = caption_segments(job)
        if len(segments) > 1:
            action[PROP_SEGMENTS] = json.dumps([list(g) for g in segments])
        elif PROP_SEGMENTS in action:
            del action[PROP_SEGMENTS]
    if scene is not None and "first" in job.params:
        params = job.params
        place_caption_markers(scene, params["first"], params["last"], params["fps"], caption_segments(job))
    return caption
