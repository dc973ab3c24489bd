"""Turning a finished job into Blender data: new Actions for motion, captions on Actions (main thread only)."""

from __future__ import annotations

import bpy
import numpy as np

from . import armature, rig_math
from ._shared import fit_ground_transform, humanml3d
from .action_io import Channels, write_track
from .jobs import Job

PROP_PROMPT = "motiongpt3_prompt"
PROP_SEED = "motiongpt3_seed"
PROP_GROUP = "motiongpt3_group"  # request id of the result an Action belongs to (candidate list)
PROP_CANDIDATE = "motiongpt3_candidate"
PROP_CAPTION = "motiongpt3_caption"


def action_name(prompt: str, seed: int, candidate: int, candidates: int) -> str:
    """'<prompt> · seed <n>' (+ ' · k/N' for several candidates), prompt shortened to fit Blender's 63 bytes."""
    suffix = f" · seed {seed}" + (f" · {candidate + 1}/{candidates}" if candidates > 1 else "")
    text = " ".join(prompt.split()) or "motion"
    while len((text + suffix).encode()) > 63:
        text = text[:-2] + "…"
    return text + suffix


def _target(job: Job) -> bpy.types.Object:
    obj = bpy.data.objects.get(job.target)
    if not armature.is_smpl_armature(obj):
        raise ValueError(f"the target armature {job.target!r} is gone or is not an SMPL-22 armature")
    return obj


def _motions(job: Job) -> np.ndarray:
    motions = np.asarray(job.arrays["motions"], dtype=np.float32)
    if motions.ndim != 3 or motions.shape[-1] != humanml3d.FEATURE_DIM:
        raise ValueError(f"backend returned motions of shape {motions.shape}, expected (candidates, T, 263)")
    return motions


def _new_action(name: str, job: Job, candidate: int) -> bpy.types.Action:
    action = bpy.data.actions.new(name)
    action.use_fake_user = True
    action[PROP_GROUP] = job.request_id
    action[PROP_CANDIDATE] = candidate
    action[PROP_PROMPT] = str(job.params.get("prompt", job.kind))
    action[PROP_SEED] = int(job.params.get("seed", 0))
    return action


def write_generated(job: Job) -> list[bpy.types.Action]:
    """Each candidate → a new Action keyed from the start frame at the scene rate; the first one is assigned."""
    obj = _target(job)
    names = armature.JOINT_NAMES
    heads, rotations = armature.bone_rest(obj, names)
    motions = _motions(job)
    p = job.params
    actions = []
    for c in range(len(motions)):
        joints = humanml3d.features_to_joints(motions[c])
        track = rig_math.pose_track(joints, p["fps"], heads, rotations, p.get("frames"), p.get("root_motion", True))
        action = _new_action(action_name(p["prompt"], p["seed"], c, len(motions)), job, c)
        actions.append((action, track))
    for pb in obj.pose.bones:
        pb.rotation_mode = "QUATERNION"
    for action, track in reversed(actions):  # every candidate gets a slot for this object; the first stays assigned
        write_track(Channels(obj, action), names, float(p["start_frame"]), track)
    obj["motiongpt3_last_group"] = job.request_id
    return [a for a, _ in actions]


def write_spliced(job: Job) -> list[bpy.types.Action]:
    """Predict / in-between: each candidate → a copy of the user's Action with only the generated span replaced.

    The decoded motion starts at the origin facing +Z; it is placed onto the user's animation by the yaw +
    translation that best fits its known frames (`params['known']`, 20 fps) to the frames that were read.
    """
    obj = _target(job)
    names = armature.JOINT_NAMES
    heads, rotations = armature.bone_rest(obj, names)
    motions = _motions(job)
    p = job.params
    context = np.asarray(p["context_joints"])  # (K, 22, 3) armature space, Y-up, 20 fps
    known = np.asarray(p["known"], dtype=bool)  # (K,) frames of the result that are the user's
    source = bpy.data.actions.get(p.get("source_action") or "")
    actions = []
    for c in range(len(motions)):
        joints = humanml3d.features_to_joints(motions[c])
        shared = min(len(joints), len(context), len(known))
        fit = known[:shared]
        placed = fit_ground_transform(joints[:shared][fit], context[:shared][fit]).apply(joints)
        track = rig_math.pose_track(placed, p["fps"], heads, rotations)
        action = source.copy() if source is not None else bpy.data.actions.new("motion")
        action.name = action_name(f"{p['prompt']} {source.name if source else ''}", p["seed"], c, len(motions))
        action.use_fake_user = True
        for key, value in (
            (PROP_GROUP, job.request_id),
            (PROP_CANDIDATE, c),
            (PROP_PROMPT, p["prompt"]),
            (PROP_SEED, p["seed"]),
        ):
            action[key] = value
        actions.append((action, track))
    for pb in obj.pose.bones:
        pb.rotation_mode = "QUATERNION"
    slot = p.get("source_slot")
    first = float(p["first_frame"])
    span = (float(p["span"][0]), float(p["span"][1]))
    for action, track in reversed(actions):
        frames = first + np.arange(track.frames)
        inside = (frames >= span[0] - 1e-6) & (frames <= span[1] + 1e-6)
        offset = int(np.argmax(inside))
        clipped = rig_math.PoseTrack(track.fps, track.quaternions[inside], track.root_locations[inside])
        write_track(Channels(obj, action, slot), names, first + offset, clipped, span)
    obj["motiongpt3_last_group"] = job.request_id
    return [a for a, _ in actions]


def store_caption(job: Job) -> str:
    """The caption of a caption job, stored on the Action it was read from (custom property)."""
    caption = str(job.fields.get("caption", "")).strip()
    action = bpy.data.actions.get(job.params.get("action") or "")
    if action is not None:
        action[PROP_CAPTION] = caption
    return caption
