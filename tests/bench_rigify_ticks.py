"""Timer ticks while a result is solved onto the rig Blender's bundled Rigify generates (prints numbers, not a test):
the solve against the evaluated rig runs in slices on Blender's timer; here each tick's duration, and the longest
slices of the solve by what they do (the scratch copy, its depsgraph, the probe, the FK and IK passes).

Run: `<venv>/bin/python tests/bench_rigify_ticks.py` with any bpy venv (Rigify generation takes ~10 s first). The
machine's load average is printed: on a shared machine the numbers are noisy.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Generator
from pathlib import Path
from typing import Any

import bpy
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from reference import walk_jump_clip
from scripted_client import Event, ScriptedClient

import blender_addon
from blender_addon import operators, results, rig_solve

REPEATS = 3


def rigify_rig() -> bpy.types.Object:
    """The generated Rigify rig in a fresh scene (Rigify enabled only while generating)."""
    import addon_utils

    addon_utils.enable("rigify", default_set=True)
    try:
        bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)
        bpy.ops.object.armature_human_metarig_add()
        bpy.ops.pose.rigify_generate()
        return bpy.context.active_object
    finally:
        addon_utils.disable("rigify", default_set=True)


class WriteTimer:
    """Wraps `results.write_takes` (the keyframe write inside the undo-registered apply operator) to time it."""

    def __init__(self) -> None:
        self.real = results.write_takes
        self.calls: list[float] = []

    def __call__(self, *args: Any) -> Any:
        started = time.perf_counter()
        try:
            return self.real(*args)
        finally:
            self.calls.append(time.perf_counter() - started)


class SliceTimer:
    """Wraps `rig_solve.solve_steps` to time each slice (each `next`) of the solve."""

    def __init__(self) -> None:
        self.real = rig_solve.solve_steps
        self.slices: list[float] = []

    def __call__(self, *args: Any, **kwargs: Any) -> Generator[float | None, None, Any]:
        steps = self.real(*args, **kwargs)
        while True:
            started = time.perf_counter()
            try:
                value = next(steps)
            except StopIteration as done:
                self.slices.append(time.perf_counter() - started)
                return done.value
            self.slices.append(time.perf_counter() - started)
            yield value


def main() -> None:
    print(f"bpy {bpy.app.version_string}; load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    rig = rigify_rig()
    blender_addon.register()
    client = ScriptedClient()
    operators.CONTROLLER._client_factory = lambda: client
    features = walk_jump_clip()[0]
    scene = bpy.context.scene
    scene.render.fps, scene.frame_current = 20, 1
    settings = scene.motiongpt3
    settings.length_unit, settings.frames, settings.candidates = "FRAMES", len(features), 1
    timer = SliceTimer()
    rig_solve.solve_steps = timer  # type: ignore[assignment]  # results.py calls it through the module
    writes = WriteTimer()
    results.write_takes = writes  # type: ignore[assignment]  # the apply operator calls it through the module
    # One evaluation of the generated rig after a control moved, for scale.
    scratch = rig_solve.Scratch(rig)
    scratch.evaluate()
    evaluations = []
    for k in range(20):
        scratch.set_location("torso", np.array([0.0, 0.0, 0.01 * (k % 2)]))
        started = time.perf_counter()
        scratch.evaluate()
        evaluations.append(time.perf_counter() - started)
    scratch.close()
    print(f"one evaluation of the generated rig (a control moved): median {np.median(evaluations) * 1e3:.1f} ms")
    for run in range(REPEATS):
        timer.slices.clear()
        bpy.context.view_layer.objects.active = rig
        bpy.ops.motion.generate()
        client.queue = [Event("result", client.sent[-1][0], {}, {"motions": features[None].astype(np.float32)})]
        ticks = []
        for _ in range(20000):
            started = time.perf_counter()
            operators.timer_tick()
            ticks.append(time.perf_counter() - started)
            controller = operators.CONTROLLER
            if not controller.tasks and not any(j.status in ("result", "ready") for j in controller.jobs.values()):
                break
        t = np.array(ticks) * 1e3
        s = np.array(timer.slices) * 1e3
        top = np.argsort(s)[::-1][:5]
        first, last = ", ".join(f"{v:.1f}" for v in s[:4]), ", ".join(f"{v:.1f}" for v in s[-3:])
        print(
            f"run {run + 1}: {len(t)} ticks, median {np.median(t):.1f} ms, 95th {np.percentile(t, 95):.1f} ms, "
            f"longest {t.max():.1f} ms (the last tick holds the keyframe write: {t[-1]:.1f} ms, of which the write "
            f"itself {writes.calls[-1] * 1e3:.1f} ms); solve: {len(s)} slices, median {np.median(s):.1f} ms, longest "
            f"{', '.join(f'#{i} {s[i]:.1f} ms' for i in top)}; first slices {first} ms, last {last} ms"
        )
    blender_addon.unregister()
    operators.stop_timer()
    sys.stdout.flush()
    os._exit(0)  # bpy at exit can hang with a registered timer (BLENDER_NOTES.md section 8)


if __name__ == "__main__":
    main()
