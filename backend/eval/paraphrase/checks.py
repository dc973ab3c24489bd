"""Declarative, measurable checks on generated joints (pure numpy): each check spec -> pass/fail and the measured value.

Joints are (T, 22, 3): SMPL-22 in HumanML3D order, Y-up metres, 20 fps by default. Directions are relative to the
body's facing in the first frames (forward = facing, left = the body's left); yaw is counter-clockwise seen from
above (a left turn is positive). Heights are above the clip's floor (a low percentile of the lowest foot joint).

A spec is a dict with a "type" and that type's parameters (see CHECK_PARAMS); every spec may add "window": [a, b],
fractions of the clip (0 <= a < b <= 1) that the check looks at. `evaluate_check(spec, joints)` returns a
CheckResult: passed, the measured value, and the frame of the event that decided it (used by "order").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

FPS = 20.0
UP = np.array([0.0, 1.0, 0.0])

# SMPL-22 joint indices (HumanML3D order)
PELVIS, L_HIP, R_HIP = 0, 1, 2
L_ANKLE, R_ANKLE, L_FOOT, R_FOOT = 7, 8, 10, 11
NECK, HEAD = 12, 15
L_SHOULDER, R_SHOULDER, L_WRIST, R_WRIST = 16, 17, 20, 21
JOINTS_BY_NAME = {
    "pelvis": 0, "left_hip": 1, "right_hip": 2, "spine1": 3, "left_knee": 4, "right_knee": 5, "spine2": 6,
    "left_ankle": 7, "right_ankle": 8, "spine3": 9, "left_foot": 10, "right_foot": 11, "neck": 12,
    "left_collar": 13, "right_collar": 14, "head": 15, "left_shoulder": 16, "right_shoulder": 17,
    "left_elbow": 18, "right_elbow": 19, "left_wrist": 20, "right_wrist": 21,
}  # fmt: skip
SIDES = ("left", "right")
FOOT_JOINTS = {"left": (L_ANKLE, L_FOOT), "right": (R_ANKLE, R_FOOT)}
WRIST = {"left": L_WRIST, "right": R_WRIST}
SHOULDER = {"left": L_SHOULDER, "right": R_SHOULDER}
SPEED_SPAN = 10  # frames (0.5 s): speeds are net displacement over this span, so a walk's sway does not count
FLOOR_SPAN = 15  # frames (0.75 s) either side: the floor under a frame is the lowest foot point this close in time


class CheckSpecError(ValueError):
    """A check spec with an unknown type, a missing or unknown parameter, or a value out of range."""


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check: passed, the measured value (unit in `unit`), the deciding frame (or None)."""

    passed: bool
    value: float
    unit: str
    event: int | None = None
    detail: str = ""


@dataclass(frozen=True)
class Body:
    """Per-clip quantities shared by the checks (computed once per joints array)."""

    joints: np.ndarray  # (T, 22, 3) float64
    fps: float
    floor: np.ndarray  # (T,) y of the floor under the body per frame
    facing: np.ndarray  # (T, 3) unit horizontal facing per frame
    left: np.ndarray  # (T, 3) unit horizontal left per frame
    yaw: np.ndarray  # (T,) unwrapped yaw in degrees, counter-clockwise seen from above (+ = left)
    facing0: np.ndarray  # (3,) initial facing (mean of the first frames)
    left0: np.ndarray  # (3,) initial left

    @property
    def frames(self) -> int:
        return len(self.joints)


def _horizontal_unit(v: np.ndarray) -> np.ndarray:
    v = np.array(v, dtype=np.float64)
    v[..., 1] = 0.0
    norm = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.maximum(norm, 1e-9)


def analyse(joints: np.ndarray, fps: float = FPS) -> Body:
    """(T, 22, 3) joints -> Body. Raises CheckSpecError for a wrong shape or non-finite values."""
    joints = np.asarray(joints, dtype=np.float64)
    if joints.ndim != 3 or joints.shape[1:] != (22, 3) or len(joints) < 2:
        raise CheckSpecError(f"joints: expected (T >= 2, 22, 3), got {joints.shape}")
    if not np.isfinite(joints).all():
        raise CheckSpecError("joints: contains NaN or infinite values")
    lowest_foot = joints[:, [L_ANKLE, R_ANKLE, L_FOOT, R_FOOT], 1].min(axis=1)
    padded = np.pad(lowest_foot, FLOOR_SPAN, mode="edge")
    floor = np.lib.stride_tricks.sliding_window_view(padded, 2 * FLOOR_SPAN + 1).min(axis=1)
    across = (joints[:, L_HIP] - joints[:, R_HIP]) + (joints[:, L_SHOULDER] - joints[:, R_SHOULDER])
    left = _horizontal_unit(across)
    facing = _horizontal_unit(np.cross(left, UP))
    yaw = np.degrees(np.unwrap(np.arctan2(facing[:, 0], facing[:, 2])))
    k = min(3, len(joints))
    left0 = _horizontal_unit(across[:k].mean(axis=0))
    facing0 = _horizontal_unit(np.cross(left0, UP))
    return Body(joints, float(fps), floor, facing, left, yaw, facing0, left0)


# --- helpers -----------------------------------------------------------------------------------------------------


def _window(spec: dict, body: Body) -> tuple[int, int]:
    """[start, stop) frames of the spec's window (at least two frames)."""
    a, b = spec.get("window", (0.0, 1.0))
    start = min(round(a * body.frames), body.frames - 2)
    stop = max(round(b * body.frames), start + 2)
    return start, min(stop, body.frames)


def _first(mask: np.ndarray, offset: int) -> int | None:
    hits = np.flatnonzero(mask)
    return int(hits[0]) + offset if len(hits) else None


def _longest_stretch(mask: np.ndarray) -> tuple[int, int]:
    """(first index, length) of the longest run of True in `mask` ((0, 0) when there is none)."""
    best, best_start, run = 0, 0, 0
    for i, flag in enumerate(mask):
        run = run + 1 if flag else 0
        if run > best:
            best, best_start = run, i - run + 1
    return best_start, best


def _longest_run(mask: np.ndarray) -> int:
    return _longest_stretch(mask)[1]


def _foot_height(body: Body, side: str, start: int, stop: int) -> np.ndarray:
    """(n,) height above the floor of the lowest of the side's ankle and toe joints."""
    return body.joints[start:stop][:, FOOT_JOINTS[side], 1].min(axis=1) - body.floor[start:stop]


def _sides(side: str) -> tuple[str, ...]:
    return SIDES if side == "both" else (side,)


def _smooth(x: np.ndarray, width: int = 3) -> np.ndarray:
    if len(x) < width:
        return x
    kernel = np.ones(width) / width
    padded = np.concatenate([np.repeat(x[:1], width // 2), x, np.repeat(x[-1:], width - 1 - width // 2)])
    return np.convolve(padded, kernel, mode="valid")


def _between(value: float, low: float | None, high: float | None) -> bool:
    return (low is None or value >= low) and (high is None or value <= high)


# --- the checks --------------------------------------------------------------------------------------------------


def check_travel(spec: dict, body: Body) -> CheckResult:
    """Pelvis displacement over the window along a direction of the initial facing, >= min_m, and the sideways
    component no larger than `max_off_axis` times it (default 1: the requested direction dominates)."""
    start, stop = _window(spec, body)
    direction, min_m = spec["direction"], float(spec["min_m"])
    pelvis = body.joints[start:stop, PELVIS]
    d = pelvis - pelvis[0]
    forward, leftward = d @ body.facing0, d @ body.left0
    along, across = {
        "forward": (forward, leftward),
        "backward": (-forward, leftward),
        "left": (leftward, forward),
        "right": (-leftward, forward),
    }[direction]
    value, off = float(along[-1]), float(abs(across[-1]))
    passed = value >= min_m and off <= float(spec.get("max_off_axis", 1.0)) * max(value, 0.0)
    detail = f"{direction} {value:.2f} m, sideways {off:.2f} m"
    return CheckResult(passed, value, "m", _first(along >= min_m, start), detail)


def check_stationary(spec: dict, body: Body) -> CheckResult:
    """The pelvis stays within max_m (horizontally) of where it was at the window's start."""
    start, stop = _window(spec, body)
    pelvis = body.joints[start:stop, PELVIS]
    d = pelvis - pelvis[0]
    d[:, 1] = 0.0
    value = float(np.linalg.norm(d, axis=1).max())
    return CheckResult(value <= float(spec["max_m"]), value, "m", start, f"wandered {value:.2f} m")


def windowed_speeds(body: Body, start: int, stop: int) -> np.ndarray:
    """Horizontal pelvis speeds (m/s) as net displacement over SPEED_SPAN frames, for spans inside the window."""
    pelvis = body.joints[start:stop, PELVIS][:, [0, 2]]
    span = min(SPEED_SPAN, len(pelvis) - 1)
    return np.linalg.norm(pelvis[span:] - pelvis[:-span], axis=1) * body.fps / span


SPEED_STATS: dict[str, Callable[[np.ndarray], float]] = {
    "median": lambda s: float(np.median(s)),
    "mean": lambda s: float(np.mean(s)),
    "p90": lambda s: float(np.percentile(s, 90)),
    "max": lambda s: float(np.max(s)),
}


def check_speed(spec: dict, body: Body) -> CheckResult:
    """A statistic (median by default; mean, p90, max) of the windowed pelvis speed lies in [min, max] m/s."""
    start, stop = _window(spec, body)
    speeds = windowed_speeds(body, start, stop)
    stat = spec.get("stat", "median")
    value = float(SPEED_STATS[stat](speeds))
    low, high = spec.get("min"), spec.get("max")
    event = _first(speeds >= low, start) if low is not None else start
    return CheckResult(_between(value, low, high), value, "m/s", event, f"{stat} speed {value:.2f} m/s")


def check_heading(spec: dict, body: Body) -> CheckResult:
    """The signed heading change over the window (degrees, + = left / counter-clockwise seen from above) lies in
    [min_deg, max_deg]; with "abs": true its magnitude does (a turn either way, e.g. "turns around")."""
    start, stop = _window(spec, body)
    yaw = body.yaw[start:stop]
    k = min(3, len(yaw) // 2)
    change = yaw - yaw[:k].mean()
    value = float(yaw[-k:].mean() - yaw[:k].mean())
    if spec.get("abs", False):
        change, value = np.abs(change), abs(value)
    low, high = spec.get("min_deg"), spec.get("max_deg")
    if low is not None and low > 0:
        event = _first(change >= low, start)
    elif high is not None and high < 0:
        event = _first(change <= high, start)
    else:
        event = start
    return CheckResult(_between(value, low, high), value, "deg", event, f"heading change {value:+.0f} deg")


def _standing_pelvis(body: Body) -> float:
    return float(np.percentile(body.joints[:, PELVIS, 1], 90))


def check_pelvis_drop(spec: dict, body: Body) -> CheckResult:
    """How far the pelvis goes below its standing height (the clip's 90th percentile): its lowest point in the
    window (`at` = "min", default) or its height at the window's end (`at` = "end"); in [min_m, max_m]."""
    start, stop = _window(spec, body)
    ref = _standing_pelvis(body)
    y = _smooth(body.joints[start:stop, PELVIS, 1])
    low = float(y[-3:].mean()) if spec.get("at", "min") == "end" else float(y.min())
    value = ref - low
    low_m, high_m = spec.get("min_m"), spec.get("max_m")
    event = _first(ref - y >= low_m, start) if low_m is not None else start + int(np.argmin(y))
    return CheckResult(_between(value, low_m, high_m), value, "m", event, f"pelvis drop {value:.2f} m")


def check_pelvis_rise(spec: dict, body: Body) -> CheckResult:
    """Pelvis height at the window's end minus at its start (metres) >= min_m (standing up, climbing)."""
    start, stop = _window(spec, body)
    y = body.joints[start:stop, PELVIS, 1]
    k = min(3, len(y) // 2)
    rise = y - y[:k].mean()
    value = float(y[-k:].mean() - y[:k].mean())
    min_m = float(spec["min_m"])
    return CheckResult(value >= min_m, value, "m", _first(rise >= min_m, start), f"pelvis rise {value:.2f} m")


def check_pelvis_low(spec: dict, body: Body) -> CheckResult:
    """The fraction of window frames with the pelvis at most max_m above the floor is >= min_fraction (crawling,
    crouching)."""
    start, stop = _window(spec, body)
    low = body.joints[start:stop, PELVIS, 1] - body.floor[start:stop] <= float(spec["max_m"])
    value = float(low.mean())
    return CheckResult(value >= float(spec["min_fraction"]), value, "fraction", _first(low, start))


def check_airborne(spec: dict, body: Body) -> CheckResult:
    """Both feet at least min_height above the floor for >= min_frames consecutive frames (a jump or a hop)."""
    start, stop = _window(spec, body)
    min_height = float(spec.get("min_height", 0.05))
    up = np.minimum(_foot_height(body, "left", start, stop), _foot_height(body, "right", start, stop)) >= min_height
    value = _longest_run(up)
    return CheckResult(value >= int(spec.get("min_frames", 2)), float(value), "frames", _first(up, start))


def check_foot_raised(spec: dict, body: Body) -> CheckResult:
    """The fraction of window frames with the side's foot at least min_height above the floor lies in
    [min_fraction, max_fraction] (hopping on the other foot: this one stays up)."""
    start, stop = _window(spec, body)
    up = _foot_height(body, spec["side"], start, stop) >= float(spec.get("min_height", 0.1))
    value = float(up.mean())
    ok = _between(value, spec.get("min_fraction"), spec.get("max_fraction"))
    return CheckResult(ok, value, "fraction", _first(up, start))


def check_foot_height(spec: dict, body: Body) -> CheckResult:
    """The side's highest foot point above the floor over the window (metres) lies in [min_m, max_m]."""
    start, stop = _window(spec, body)
    height = body.joints[start:stop][:, FOOT_JOINTS[spec["side"]], 1].max(axis=1) - body.floor[start:stop]
    value = float(height.max())
    low = spec.get("min_m")
    event = _first(height >= low, start) if low is not None else start + int(np.argmax(height))
    return CheckResult(_between(value, low, spec.get("max_m")), value, "m", event)


def check_kick(spec: dict, body: Body) -> CheckResult:
    """At some frame the side's ankle is >= min_height above the floor and >= min_forward in front of the pelvis
    (along the body's facing at that frame)."""
    start, stop = _window(spec, body)
    ankle = FOOT_JOINTS[spec["side"]][0]
    j = body.joints[start:stop]
    height = j[:, ankle, 1] - body.floor[start:stop]
    ahead = np.einsum("tc,tc->t", j[:, ankle] - j[:, PELVIS], body.facing[start:stop])
    hit = (height >= float(spec.get("min_height", 0.3))) & (ahead >= float(spec.get("min_forward", 0.2)))
    value = float(np.max(np.where(ahead >= float(spec.get("min_forward", 0.2)), height, 0.0)))
    return CheckResult(bool(hit.any()), value, "m", _first(hit, start), f"ankle {value:.2f} m up while in front")


def _wrist_margin(body: Body, side: str, ref: str, start: int, stop: int) -> np.ndarray:
    """(n,) wrist height minus the reference joint's height (head, neck, or the same side's shoulder)."""
    j = body.joints[start:stop]
    ref_joint = SHOULDER[side] if ref == "shoulder" else JOINTS_BY_NAME[ref]
    return j[:, WRIST[side], 1] - j[:, ref_joint, 1]


def check_wrist_above(spec: dict, body: Body) -> CheckResult:
    """The wrist(s) of `side` (left, right or both at once) are above the reference joint (+ margin) for >=
    min_frames frames of the window."""
    start, stop = _window(spec, body)
    ref, margin = spec.get("ref", "shoulder"), float(spec.get("margin", 0.0))
    margins = np.stack([_wrist_margin(body, s, ref, start, stop) for s in _sides(spec["side"])]).min(axis=0)
    above = margins >= margin
    count = int(above.sum())
    ok = count >= int(spec.get("min_frames", 3))
    return CheckResult(ok, float(margins.max()), "m", _first(above, start), f"{count} frames above the {ref}")


def check_wrist_not_above(spec: dict, body: Body) -> CheckResult:
    """The wrist(s) of `side` (either wrist for "both") are above the reference joint (+ margin) for at most
    max_frames frames of the window (the other arm stays down)."""
    start, stop = _window(spec, body)
    ref, margin = spec.get("ref", "shoulder"), float(spec.get("margin", 0.0))
    margins = np.stack([_wrist_margin(body, s, ref, start, stop) for s in _sides(spec["side"])]).max(axis=0)
    count = int((margins >= margin).sum())
    return CheckResult(count <= int(spec.get("max_frames", 2)), float(count), "frames", start)


def _body_axis(body: Body, axis: str, start: int, stop: int) -> np.ndarray:
    if axis == "vertical":
        return np.broadcast_to(UP, (stop - start, 3))
    return body.left[start:stop] if axis == "lateral" else body.facing[start:stop]


def count_reversals(signal: np.ndarray, amplitude: float) -> int:
    """Direction reversals of `signal` that retreat at least `amplitude` from the running extreme (hysteresis)."""
    reversals, direction = 0, 0
    high = low = float(signal[0])
    for x in signal[1:]:
        x = float(x)
        high, low = max(high, x), min(low, x)
        if direction >= 0 and high - x >= amplitude:
            reversals += direction == 1
            direction, low = -1, x
        elif direction <= 0 and x - low >= amplitude:
            reversals += direction == -1
            direction, high = 1, x
    return reversals


def check_oscillation(spec: dict, body: Body) -> CheckResult:
    """The joint's position along a body axis (lateral, forward, vertical), relative to the pelvis (default) or in
    the world ("relative": "world"), reverses direction >= min_reversals times by at least min_amplitude metres
    (waving, repeated squats or jumps). With "raised": true (a wrist only) just the longest stretch of frames with
    that wrist above its shoulder counts: a wave is side to side while the hand is up, not the raise and the drop."""
    start, stop = _window(spec, body)
    joint = JOINTS_BY_NAME[spec["joint"]]
    if spec.get("raised", False):
        side = "left" if joint == L_WRIST else "right"
        up = _wrist_margin(body, side, "shoulder", start, stop) >= 0.0
        first, length = _longest_stretch(up)
        if length < 3:
            return CheckResult(False, 0.0, "reversals", None, "the wrist is never up for three frames")
        start, stop = start + first, start + first + length
    j = body.joints[start:stop]
    rel = j[:, joint]
    if spec.get("relative", "pelvis") == "pelvis":
        rel = rel - j[:, PELVIS]
    signal = _smooth(np.einsum("tc,tc->t", rel, _body_axis(body, spec.get("axis", "lateral"), start, stop)))
    value = count_reversals(signal, float(spec.get("min_amplitude", 0.05)))
    return CheckResult(value >= int(spec.get("min_reversals", 2)), float(value), "reversals", start)


def check_torso_pitch(spec: dict, body: Body) -> CheckResult:
    """The largest forward lean of the pelvis->neck line from vertical (degrees, along the body's facing) in the
    window lies in [min_deg, max_deg]."""
    start, stop = _window(spec, body)
    j = body.joints[start:stop]
    spine = j[:, NECK] - j[:, PELVIS]
    forward = np.einsum("tc,tc->t", spine, body.facing[start:stop])
    pitch = np.degrees(np.arctan2(forward, spine[:, 1]))
    value = float(pitch.max())
    low = spec.get("min_deg")
    event = _first(pitch >= low, start) if low is not None else start + int(np.argmax(pitch))
    return CheckResult(_between(value, low, spec.get("max_deg")), value, "deg", event, f"max lean {value:.0f} deg")


def check_wrist_thrust(spec: dict, body: Body) -> CheckResult:
    """The side's wrist moves forward (along the body's facing, relative to the pelvis) at >= min_speed m/s and
    reaches >= min_reach metres in front of its shoulder (a punch, a throw)."""
    start, stop = _window(spec, body)
    side = spec["side"]
    j = body.joints[start:stop]
    facing = body.facing[start:stop]
    forward = np.einsum("tc,tc->t", j[:, WRIST[side]] - j[:, PELVIS], facing)
    velocity = np.gradient(forward) * body.fps
    reach = np.einsum("tc,tc->t", j[:, WRIST[side]] - j[:, SHOULDER[side]], facing)
    value = float(velocity.max())
    ok = value >= float(spec.get("min_speed", 2.0)) and float(reach.max()) >= float(spec.get("min_reach", 0.3))
    return CheckResult(ok, value, "m/s", start + int(np.argmax(velocity)), f"reach {reach.max():.2f} m")


def check_any(spec: dict, body: Body) -> CheckResult:
    """At least one of the sub-checks in "of" passes (value: how many do; event: the earliest passing one's)."""
    results = [evaluate_body(sub, body) for sub in spec["of"]]
    passing = [r for r in results if r.passed]
    events = [r.event for r in passing if r.event is not None]
    return CheckResult(bool(passing), float(len(passing)), "checks", min(events) if events else None)


def check_order(spec: dict, body: Body) -> CheckResult:
    """Both sub-checks pass and the event of `first` comes before the event of `then` (value: frames between)."""
    first, then = evaluate_body(spec["first"], body), evaluate_body(spec["then"], body)
    if first.event is None or then.event is None:
        return CheckResult(False, float("nan"), "frames", None, "an event did not happen")
    gap = then.event - first.event
    ok = first.passed and then.passed and gap > 0
    detail = f"first {first.event} ({first.detail or first.value}), then {then.event} ({then.detail or then.value})"
    return CheckResult(ok, float(gap), "frames", then.event, detail)


# --- spec validation and dispatch ----------------------------------------------------------------------------------

# type -> (function, required params, optional params); every spec may also carry "window".
CHECK_PARAMS: dict[str, tuple[Callable[[dict, Body], CheckResult], tuple[str, ...], tuple[str, ...]]] = {
    "travel": (check_travel, ("direction", "min_m"), ("max_off_axis",)),
    "stationary": (check_stationary, ("max_m",), ()),
    "speed": (check_speed, (), ("min", "max", "stat")),
    "heading": (check_heading, (), ("min_deg", "max_deg", "abs")),
    "pelvis_drop": (check_pelvis_drop, (), ("min_m", "max_m", "at")),
    "pelvis_rise": (check_pelvis_rise, ("min_m",), ()),
    "pelvis_low": (check_pelvis_low, ("max_m", "min_fraction"), ()),
    "airborne": (check_airborne, (), ("min_frames", "min_height")),
    "foot_raised": (check_foot_raised, ("side",), ("min_height", "min_fraction", "max_fraction")),
    "foot_height": (check_foot_height, ("side",), ("min_m", "max_m")),
    "kick": (check_kick, ("side",), ("min_height", "min_forward")),
    "wrist_above": (check_wrist_above, ("side",), ("ref", "margin", "min_frames")),
    "wrist_not_above": (check_wrist_not_above, ("side",), ("ref", "margin", "max_frames")),
    "oscillation": (check_oscillation, ("joint",), ("axis", "relative", "raised", "min_reversals", "min_amplitude")),
    "torso_pitch": (check_torso_pitch, (), ("min_deg", "max_deg")),
    "wrist_thrust": (check_wrist_thrust, ("side",), ("min_speed", "min_reach")),
    "order": (check_order, ("first", "then"), ()),
    "any": (check_any, ("of",), ()),
}
ENUMS = {
    "direction": ("forward", "backward", "left", "right"),
    "side": ("left", "right", "both"),
    "ref": ("shoulder", "head", "neck", "pelvis"),
    "stat": ("median", "mean", "p90", "max"),
    "at": ("min", "end"),
    "axis": ("lateral", "forward", "vertical"),
    "relative": ("pelvis", "world"),
    "joint": tuple(JOINTS_BY_NAME),
}
SINGLE_SIDE = {"foot_raised", "foot_height", "kick", "wrist_thrust"}  # "both" makes no sense for these


def validate_check(spec: Any, where: str = "check") -> None:
    """Raise CheckSpecError naming the field when `spec` is not a well-formed check spec."""
    if not isinstance(spec, dict) or "type" not in spec:
        raise CheckSpecError(f"{where}: a check is an object with a 'type' (one of {', '.join(CHECK_PARAMS)})")
    kind = spec["type"]
    if kind not in CHECK_PARAMS:
        raise CheckSpecError(f"{where}.type: unknown check {kind!r}; known: {', '.join(CHECK_PARAMS)}")
    _, required, optional = CHECK_PARAMS[kind]
    for name in required:
        if name not in spec:
            raise CheckSpecError(f"{where}: check {kind!r} needs {name!r}")
    for name, value in spec.items():
        field = f"{where}.{name}"
        if name in ("type",):
            continue
        if name not in required and name not in optional and name != "window":
            raise CheckSpecError(f"{field}: check {kind!r} has no parameter {name!r}")
        if name in ("first", "then"):
            validate_check(value, field)
        elif name == "of":
            if not isinstance(value, list) or not value:
                raise CheckSpecError(f"{field}: expected a non-empty list of checks")
            for i, sub in enumerate(value):
                validate_check(sub, f"{field}[{i}]")
        elif name == "raised" and spec.get("joint") not in ("left_wrist", "right_wrist"):
            raise CheckSpecError(f"{field}: 'raised' applies to left_wrist or right_wrist only")
        elif name in ("abs", "raised"):
            if not isinstance(value, bool):
                raise CheckSpecError(f"{field}: expected true or false, got {value!r}")
        elif name == "window":
            ok = isinstance(value, list | tuple) and len(value) == 2 and all(isinstance(v, int | float) for v in value)
            if not ok or not 0.0 <= value[0] < value[1] <= 1.0:
                raise CheckSpecError(f"{field}: expected [a, b] with 0 <= a < b <= 1, got {value!r}")
        elif name in ENUMS:
            allowed = ENUMS[name][:2] if name == "side" and kind in SINGLE_SIDE else ENUMS[name]
            if value not in allowed:
                raise CheckSpecError(f"{field}: {value!r} is not one of {', '.join(allowed)}")
        elif not isinstance(value, int | float) or isinstance(value, bool) or not np.isfinite(value):
            raise CheckSpecError(f"{field}: expected a number, got {value!r}")
        elif name.endswith(("_m", "_frames", "_fraction", "_height", "_speed", "_reach", "_amplitude", "_reversals")):
            if value < 0:
                raise CheckSpecError(f"{field}: must be >= 0, got {value!r}")


def evaluate_body(spec: dict, body: Body) -> CheckResult:
    """Evaluate one validated spec on an analysed body."""
    return CHECK_PARAMS[spec["type"]][0](spec, body)


def evaluate_check(spec: dict, joints: np.ndarray, fps: float = FPS) -> CheckResult:
    """Validate `spec` and evaluate it on (T, 22, 3) joints."""
    validate_check(spec)
    return evaluate_body(spec, analyse(joints, fps))


def evaluate_checks(specs: list[dict], joints: np.ndarray, fps: float = FPS) -> list[CheckResult]:
    """Every spec on one joints array (the body is analysed once)."""
    for i, spec in enumerate(specs):
        validate_check(spec, f"checks[{i}]")
    body = analyse(joints, fps)
    return [evaluate_body(spec, body) for spec in specs]
