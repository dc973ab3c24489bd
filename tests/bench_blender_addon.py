"""Add-on benchmarks in real Blender (prints numbers, not a test): the issue's three numbers, each as median and max
over several runs with its goal beside it, in a scene where the armature deforms a 30k-vertex mesh:

(a) writing one candidate of 400 frames x 22 bones as keys (goal <= 10 ms; a result is one undo step);
(b) reading back 200 frames of that armature (goal <= 0.1 s: the button press, the longest slice, the total);
(c) the longest timer tick while a generation runs (goal <= 5 ms).

Run: python3.11 build.py bench-addon (or `<venv>/bin/python tests/bench_blender_addon.py` with any bpy venv).
The machine's load average is printed before and after: on a shared machine the numbers are noisy.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import bpy
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from reference import cmu_walk_clip
from scripted_client import Event, ScriptedClient

import blender_addon
from blender_addon import action_io, armature, operators, readback, results, rig_math
from blender_addon.action_io import Channels, key_columns
from blender_addon.steps import SLICE_S
from shared.motion.humanml3d import features_to_joints

REPEATS = 10
MESH_SUBDIVISIONS = 173  # a 174 x 174 grid: 30,276 vertices


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} CPUs"


def stats(samples: list[float], goal: float | None = None, unit: str = "ms") -> str:
    """'median X, max Y (N runs)' in `unit` (samples in seconds), and the goal (in `unit`) with the verdict."""
    scale = 1e3 if unit == "ms" else 1.0
    digits = 2 if unit == "ms" else 3
    med, top = float(np.median(samples)) * scale, max(samples) * scale
    text = f"median {med:.{digits}f} {unit}, max {top:.{digits}f} {unit} ({len(samples)} runs)"
    if goal is not None:
        verdict = "met" if top <= goal else "median met, max over" if med <= goal else "NOT MET"
        text += f"  [goal <= {goal:g} {unit}: {verdict}]"
    return text


def timed(fn: Callable[[], object], repeats: int = REPEATS) -> list[float]:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return times


def drive_until_settled(limit: int = 5000) -> list[float]:
    """Call the timer body until no main-thread work waits (as Blender would, without the pauses); tick durations."""
    ticks = []
    for _ in range(limit):
        started = time.perf_counter()
        operators.timer_tick()
        ticks.append(time.perf_counter() - started)
        controller = operators.CONTROLLER
        if not controller.tasks and not any(j.status in ("result", "ready") for j in controller.jobs.values()):
            return ticks
    raise RuntimeError("still busy")


class WriteTimer:
    """Wraps `results.write_takes` (the keyframe write inside the undo-registered apply operator) to time it."""

    def __init__(self) -> None:
        self.calls: list[float] = []
        self.real = results.write_takes

    def __call__(self, job: Any, takes: Any) -> Any:  # results.write_takes' signature
        started = time.perf_counter()
        try:
            return self.real(job, takes)
        finally:
            self.calls.append(time.perf_counter() - started)


def apply_result(client: ScriptedClient, motions: np.ndarray, writes: WriteTimer) -> tuple[float, float, list[float]]:
    """Press Generate, answer with `motions`, run the timer until the result is written: (the keyframe write, the
    tick that held it, the other ticks: preparation slices)."""
    bpy.ops.motion.generate()
    client.queue = [Event("result", client.sent[-1][0], {}, {"motions": motions})]
    before = len(writes.calls)
    ticks = []
    write_tick = None
    for _ in range(5000):
        started = time.perf_counter()
        operators.timer_tick()
        elapsed = time.perf_counter() - started
        if len(writes.calls) > before and write_tick is None:
            write_tick = elapsed
            break
        ticks.append(elapsed)
    if write_tick is None:
        raise RuntimeError("the result was not written")
    return writes.calls[-1], write_tick, ticks


def main() -> None:
    blender_addon.register()
    bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)
    scene = bpy.context.scene
    obj = armature.create_smpl_armature(bpy.context)
    features = cmu_walk_clip()[0]
    target = armature.target_of(obj)
    joints = features_to_joints(features[:-1])
    bpy.ops.mesh.primitive_grid_add(x_subdivisions=MESH_SUBDIVISIONS, y_subdivisions=MESH_SUBDIVISIONS, size=1.0)
    mesh = bpy.context.active_object
    group = mesh.vertex_groups.new(name="pelvis")
    group.add(list(range(len(mesh.data.vertices))), 1.0, "REPLACE")
    mesh.modifiers.new("Armature", "ARMATURE").object = obj
    vertices = len(mesh.data.vertices)
    bpy.context.view_layer.objects.active = obj
    client = ScriptedClient()
    operators.CONTROLLER._client_factory = lambda: client
    settings = scene.motiongpt3
    print(f"bpy {bpy.app.version_string}; {load()} (the machine is shared: numbers are noisy)")
    print(f"scene: the SMPL-22 armature deforming a {vertices}-vertex mesh")

    # (a) ------------------------------------------------------------------------------------------------------
    frames, fps = 400, 60
    scene.render.fps = fps
    settings.length_unit, settings.frames, settings.candidates = "FRAMES", frames, 1
    frames20 = rig_math.requested_frames_20fps(frames, fps)
    motion = np.concatenate([features, features])[None, :frames20].astype(np.float32)
    track = rig_math.pose_track(joints, fps, target, frames=frames)
    curves = len(key_columns(1.0, track))
    print(
        f"\n(a) writing one candidate, {frames} frames x {len(track.bones)} bones as keys ({curves} F-curves, ", end=""
    )
    print(f"{curves * frames} keys)")
    writes = WriteTimer()
    results.write_takes = writes
    try:
        runs = [apply_result(client, motion, writes) for _ in range(REPEATS)]
        print(f"  the keyframe write (results.write_takes in the apply operator): {stats([r[0] for r in runs], 10)}")
        print(f"  for information, the whole tick holding it (bpy.ops call):     {stats([r[1] for r in runs])}")
        print(
            "    of which outside the write (bpy.ops runs view_layer.update() after the operator: the new pose and the "
            f"deformed mesh, as Blender's next redraw would): {stats([r[1] - r[0] for r in runs])}"
        )
        print(
            f"  preparation before it (decode, IK, quaternions: {len(runs[0][2])} ticks), longest tick: "
            f"{stats([max(r[2]) for r in runs])}"
        )
        # Where set_keys' time goes, and the former write (add + foreach_set co / interpolation + fc.update(), the
        # oracle of tests/test_blender_key_write.py) on the same curves, in alternating order.
        paths = [(action_io.bone_path(b, "rotation_quaternion"), i, b) for b in track.bones for i in range(4)]
        paths += [(action_io.bone_path(track.root_bone, "location"), i, track.root_bone) for i in range(3)]
        columns = key_columns(1.0, track)
        linear = np.full(frames, bpy.types.Keyframe.bl_rna.properties["interpolation"].enum_items["LINEAR"].value)
        parts: dict[str, list[float]] = {
            k: [] for k in ("F-curves", "samples", "convert", "add + co", "interpolation", "update", "former")
        }

        def fresh_fcurves() -> list[bpy.types.FCurve]:
            channels = Channels(obj, bpy.data.actions.new("bench"))
            return [channels.ensure(path, index, group) for path, index, group in paths]

        def new_way() -> None:
            t0 = time.perf_counter()
            fcurves = fresh_fcurves()
            t1 = time.perf_counter()
            for fc, co in zip(fcurves, columns, strict=True):
                fc.keyframe_points.add(1)
                fc.convert_to_samples(1, 1 + frames)
                fc.sampled_points.foreach_set("co", co)
            t2 = time.perf_counter()
            for fc in fcurves:
                fc.convert_to_keyframes(1, 1 + frames)
            t3 = time.perf_counter()
            for name, a, b in (("F-curves", t0, t1), ("samples", t1, t2), ("convert", t2, t3)):
                parts[name].append(b - a)

        def former_way() -> None:
            fcurves = fresh_fcurves()
            t1 = time.perf_counter()
            for fc, co in zip(fcurves, columns, strict=True):
                fc.keyframe_points.add(frames)
                fc.keyframe_points.foreach_set("co", co)
            t2 = time.perf_counter()
            for fc in fcurves:
                fc.keyframe_points.foreach_set("interpolation", linear.astype(np.int32))
            t3 = time.perf_counter()
            for fc in fcurves:
                fc.update()
            t4 = time.perf_counter()
            for name, a, b in (("add + co", t1, t2), ("interpolation", t2, t3), ("update", t3, t4), ("former", t1, t4)):
                parts[name].append(b - a)

        for repeat in range(REPEATS):
            for way in (new_way, former_way) if repeat % 2 else (former_way, new_way):
                way()
        ms = {name: np.median(times) * 1e3 for name, times in parts.items()}
        print(
            f"  where set_keys' time goes (medians): new Action + F-curves {ms['F-curves']:.2f} ms, sample points "
            f"(add 1 key, convert_to_samples, foreach_set co) {ms['samples']:.2f} ms, convert_to_keyframes (linear "
            f"keys, handles as fc.update() computes them) {ms['convert']:.2f} ms"
        )
        print(
            "  for comparison, the former write on the same F-curves (keys only, without the F-curves): "
            f"{stats(parts['former'])}: add + co {ms['add + co']:.2f} ms, interpolation {ms['interpolation']:.2f} ms, "
            f"fc.update() {ms['update']:.2f} ms; set_keys' part: {ms['samples'] + ms['convert']:.2f} ms"
        )
        settings.candidates = 3
        runs = [apply_result(client, np.repeat(motion, 3, 0), writes) for _ in range(max(3, REPEATS // 2))]
        settings.candidates = 1
        print(
            f"  for information, a 3-candidate result (3 Actions, one undo step): write {stats([r[0] for r in runs])}"
        )
    finally:
        results.write_takes = writes.real

    # (c) ------------------------------------------------------------------------------------------------------
    scene.render.fps = 30
    settings.length_unit, settings.seconds = "SECONDS", 9.75
    print("\n(c) timer ticks while a generation runs (progress events arriving, 100 ticks per generation)")
    longest, every = [], []
    for _ in range(REPEATS):
        bpy.ops.motion.generate()
        request_id = client.sent[-1][0]
        ticks = []
        for step in range(100):
            events = [Event("progress", request_id, {"stage": "diffusion", "step": step, "total": 100, "eta_s": 1.0})]
            client.queue = events if step % 2 == 0 else []  # every other tick finds nothing new
            started = time.perf_counter()
            operators.timer_tick()
            ticks.append(time.perf_counter() - started)
        bpy.ops.motion.cancel()
        longest.append(max(ticks))
        every += ticks
    print(f"  the longest tick of a generation: {stats(longest, 5)}")
    print(f"  any tick: {stats(every)}")

    # (b) ------------------------------------------------------------------------------------------------------
    first, last = 1, 200
    scene.frame_start, scene.frame_end, scene.render.fps = first, last, 20
    short = rig_math.pose_track(joints[:last], 20.0, target)
    action_io.write_track(Channels(obj, bpy.data.actions.new("read")), 1.0, short)
    print(f"\n(b) reading back {last} frames of the armature deforming the {vertices}-vertex mesh (Caption)")
    presses, slices, totals, counts = [], [], [], []
    for _ in range(max(3, REPEATS // 2)):
        started = time.perf_counter()
        bpy.ops.motion.caption()
        presses.append(time.perf_counter() - started)
        ticks = drive_until_settled()
        slices.append(max(ticks))
        totals.append(presses[-1] + sum(ticks))
        counts.append(len(ticks))
        bpy.ops.motion.cancel()
    print(f"  the button press:  {stats(presses)}")
    print(f"  the longest slice: {stats(slices)} (each timer tick does ~{1e3 * SLICE_S:g} ms of work)")
    print(f"  total (press + {int(np.median(counts))} ticks, without the timer's pauses): {stats(totals, 0.1, 's')}")
    at_once = timed(lambda: readback.sample_joints(obj, first, last), max(3, REPEATS // 2))
    print(f"  for information, the same read in one call (readback.sample_joints): {stats(at_once, 0.1, 's')}")
    mesh.hide_viewport = True
    totals = []
    for _ in range(max(3, REPEATS // 2)):
        started = time.perf_counter()
        bpy.ops.motion.caption()
        totals.append(time.perf_counter() - started + sum(drive_until_settled()))
        bpy.ops.motion.cancel()
    print(f"  for information, the armature alone (mesh hidden): total {stats(totals, 0.1, 's')}")

    print(f"\n{load()}")
    operators.stop_timer()
    operators.CONTROLLER.close()


if __name__ == "__main__":
    try:
        main()
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        sys.stdout.flush()
        os._exit(0)  # no exit hang with a live timer (BLENDER_NOTES.md section 8)
