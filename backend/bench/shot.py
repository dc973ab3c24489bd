"""`motiongpt3 bench shot`: shots on one model, each constrained shot beside the same shot without constraints (same
run, same seeds): constraint errors (cm) at waypoints / along paths / at reach targets, foot sliding on contact frames
(cm/s), peak jerk at segment joins against plain concatenation of separately generated segments, each segment's text
check against a single-prompt generation of its text, and the time per 10 s of motion."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from backend.eval.text_checks import check_kind, passes
from shared.motion.humanml3d import features_to_joints
from shared.motion.shot_math import (
    constraint_errors,
    facing_of_joints,
    foot_sliding,
    peak_jerk_near,
    root_path,
    sliding_per_speed,
)
from shared.shot import SHOT_FPS, Segment, Shot, Waypoint, shot_from_dict

GOALS = {
    "waypoint_cm": 10.0,
    "path_mean_cm": 15.0,
    "target_cm": 5.0,
    "added_sliding_cm_s": 1.0,
    "join_jerk_ratio": 5.0,
    "seconds_per_10s": 1.0,
}

WALK, WAVE = "a person walks forward", "a person waves the right hand"

# The scenarios. Positions are metres in the shot's frame (start at the origin facing +Z, +X its left). The waypoints
# ask for 0.55-0.6 m/s; demo models walk these segments at 0.45-0.7 m/s unconstrained, and their feet glide at that
# pace, which is why `natural` exists.
SCENARIOS: dict[str, dict[str, Any]] = {
    "waypoints": {  # the end-to-end test's shot: 3 segments, 25 s, two waypoints
        "segments": [{"text": WALK, "seconds": 10}, {"text": WAVE, "seconds": 5}, {"text": WALK, "seconds": 10}],
        "waypoints": [{"time": 9, "position": [2.0, 5.0]}, {"time": 24, "position": [-1.5, 9.5]}],
    },
    "path": {  # an S-bend followed for 10 s
        "segments": [{"text": WALK, "seconds": 12}],
        "paths": [{"start": 1, "end": 11, "points": [[0.0, 0.5], [1.0, 2.5], [0.0, 4.5], [-1.0, 6.5]]}],
    },
    "reach": {  # hand targets while standing and waving, a foot target while walking
        "segments": [{"text": WAVE, "seconds": 6}, {"text": WALK, "seconds": 6}],
        "targets": [
            {"joint": "right_hand", "time": 2.5, "position": [-0.3, 1.65, 0.25]},
            {"joint": "left_hand", "time": 4.0, "position": [0.25, 0.85, 0.1]},
        ],
    },
    "readme": {  # the README's shot: 30 s, three prompts, two waypoints and a hand target
        "segments": [{"text": WALK, "seconds": 12}, {"text": WAVE, "seconds": 6}, {"text": WALK, "seconds": 12}],
        "waypoints": [{"time": 11, "position": [2.0, 6.0]}, {"time": 29, "position": [-2.0, 11.0]}],
        "targets": [{"joint": "right_hand", "time": 15, "position": [1.78, 1.6, 6.28]}],
    },
}


def natural_pace_waypoints(free: np.ndarray, times: list[float], turn_deg: float = 30.0) -> tuple[Waypoint, ...]:
    """Waypoints as far apart as the unconstrained motion `free` travels between `times`, each leg turned by
    +-`turn_deg`: steering without asking for another pace (the demo model's feet glide at its walking speed, so a
    faster shot slides more whatever the steering does)."""
    path, _ = root_path(free)
    points, here = [], np.zeros(2)
    previous = np.zeros(2)
    for k, t in enumerate(times):
        leg = path[round(t * SHOT_FPS)] - previous
        previous = path[round(t * SHOT_FPS)]
        angle = np.deg2rad(turn_deg if k % 2 == 0 else -turn_deg)
        rotation = np.array([[np.cos(angle), np.sin(angle)], [-np.sin(angle), np.cos(angle)]])
        here = here + rotation @ leg
        points.append(Waypoint(float(t), (float(here[0]), float(here[1]))))
    return tuple(points)


@dataclass
class Run:
    """One shot solved once: features of every candidate and the seconds it took."""

    motions: list[np.ndarray]
    seconds: float  # wall clock
    cpu_seconds: float  # this process's CPU time (what the wall clock would be on an otherwise idle machine)


def _solve(model: Any, shot: Shot, seed: int) -> Run:
    from backend.tasks.shot import shot_to_motion

    started, cpu = time.perf_counter(), time.process_time()
    motions = shot_to_motion(model, shot, seed=seed)
    return Run(motions, time.perf_counter() - started, time.process_time() - cpu)


def _concatenation(model: Any, shot: Shot, seed: int) -> np.ndarray:
    """Each segment generated on its own (a longer one than the model makes in even pieces) and the features put end
    to end (the root trajectory carries on through the velocities)."""
    from backend.tasks import text_to_motion

    parts = []
    limit = model.config.max_frames
    for segment, frames in zip(shot.segments, shot.segment_frames, strict=True):
        pieces = -(-frames // limit)
        for length in np.diff(np.rint(np.linspace(0, frames, pieces + 1)).astype(int)):
            parts.append(text_to_motion(model, [segment.text], int(length), seed=seed)[0][0])
    return np.concatenate(parts)


def _facing_off_travel_deg(features: np.ndarray) -> float:
    """Mean angle (degrees) between the body's facing and its direction of travel over frames moving > 0.3 m/s
    (over 0.5 s): how much of the travel is sideways or backwards."""
    path, _ = root_path(features)
    facing = facing_of_joints(features_to_joints(features))
    step = path[10:] - path[:-10]
    moving = np.linalg.norm(step, axis=1) * SHOT_FPS / 10 > 0.3
    if not moving.any():
        return 0.0
    travel = np.arctan2(step[:, 0], step[:, 1])
    middle = facing[5:-5]
    off = np.abs(np.angle(np.exp(1j * (travel - middle))))
    return float(np.rad2deg(off[moving]).mean())


def _segment_checks(shot: Shot, features: np.ndarray) -> list[bool | None]:
    joints = features_to_joints(features)
    ends = np.cumsum(shot.segment_frames)
    starts = ends - np.asarray(shot.segment_frames)
    return [passes(s.text, joints[a:b]) for s, a, b in zip(shot.segments, starts, ends, strict=True)]


def _single_prompt_checks(model: Any, shot: Shot, seed: int) -> list[bool | None]:
    from backend.tasks import text_to_motion

    results = []
    for segment, frames in zip(shot.segments, shot.segment_frames, strict=True):
        if check_kind(segment.text) is None:
            results.append(None)
            continue
        features = text_to_motion(model, [segment.text], min(frames, model.config.max_frames), seed=seed)[0][0]
        results.append(passes(segment.text, features_to_joints(features)))
    return results


def _rate(values: list[bool | None]) -> float | None:
    known = [v for v in values if v is not None]
    return None if not known else sum(known) / len(known)


def benchmark_shots(model: Any, seeds: list[int], scenarios: list[str]) -> dict[str, Any]:
    """Every scenario on every seed (and the `natural` variant of `waypoints`), with its unconstrained twin."""
    rows: dict[str, list[dict[str, Any]]] = {}
    for name in scenarios + (["natural"] if "waypoints" in scenarios else []):
        base = SCENARIOS["waypoints" if name == "natural" else name]
        free_shot = shot_from_dict({"segments": base["segments"]})
        joins = np.cumsum(free_shot.segment_frames)[:-1].tolist()
        for seed in seeds:
            free = _solve(model, free_shot, seed)
            if name == "natural":
                times = [w["time"] for w in base["waypoints"]]
                shot = Shot(free_shot.segments, natural_pace_waypoints(free.motions[0], times))
            else:
                shot = shot_from_dict(base)
            constrained = _solve(model, shot, seed)
            features = constrained.motions[0]
            errors = constraint_errors(features, shot)
            row: dict[str, Any] = {
                "seed": seed,
                "seconds": shot.seconds,
                "time_s": constrained.seconds,
                "free_time_s": free.seconds,
                "cpu_s": constrained.cpu_seconds,
                "free_cpu_s": free.cpu_seconds,
                "errors": errors.to_dict(),
                "sliding_cm_s": 100 * foot_sliding(features),
                "free_sliding_cm_s": 100 * foot_sliding(free.motions[0]),
                "sliding_per_speed": sliding_per_speed(features),
                "free_sliding_per_speed": sliding_per_speed(free.motions[0]),
                "facing_off_travel_deg": _facing_off_travel_deg(features),
                "free_facing_off_travel_deg": _facing_off_travel_deg(free.motions[0]),
                "checks": _segment_checks(shot, features),
                "free_checks": _segment_checks(free_shot, free.motions[0]),
                "single_checks": _single_prompt_checks(model, shot, seed),
            }
            if joins:
                concatenated = _concatenation(model, free_shot, seed)
                row["join_jerk"] = peak_jerk_near(features_to_joints(features), joins)
                row["free_join_jerk"] = peak_jerk_near(features_to_joints(free.motions[0]), joins)
                row["concat_join_jerk"] = peak_jerk_near(features_to_joints(concatenated), joins)
            rows.setdefault(name, []).append(row)
    return {"rows": rows, "summary": summarise(rows)}


SUITE_SEGMENTS = 3  # paraphrase-suite prompts chained into one shot
SUITE_SEEDS = 3


def benchmark_suite(model: Any, seeds: list[int]) -> dict[str, Any]:
    """Text adherence in sequence: the paraphrase suite's dev prompts chained three at a time into unconstrained shots
    (each at the suite's length), every segment judged by its prompt's checks on its own frames, against the same
    prompt generated alone with the same seed (each run counted, no majority vote). The chaining is done three times,
    the prompt list rotated by one each time, so that every prompt is judged first, second and third in a shot after
    different prompts (one grouping alone swung the in-shot total by 8 of 294 runs)."""
    from backend.eval.paraphrase.checks import evaluate_checks
    from backend.eval.paraphrase.suite import load_suite
    from backend.tasks import text_to_motion

    prompts = load_suite().select("dev")
    in_shot: list[bool] = []
    alone: list[bool] = []
    by_position: dict[int, list[bool]] = {}
    families: dict[str, list[bool]] = {}
    lost = gained = 0
    seconds, started = 0.0, time.perf_counter()
    for seed in seeds[:SUITE_SEEDS]:
        singles = text_to_motion(model, [p.prompt for p in prompts], [p.frames for p in prompts], seed=seed)
        passed_alone = {
            p.prompt: all(r.passed for r in evaluate_checks(list(p.checks), features_to_joints(f)))
            for p, (f,) in zip(prompts, singles, strict=True)
        }
        for offset in range(SUITE_SEGMENTS):
            groups = [prompts[i : i + SUITE_SEGMENTS] for i in range(offset, len(prompts), SUITE_SEGMENTS)]
            for group in groups:
                shot = Shot(tuple(Segment(p.prompt, p.frames / SHOT_FPS) for p in group))
                solved = _solve(model, shot, seed)
                seconds += shot.seconds
                joints = features_to_joints(solved.motions[0])
                ends = np.cumsum(shot.segment_frames)
                for position, (prompt, end, frames) in enumerate(zip(group, ends, shot.segment_frames, strict=True)):
                    passed = all(r.passed for r in evaluate_checks(list(prompt.checks), joints[end - frames : end]))
                    in_shot.append(passed)
                    alone.append(passed_alone[prompt.prompt])
                    lost += passed_alone[prompt.prompt] and not passed
                    gained += passed and not passed_alone[prompt.prompt]
                    by_position.setdefault(position, []).append(passed)
                    for family in prompt.families:
                        families.setdefault(family, []).append(passed)
    elapsed = time.perf_counter() - started
    return {
        "prompts": len(prompts),
        "seeds": seeds[:SUITE_SEEDS],
        "shot_pass": _rate(list(in_shot)),
        "single_pass": _rate(list(alone)),
        "runs": len(in_shot),
        "shot_passed": int(sum(in_shot)),
        "single_passed": int(sum(alone)),
        "lost_in_shot": int(lost),  # passes alone, fails in the shot
        "gained_in_shot": int(gained),
        "shot_pass_by_position": {k: _rate(list(v)) for k, v in sorted(by_position.items())},
        "families_in_shot": {f: _rate(list(v)) for f, v in sorted(families.items())},
        "seconds_of_motion": seconds,
        "wall_s": elapsed,
    }


def summarise(rows: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Medians and worst cases per scenario, beside the goals."""
    summary: dict[str, Any] = {}
    for name, runs in rows.items():
        out: dict[str, Any] = {"runs": len(runs)}
        waypoint = [100 * v for r in runs for v in r["errors"]["waypoints_m"]]
        path = [100 * v for r in runs for v in r["errors"]["path_mean_m"]]
        target = [100 * v for r in runs for v in r["errors"]["targets_m"]]
        for key, values in (("waypoint_cm", waypoint), ("path_mean_cm", path), ("target_cm", target)):
            if values:
                out[key] = {"median": float(np.median(values)), "max": float(np.max(values))}
        added = [r["sliding_cm_s"] - r["free_sliding_cm_s"] for r in runs]
        out["sliding_cm_s"] = float(np.mean([r["sliding_cm_s"] for r in runs]))
        out["free_sliding_cm_s"] = float(np.mean([r["free_sliding_cm_s"] for r in runs]))
        out["added_sliding_cm_s"] = {"mean": float(np.mean(added)), "max": float(np.max(added))}
        out["sliding_per_speed"] = float(np.mean([r["sliding_per_speed"] for r in runs]))
        out["free_sliding_per_speed"] = float(np.mean([r["free_sliding_per_speed"] for r in runs]))
        out["facing_off_travel_deg"] = float(np.mean([r["facing_off_travel_deg"] for r in runs]))
        out["free_facing_off_travel_deg"] = float(np.mean([r["free_facing_off_travel_deg"] for r in runs]))
        out["seconds_per_10s"] = float(np.median([10 * r["time_s"] / r["seconds"] for r in runs]))
        out["free_seconds_per_10s"] = float(np.median([10 * r["free_time_s"] / r["seconds"] for r in runs]))
        out["cpu_seconds_per_10s"] = float(np.median([10 * r["cpu_s"] / r["seconds"] for r in runs]))
        out["free_cpu_seconds_per_10s"] = float(np.median([10 * r["free_cpu_s"] / r["seconds"] for r in runs]))
        if "join_jerk" in runs[0]:
            out["join_jerk"] = float(np.median([r["join_jerk"] for r in runs]))
            out["free_join_jerk"] = float(np.median([r["free_join_jerk"] for r in runs]))
            out["concat_join_jerk"] = float(np.median([r["concat_join_jerk"] for r in runs]))
            out["join_jerk_ratio"] = out["concat_join_jerk"] / max(out["join_jerk"], 1e-9)
        out["text_pass"] = _rate([c for r in runs for c in r["checks"]])
        out["free_text_pass"] = _rate([c for r in runs for c in r["free_checks"]])
        out["single_text_pass"] = _rate([c for r in runs for c in r["single_checks"]])
        summary[name] = out
    return summary


def _line(name: str, value: float | None, unit: str, goal: str = "") -> str:
    shown = "-" if value is None else f"{value:.2f}"
    return f"  {name:<44} {shown:>9} {unit:<6} {goal}"


def print_summary(summary: dict[str, Any]) -> None:
    for name, out in summary.items():
        print(f"{name} ({out['runs']} seeds):")
        for key, goal in (("waypoint_cm", "<= 10"), ("path_mean_cm", "<= 15"), ("target_cm", "<= 5")):
            if key in out:
                worst = f"max {out[key]['max']:.2f}, goal {goal}"
                print(_line(f"{key} median / max", out[key]["median"], "cm", worst))
        free = f"free {out['free_sliding_cm_s']:.2f}"
        print(_line("foot sliding on contact frames", out["sliding_cm_s"], "cm/s", free))
        added = out["added_sliding_cm_s"]
        print(_line("added sliding mean / worst seed", added["mean"], "cm/s", f"max {added['max']:.2f}, goal <= 1"))
        free = f"free {out['free_sliding_per_speed']:.3f}"
        print(_line("sliding per m/s of pelvis speed", out["sliding_per_speed"], "", free))
        free = f"free {out['free_facing_off_travel_deg']:.1f}"
        print(_line("facing off the direction of travel", out["facing_off_travel_deg"], "deg", free))
        if "join_jerk" in out:
            free = f"free shot {out['free_join_jerk']:.0f}"
            print(_line("peak jerk at joins: shot", out["join_jerk"], "m/s^3", free))
            print(_line("peak jerk at joins: plain concatenation", out["concat_join_jerk"], "m/s^3"))
            print(_line("concatenation / shot", out["join_jerk_ratio"], "x", "goal >= 5"))
        for key, label in (
            ("text_pass", "shot"),
            ("free_text_pass", "unconstrained shot"),
            ("single_text_pass", "single prompt"),
        ):
            print(_line(f"segment text checks passed: {label}", out[key], ""))
        free = f"free {out['free_seconds_per_10s']:.2f}, goal <= 1"
        print(_line("time per 10 s of motion", out["seconds_per_10s"], "s", free))
        free = f"free {out['free_cpu_seconds_per_10s']:.2f}"
        print(_line("CPU time per 10 s of motion", out["cpu_seconds_per_10s"], "s", free))


def run_shot_benchmark(
    checkpoint: Path | None, device: str, seeds: list[int], scenarios: list[str], json_path: Path | None
) -> dict[str, Any]:
    from backend import load_model

    model = load_model(checkpoint, device)
    unknown = sorted(set(scenarios) - set(SCENARIOS) - {"suite"})
    if unknown:
        raise ValueError(f"--scenarios: unknown {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}")
    print(f"bench shot: {model.config.name} on {model.device}, seeds {seeds}")
    result = benchmark_shots(model, seeds, [s for s in scenarios if s != "suite"])
    print_summary(result["summary"])
    if "suite" in scenarios:
        suite = result["suite"] = benchmark_suite(model, seeds)
        print(
            f"suite ({suite['prompts']} dev prompts in shots of {SUITE_SEGMENTS}, every prompt at every position, "
            f"seeds {suite['seeds']}, {suite['runs']} runs):"
        )
        print(_line("segment passes its prompt's checks: in a shot", suite["shot_pass"], "", f"{suite['shot_passed']}"))
        print(_line("the same prompt generated alone", suite["single_pass"], "", f"{suite['single_passed']}"))
        counts = f"lost {suite['lost_in_shot']}, gained {suite['gained_in_shot']}"
        print(_line("runs passing alone but not in the shot", suite["lost_in_shot"], "", counts))
        for position, rate in suite["shot_pass_by_position"].items():
            print(_line(f"in a shot, segment {position + 1} of {SUITE_SEGMENTS}", rate, ""))
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(result, indent=1, default=float) + "\n", encoding="utf-8")
        print(f"wrote {json_path}")
    return result
