"""Add-on benchmarks in real Blender (prints numbers, not a test): key writing, read-back with a skinned mesh, ticks.

Run: python3.11 build.py bench-addon (or .venv/bin/python tests/bench_blender_addon.py).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import bpy
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from reference import REFERENCE_DATA
from test_blender_addon import Event, ScriptedClient

import blender_addon
from blender_addon import armature, operators, readback, rig_math
from blender_addon.action_io import Channels, write_track
from shared.motion.humanml3d import features_to_joints


def best_of(fn, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    blender_addon.register()
    bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)
    scene = bpy.context.scene
    scene.render.fps = 60
    obj = armature.create_smpl_armature(bpy.context)
    features = np.load(REFERENCE_DATA / "humanml3d" / "feats_012314.npy")
    heads, rotations = armature.bone_rest(obj, armature.JOINT_NAMES)
    joints = features_to_joints(features[:-1])
    track = rig_math.pose_track(joints, 60.0, heads, rotations, frames=400)
    print(f"bpy {bpy.app.version_string}")

    def write() -> None:
        write_track(Channels(obj, bpy.data.actions.new("bench")), armature.JOINT_NAMES, 1.0, track)

    print(f"write 400 frames x 22 bones (91 F-curves, foreach_set): {best_of(write) * 1e3:.1f} ms (goal <= 10 ms)")
    solve = best_of(lambda: rig_math.pose_track(joints, 60.0, heads, rotations, frames=400))
    print(f"  + decode/IK/quaternions for those 400 frames (numpy): {solve * 1e3:.1f} ms")

    bpy.ops.mesh.primitive_grid_add(x_subdivisions=173, y_subdivisions=173, size=1.0)
    mesh = bpy.context.active_object
    group = mesh.vertex_groups.new(name="pelvis")
    group.add(list(range(len(mesh.data.vertices))), 1.0, "REPLACE")
    modifier = mesh.modifiers.new("Armature", "ARMATURE")
    modifier.object = obj
    scene.render.fps = 20
    short = rig_math.pose_track(joints[:200], 20.0, heads, rotations)
    write_track(Channels(obj, bpy.data.actions.new("read")), armature.JOINT_NAMES, 1.0, short)
    read = best_of(lambda: readback.sample_joints(obj, 1, 200), 3)
    print(
        f"read back 200 frames, armature deforming a {len(mesh.data.vertices)}-vertex mesh: {read:.3f} s (goal 0.1 s)"
    )

    client = ScriptedClient()
    operators.CONTROLLER._client_factory = lambda: client
    bpy.context.view_layer.objects.active = obj
    scene.motiongpt3.length_unit, scene.motiongpt3.frames = "FRAMES", 160
    bpy.ops.motion.generate()
    request_id = client.sent[-1][0]
    ticks = []
    for step in range(100):
        client.queue = [Event("progress", request_id, {"stage": "diffusion", "step": step, "total": 100, "eta_s": 1.0})]
        started = time.perf_counter()
        operators.timer_tick()
        ticks.append(time.perf_counter() - started)
    client.queue = [Event("result", request_id, {}, {"motions": features[None, :160].astype(np.float32)})]
    started = time.perf_counter()
    operators.timer_tick()
    apply_s = time.perf_counter() - started
    print(
        f"timer tick during a generation: longest {max(ticks) * 1e3:.2f} ms, median {np.median(ticks) * 1e3:.3f} ms"
        " (goal <= 5 ms)"
    )
    print(f"the tick that applies a 160-frame result (decode + IK + write, one undo step): {apply_s * 1e3:.1f} ms")
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
