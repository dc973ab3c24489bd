"""A shot read from the scene: the segment list, Empties as waypoints and reach targets (each keyed frame of an
Empty's location is one, at its position then), a Curve object as a path; all in the motion's own frame."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import bpy
import numpy as np

from ._shared import axes, retarget, shot_spec
from .rig_math import RigTarget
from .user_keys import assigned_fcurves

# Mark roles: waypoints of the pelvis, or the joint a reach target moves.
WAYPOINT_ROLES = {
    "WAYPOINT": "Waypoint",
    "PASS": "Pass Through",
    "FACE": "Waypoint, Facing",
}
TARGET_ROLES = {
    "RIGHT_HAND": "right_hand",
    "LEFT_HAND": "left_hand",
    "RIGHT_FOOT": "right_foot",
    "LEFT_FOOT": "left_foot",
    "HEAD": "head",
    "PELVIS": "pelvis",
}
CURVE_SAMPLES = 12  # points per Bezier segment of a path curve
PATH_POINTS = 128  # a longer polyline is resampled to this many points, evenly along its length


class ShotSceneError(ValueError):
    """The scene does not describe a shot that can be sent (the message names the object or the setting)."""


@dataclass(frozen=True)
class MotionFrame:
    """Scene world space (Z up, scene units) -> the result motion's frame (Y up, metres, SMPL proportions): the rig's
    character frame (where a generated motion starts, facing its rest facing), with the pelvis path scaled back by
    the rig's leg length relative to SMPL's (exact for the SMPL-22 armature; other rigs: the same uniform scale)."""

    target: RigTarget

    @property
    def scale(self) -> float:
        return retarget.leg_scale(self.target.rest_joints)

    def point(self, world: np.ndarray) -> np.ndarray:
        """(..., 3) scene world points -> (..., 3) motion-frame points (x, y, z)."""
        frame = self.target.frame
        yup = axes.zup_to_yup(np.asarray(world, dtype=np.float64) * frame.metres_per_unit)
        return frame.world_to_character(yup) / self.scale

    def facing_deg(self, world_direction: np.ndarray) -> float:
        """A scene world direction -> its facing in the motion frame (degrees, 0 = +Z, 90 = +X)."""
        origin = self.point(np.zeros(3))
        d = self.point(np.asarray(world_direction, dtype=np.float64)) - origin
        return float(np.degrees(np.arctan2(d[0], d[2])))


def _location_keys(obj: bpy.types.Object) -> list[tuple[float, np.ndarray]]:
    """(frame, world location) at each keyed frame of the object's location F-curves (its parent held still, its
    rotation and scale as they are now)."""
    _, fcurves = assigned_fcurves(obj)
    curves = {fc.array_index: fc for fc in fcurves if fc.data_path == "location"}
    frames = sorted({round(float(k.co[0]), 4) for fc in curves.values() for k in fc.keyframe_points})
    basis = np.array(obj.matrix_basis)
    outer = np.array(obj.matrix_world) @ np.linalg.inv(basis)  # parent and parent inverse: what is not keyed here
    out = []
    for frame in frames:
        local = [curves[i].evaluate(frame) if i in curves else obj.location[i] for i in range(3)]
        moved = basis.copy()
        moved[:3, 3] = local
        out.append((frame, (outer @ moved)[:3, 3]))
    return out


def curve_polyline(obj: bpy.types.Object, samples: int = CURVE_SAMPLES) -> np.ndarray:
    """The first spline of a Curve object as world points (N, 3): Bezier segments sampled `samples` times each,
    poly and NURBS splines through their control points."""
    data: Any = obj.data
    if obj.type != "CURVE" or not len(data.splines):
        raise ShotSceneError(f"path {obj.name!r}: not a Curve object with a spline")
    spline = data.splines[0]
    if spline.type == "BEZIER":
        points = spline.bezier_points
        co = np.array([tuple(p.co) for p in points])
        left = np.array([tuple(p.handle_left) for p in points])
        right = np.array([tuple(p.handle_right) for p in points])
        local = bezier_polyline(co, left, right, bool(spline.use_cyclic_u), samples)
    else:
        local = np.array([tuple(p.co)[:3] for p in spline.points])
        if spline.use_cyclic_u and len(local):
            local = np.concatenate([local, local[:1]])
    if len(local) < 2:
        raise ShotSceneError(f"path {obj.name!r}: its spline has fewer than 2 points")
    matrix = np.array(obj.matrix_world)
    return evenly(local @ matrix[:3, :3].T + matrix[:3, 3], PATH_POINTS)


def evenly(points: np.ndarray, most: int) -> np.ndarray:
    """A polyline (N, 3) with at most `most` points: resampled evenly along its length when longer."""
    if len(points) <= most:
        return points
    along = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(points, axis=0), axis=1))])
    at = np.linspace(0.0, along[-1], most)
    return np.stack([np.interp(at, along, points[:, k]) for k in range(3)], axis=1)


def bezier_polyline(co: np.ndarray, left: np.ndarray, right: np.ndarray, cyclic: bool, samples: int) -> np.ndarray:
    """Points of a Bezier spline: control points `co` (N, 3) with their handles, each segment at `samples` steps."""
    count = len(co)
    pairs = [(i, i + 1) for i in range(count - 1)] + ([(count - 1, 0)] if cyclic and count > 1 else [])
    if not pairs:
        return co.copy()
    u = np.linspace(0.0, 1.0, samples, endpoint=False)[:, None]
    parts = []
    for a, b in pairs:
        p0, p1, p2, p3 = co[a], right[a], left[b], co[b]
        parts.append((1 - u) ** 3 * p0 + 3 * (1 - u) ** 2 * u * p1 + 3 * (1 - u) * u**2 * p2 + u**3 * p3)
    parts.append(co[pairs[-1][1]][None])
    return np.concatenate(parts)


@dataclass(frozen=True)
class SceneShot:
    """The request fields of a shot and, per waypoint / target, which object and key it came from."""

    fields: dict[str, Any]
    labels: dict[str, str]  # "waypoints[2]" -> "Empty 'Door' at frame 250"


def read_shot(shot_settings: Any, frame: MotionFrame, start_frame: float, fps: float) -> SceneShot:
    """The scene's shot (segments, marks, path) as `shot` request fields; ShotSceneError names what is wrong."""
    segments = [{"text": s.text.strip(), "seconds": float(s.seconds)} for s in shot_settings.segments]
    if not segments:
        raise ShotSceneError("the shot has no segments: add one (+) with a prompt and its seconds")
    for i, segment in enumerate(segments):
        if not segment["text"]:
            raise ShotSceneError(f"segment {i + 1} has no prompt")
    seconds = lambda f: (f - start_frame) / fps  # noqa: E731
    waypoints: list[dict[str, Any]] = []
    targets: list[dict[str, Any]] = []
    labels: dict[str, str] = {}
    for mark in shot_settings.marks:
        obj = mark.obj
        if obj is None:
            continue
        keys = _location_keys(obj)
        if not keys:
            raise ShotSceneError(
                f"{obj.name!r} has no location keys: key its location (I) at the frame the character should be there"
            )
        for key_frame, world in keys:
            point = frame.point(world)
            label = f"{obj.name!r} at frame {key_frame:g}"
            if mark.role in WAYPOINT_ROLES:
                item: dict[str, Any] = {"time": seconds(key_frame), "position": [float(point[0]), float(point[2])]}
                item["arrive"] = mark.role != "PASS"
                if mark.role == "FACE":
                    item["facing"] = frame.facing_deg(np.array(obj.matrix_world.to_3x3().col[1]))
                labels[f"waypoints[{len(waypoints)}]"] = label
                waypoints.append(item)
            else:
                labels[f"targets[{len(targets)}]"] = label
                position = [float(v) for v in point]
                targets.append({"joint": TARGET_ROLES[mark.role], "time": seconds(key_frame), "position": position})
    fields: dict[str, Any] = {"segments": segments, "waypoints": waypoints, "targets": targets}
    if shot_settings.path is not None:
        polyline = frame.point(curve_polyline(shot_settings.path))[:, [0, 2]]
        start, end = seconds(shot_settings.path_start), seconds(shot_settings.path_end)
        fields["paths"] = [{"start": start, "end": end, "points": polyline.tolist()}]
        span = f"frames {shot_settings.path_start}-{shot_settings.path_end}"
        labels["paths[0]"] = f"path {shot_settings.path.name!r} ({span})"
    return SceneShot(fields, labels)


def check_scene_shot(shot: SceneShot) -> Any:
    """The validated `shared.shot.Shot`, or ShotSceneError naming the object behind a refused field."""
    try:
        return shot_spec.shot_from_dict(shot.fields)
    except shot_spec.ShotError as error:
        owner = next((label for key, label in shot.labels.items() if error.field.startswith(key)), None)
        raise ShotSceneError(f"{owner}: {error.message}" if owner else error.message) from None
