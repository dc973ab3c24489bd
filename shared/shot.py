"""A shot: prompt segments over up to a minute, with root waypoints, dense root paths and joint reach targets.

Pure data with validation, shared by the backend (which solves it), the wire protocol, the command line (a JSON file)
and the add-on (which reads it from the scene). Every refusal is a `ShotError` naming the field (`waypoints[1].time`)
and the limit it broke.

Coordinates are the result motion's own frame: Y up, metres, 20 fps; at time 0 the character's pelvis is over the
origin and it faces +Z (its left is +X). Waypoints and paths are floor positions (x, z) of the pelvis; targets are
3-D positions (x, y, z) of a joint. Times are seconds from the start of the shot.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

SHOT_FPS = 20.0  # the model's frame rate: a shot of S seconds has round(S * 20) frames

# Joints a reach target may name -> SMPL-22 joint index (the feet are the ankles, the hands the wrists).
TARGET_JOINTS: dict[str, int] = {
    "pelvis": 0,
    "head": 15,
    "left_hand": 20,
    "right_hand": 21,
    "left_foot": 7,
    "right_foot": 8,
}


@dataclass(frozen=True)
class ShotLimits:
    """What a shot may ask for. The server publishes these in its protocol limits (same names)."""

    max_shot_seconds: float = 60.0
    min_segment_seconds: float = 0.5
    max_segments: int = 24
    max_waypoints: int = 32
    max_paths: int = 4
    max_path_points: int = 256
    max_targets: int = 16
    max_extent_m: float = 50.0  # |x| and |z| of every waypoint, path point and target
    max_target_height_m: float = 3.0  # y of a target (minimum 0, the floor)
    max_speed_m_s: float = 8.0  # the pelvis speed a waypoint or path asks for (a sprint)


DEFAULT_SHOT_LIMITS = ShotLimits()


class ShotError(ValueError):
    """A shot that cannot be made: `field` names the offending value (`segments[2].seconds`), the message the limit."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = f"{field}: {message}"


@dataclass(frozen=True)
class Segment:
    """`seconds` of motion doing what `text` says, continuing from the segment before."""

    text: str
    seconds: float


@dataclass(frozen=True)
class Waypoint:
    """The pelvis over floor point (x, z) at `time` (s). `arrive` False: pass through it at any time between the
    waypoints before and after (or the shot's start and end), not necessarily at `time`. `facing`: degrees the
    character faces there (0 = +Z, the start's facing; 90 = +X, its left); None = along its motion."""

    time: float
    position: tuple[float, float]
    arrive: bool = True
    facing: float | None = None


@dataclass(frozen=True)
class Path:
    """The pelvis follows the polyline `points` (N, 2) of floor points (x, z) from time `start` to `end` (s), at an
    even pace along its length (the first point at `start`, the last at `end`)."""

    start: float
    end: float
    points: tuple[tuple[float, float], ...]

    def array(self) -> np.ndarray:
        """(N, 2) float64 points."""
        return np.asarray(self.points, dtype=np.float64).reshape(-1, 2)


@dataclass(frozen=True)
class ReachTarget:
    """`joint` (a key of TARGET_JOINTS) at 3-D point `position` (x, y, z) at `time` (s)."""

    joint: str
    time: float
    position: tuple[float, float, float]

    @property
    def joint_index(self) -> int:
        return TARGET_JOINTS[self.joint]


@dataclass(frozen=True)
class Shot:
    """Segments played one after the other, and the constraints on the whole shot."""

    segments: tuple[Segment, ...]
    waypoints: tuple[Waypoint, ...] = ()
    paths: tuple[Path, ...] = ()
    targets: tuple[ReachTarget, ...] = ()

    @property
    def seconds(self) -> float:
        return float(sum(s.seconds for s in self.segments))

    @property
    def segment_frames(self) -> list[int]:
        """Frames of each segment at 20 fps (boundaries rounded once, so they add up to `frames`)."""
        ends = np.rint(np.cumsum([s.seconds for s in self.segments]) * SHOT_FPS).astype(int)
        return np.diff(np.concatenate([[0], ends])).tolist()

    @property
    def frames(self) -> int:
        return int(sum(self.segment_frames))

    def frame_of(self, time: float) -> int:
        """The 20 fps frame nearest `time` (s), within the shot."""
        return int(min(max(round(time * SHOT_FPS), 0), self.frames - 1))

    @property
    def constrained(self) -> bool:
        return bool(self.waypoints or self.paths or self.targets)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (`shot_from_dict` reads it back)."""
        data = asdict(self)
        for key in ("segments", "waypoints", "paths", "targets"):
            data[key] = [dict(item) for item in data[key]]
        for path in data["paths"]:
            path["points"] = [list(p) for p in path["points"]]
        for item in data["waypoints"] + data["targets"]:
            item["position"] = list(item["position"])
        return data


# ------------------------------------------------------------------------------------------------ reading


def _number(value: Any, name: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ShotError(name, f"must be a number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value) or not low <= value <= high:
        raise ShotError(name, f"{value:g} is outside {low:g}..{high:g}")
    return value


def _items(data: Mapping[str, Any], name: str, limit: int, required: bool = False) -> list[Any]:
    value = data.get(name)
    if value is None:
        if required:
            raise ShotError(name, "required")
        return []
    if not isinstance(value, list | tuple):
        raise ShotError(name, f"must be a list, got {type(value).__name__}")
    if len(value) > limit:
        raise ShotError(name, f"{len(value)} given; the limit is {limit}")
    if required and not value:
        raise ShotError(name, "must not be empty")
    return list(value)


def _object(value: Any, name: str, keys: Sequence[str], required: Sequence[str]) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ShotError(name, f"must be an object, got {type(value).__name__}")
    if unknown := sorted(set(value) - set(keys)):
        raise ShotError(f"{name}.{str(unknown[0])[:40]}", f"not a field of a {name.split('[')[0][:-1]}")
    for key in required:
        if value.get(key) is None:
            raise ShotError(f"{name}.{key}", "required")
    return dict(value)


def _point(value: Any, name: str, size: int, limits: ShotLimits) -> tuple[float, ...]:
    if not isinstance(value, list | tuple | np.ndarray) or len(value) != size:
        raise ShotError(name, f"must be a list of {size} numbers")
    extent = limits.max_extent_m
    coordinates = [_number(v, f"{name}[{i}]", -extent, extent) for i, v in enumerate(value)]
    if size == 3:
        coordinates[1] = _number(value[1], f"{name}[1]", 0.0, limits.max_target_height_m)
    return tuple(coordinates)


def shot_from_dict(data: Mapping[str, Any], limits: ShotLimits = DEFAULT_SHOT_LIMITS) -> Shot:
    """A validated Shot from its JSON form: {"segments": [{"text", "seconds"}], "waypoints": [{"time", "position":
    [x, z], "arrive", "facing"}], "paths": [{"start", "end", "points": [[x, z], ...]}], "targets": [{"joint", "time",
    "position": [x, y, z]}]}. Unknown keys inside these are refused; ShotError for anything outside the limits."""
    if not isinstance(data, Mapping):
        raise ShotError("shot", f"must be an object, got {type(data).__name__}")
    segments = []
    for i, item in enumerate(_items(data, "segments", limits.max_segments, required=True)):
        name = f"segments[{i}]"
        item = _object(item, name, ("text", "seconds"), ("text", "seconds"))
        if not isinstance(item["text"], str) or not item["text"].strip():
            raise ShotError(f"{name}.text", "must be a non-empty string")
        seconds = _number(item["seconds"], f"{name}.seconds", limits.min_segment_seconds, limits.max_shot_seconds)
        segments.append(Segment(item["text"].strip(), seconds))
    waypoints = []
    for i, item in enumerate(_items(data, "waypoints", limits.max_waypoints)):
        name = f"waypoints[{i}]"
        item = _object(item, name, ("time", "position", "arrive", "facing"), ("time", "position"))
        arrive = item.get("arrive", True)
        if not isinstance(arrive, bool):
            raise ShotError(f"{name}.arrive", f"must be true or false, got {type(arrive).__name__}")
        facing = item.get("facing")
        facing = None if facing is None else _number(facing, f"{name}.facing", -360.0, 360.0)
        time = _number(item["time"], f"{name}.time", 0.0, limits.max_shot_seconds)
        position = _point(item["position"], f"{name}.position", 2, limits)
        waypoints.append(Waypoint(time, (position[0], position[1]), arrive, facing))
    paths = []
    for i, item in enumerate(_items(data, "paths", limits.max_paths)):
        name = f"paths[{i}]"
        item = _object(item, name, ("start", "end", "points"), ("start", "end", "points"))
        start = _number(item["start"], f"{name}.start", 0.0, limits.max_shot_seconds)
        end = _number(item["end"], f"{name}.end", 0.0, limits.max_shot_seconds)
        raw = item["points"]
        if not isinstance(raw, list | tuple) or not 2 <= len(raw) <= limits.max_path_points:
            count = len(raw) if isinstance(raw, list | tuple) else type(raw).__name__
            raise ShotError(f"{name}.points", f"{count} given; a path has 2..{limits.max_path_points} points")
        points = tuple(_point(p, f"{name}.points[{k}]", 2, limits) for k, p in enumerate(raw))
        paths.append(Path(start, end, tuple((p[0], p[1]) for p in points)))
    targets = []
    for i, item in enumerate(_items(data, "targets", limits.max_targets)):
        name = f"targets[{i}]"
        item = _object(item, name, ("joint", "time", "position"), ("joint", "time", "position"))
        if item["joint"] not in TARGET_JOINTS:
            raise ShotError(f"{name}.joint", f"{str(item['joint'])[:40]!r} is not one of {', '.join(TARGET_JOINTS)}")
        time = _number(item["time"], f"{name}.time", 0.0, limits.max_shot_seconds)
        position = _point(item["position"], f"{name}.position", 3, limits)
        targets.append(ReachTarget(item["joint"], time, (position[0], position[1], position[2])))
    shot = Shot(tuple(segments), tuple(waypoints), tuple(paths), tuple(targets))
    check_shot(shot, limits)
    return shot


# --------------------------------------------------------------------------------------------- validation


def _speed_check(name: str, distance: float, seconds: float, limits: ShotLimits) -> None:
    needed = distance / max(seconds, 1e-9)
    if needed > limits.max_speed_m_s:
        raise ShotError(
            name,
            f"{distance:.2f} m in {seconds:.2f} s needs {needed:.1f} m/s; the limit is {limits.max_speed_m_s:g} m/s",
        )


def check_shot(shot: Shot, limits: ShotLimits = DEFAULT_SHOT_LIMITS) -> Shot:
    """Raise ShotError unless the shot is within `limits` and every constraint can be met: times inside the shot and
    apart by at least a frame, speeds a person can run, nothing asked of the pelvis before it can move."""
    count = len(shot.segments)
    if not 1 <= count <= limits.max_segments:
        raise ShotError("segments", f"{count} given; a shot has 1..{limits.max_segments}")
    for i, segment in enumerate(shot.segments):
        if not segment.text.strip():
            raise ShotError(f"segments[{i}].text", "must be a non-empty string")
        _number(segment.seconds, f"segments[{i}].seconds", limits.min_segment_seconds, limits.max_shot_seconds)
    total = shot.seconds
    if total > limits.max_shot_seconds + 1e-9:
        raise ShotError("segments", f"{total:g} s in all; the limit is {limits.max_shot_seconds:g} s")
    frame = 1.0 / SHOT_FPS
    for name, items, limit in (
        ("waypoints", shot.waypoints, limits.max_waypoints),
        ("paths", shot.paths, limits.max_paths),
        ("targets", shot.targets, limits.max_targets),
    ):
        if len(items) > limit:
            raise ShotError(name, f"{len(items)} given; the limit is {limit}")

    order = sorted(range(len(shot.waypoints)), key=lambda i: shot.waypoints[i].time)
    previous_time, previous_point, previous_name = 0.0, np.zeros(2), "the start"
    for i in order:
        waypoint, name = shot.waypoints[i], f"waypoints[{i}]"
        if not frame <= waypoint.time <= total:
            raise ShotError(f"{name}.time", f"{waypoint.time:g} s is outside {frame:g}..{total:g} s (the shot)")
        if waypoint.time - previous_time < frame - 1e-9 and previous_name != "the start":
            raise ShotError(f"{name}.time", f"{waypoint.time:g} s is within one frame ({frame:g} s) of {previous_name}")
        point = np.asarray(waypoint.position, dtype=np.float64)
        if waypoint.arrive:
            distance = float(np.linalg.norm(point - previous_point))
            _speed_check(f"{name}.position", distance, waypoint.time - previous_time, limits)
            previous_time, previous_point = waypoint.time, point
        previous_name = name
    for i, path in enumerate(shot.paths):
        name = f"paths[{i}]"
        if not 0.0 <= path.start < path.end <= total + 1e-9:
            raise ShotError(f"{name}.end", f"the time range {path.start:g}..{path.end:g} s must lie in 0..{total:g} s")
        if path.end - path.start < 2 * frame:
            raise ShotError(f"{name}.end", f"the path lasts {path.end - path.start:g} s; at least {2 * frame:g} s")
        points = path.array()
        if not 2 <= len(points) <= limits.max_path_points:
            raise ShotError(f"{name}.points", f"{len(points)} given; a path has 2..{limits.max_path_points} points")
        length = float(np.linalg.norm(np.diff(points, axis=0), axis=1).sum())
        _speed_check(f"{name}.points", length, path.end - path.start, limits)
        if path.start < frame:
            _speed_check(f"{name}.points", float(np.linalg.norm(points[0])), max(path.start, frame), limits)
    for i, target in enumerate(shot.targets):
        if not 0.0 <= target.time <= total:
            raise ShotError(f"targets[{i}].time", f"{target.time:g} s is outside 0..{total:g} s (the shot)")
        if target.joint not in TARGET_JOINTS:
            raise ShotError(f"targets[{i}].joint", f"{target.joint!r} is not one of {', '.join(TARGET_JOINTS)}")
    return shot


@dataclass(frozen=True)
class ShotRequest:
    """A shot with the sampling options of `generate` (what the CLI's JSON file and the protocol carry)."""

    shot: Shot
    seed: int = 0
    candidates: int = 1
    guidance: float | None = None
    steps: int | None = None


def shot_request_from_dict(data: Mapping[str, Any], limits: ShotLimits = DEFAULT_SHOT_LIMITS) -> ShotRequest:
    """A shot file: the shot's keys plus optional "seed", "candidates", "guidance", "steps"."""
    if not isinstance(data, Mapping):
        raise ShotError("shot", f"must be an object, got {type(data).__name__}")
    options = ("seed", "candidates", "guidance", "steps")
    shot_keys = ("segments", "waypoints", "paths", "targets")
    if unknown := sorted(set(data) - set(options) - set(shot_keys)):
        raise ShotError(str(unknown[0])[:40], "not a field of a shot")
    shot = shot_from_dict({k: data[k] for k in shot_keys if k in data}, limits)
    values: dict[str, Any] = {}
    for key, low, high in (("seed", 0, 2**32 - 1), ("candidates", 1, 8), ("steps", 2, 1000)):
        if data.get(key) is not None:
            value = data[key]
            if isinstance(value, bool) or not isinstance(value, int):
                raise ShotError(key, f"must be an integer, got {type(value).__name__}")
            if not low <= value <= high:
                raise ShotError(key, f"{value} is outside {low}..{high}")
            values[key] = value
    if data.get("guidance") is not None:
        values["guidance"] = _number(data["guidance"], "guidance", 0.0, 20.0)
    return ShotRequest(shot, **values)
