"""End to end in real Blender: a backend on loopback (tiny random-weights model), the add-on's real client, Generate
through the operator with the timer body driven by hand, and a backend killed mid-job then restarted."""

from __future__ import annotations

import socket
import time

import bpy
import numpy as np
import pytest

torch = pytest.importorskip("torch")  # the backend's environment only (not the second Blender's)

import blender_addon  # noqa: E402
from blender_addon import operators, results  # noqa: E402
from shared.motion.axes import yup_to_zup  # noqa: E402
from shared.motion.humanml3d import features_to_joints  # noqa: E402
from shared.motion.resample import resample_linear  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _server(address: str):
    from backend.model.config import tiny_config
    from backend.model.loading import build_model
    from backend.service.server import Server, ServerConfig

    torch.manual_seed(0)
    server = Server(build_model(tiny_config(), None, "random"), ServerConfig(bind=address))
    server.start()
    return server


@pytest.fixture(scope="module")
def backend():
    from shared.client import MotionClient

    registered = not hasattr(bpy.types.Scene, "motiongpt3")
    if registered:
        blender_addon.register()
    address = f"tcp://127.0.0.1:{_free_port()}"
    server = _server(address)
    operators.CONTROLLER.close()
    operators.CONTROLLER._client_factory = lambda: MotionClient(address, heartbeat_s=0.2, timeout_s=1.0)
    yield address, server
    operators.stop_timer()
    operators.CONTROLLER.close()
    server.stop()
    if registered:
        blender_addon.unregister()


def _drive(until, timeout_s: float = 120.0) -> list[float]:
    """Call the timer body as Blender would, until `until()`; returns each tick's duration."""
    durations = []
    deadline = time.monotonic() + timeout_s
    while not until():
        assert time.monotonic() < deadline, operators.CONTROLLER.summary()
        started = time.perf_counter()
        operators.timer_tick()
        durations.append(time.perf_counter() - started)
        time.sleep(0.01)
    return durations


def test_generate_end_to_end_with_a_real_backend(backend) -> None:
    bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = 30, 1.0
    settings = scene.motiongpt3
    settings.prompt, settings.length_unit, settings.frames, settings.seed, settings.candidates = (
        "a wave",
        "FRAMES",
        60,
        3,
        2,
    )
    settings.use_current_frame, settings.start_frame = False, 5
    captured = {}
    real_write = results.write_takes

    def keep(job, takes):
        captured["motions"] = np.array(job.arrays["motions"])
        return real_write(job, takes)

    results.write_takes = keep
    try:
        assert bpy.ops.motion.generate() == {"FINISHED"}
        (job,) = operators.CONTROLLER.active()
        _drive(lambda: job.status in ("done", "error", "cancelled"))
    finally:
        results.write_takes = real_write
    assert job.status == "done", job.message
    obj = bpy.context.view_layer.objects.active
    action = obj.animation_data.action
    assert action[results.PROP_GROUP] == job.request_id and action.name == "a wave · seed 3 · 1/2"
    assert tuple(action.frame_range) == (5.0, 64.0)  # 60 frames at 30 fps
    motions = captured["motions"]
    assert motions.shape == (2, 41, 263)
    pelvis = yup_to_zup(resample_linear(features_to_joints(motions[0]), 20.0, 30.0)[:60, 0])
    got = []
    for frame in range(5, 65):
        scene.frame_set(frame)
        got.append(tuple(obj.matrix_world @ obj.pose.bones["pelvis"].head))
    np.testing.assert_allclose(np.array(got), pelvis, atol=1e-4)


def test_backend_killed_mid_job_shows_an_error_then_reconnects(backend) -> None:
    address, server = backend
    bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)
    scene = bpy.context.scene
    scene.motiongpt3.length_unit, scene.motiongpt3.frames = "FRAMES", 190
    actions = set(bpy.data.actions)
    assert bpy.ops.motion.generate() == {"FINISHED"}
    (job,) = operators.CONTROLLER.active()
    server.stop(notify=False)  # vanishes without a word, as a crash would
    _drive(lambda: operators.CONTROLLER.state == "disconnected", timeout_s=30)
    assert job.status == "error" and operators.CONTROLLER.last_error
    assert set(bpy.data.actions) == actions  # nothing was written
    restarted = _server(address)
    try:
        _drive(lambda: operators.CONTROLLER.state == "connected", timeout_s=30)
        assert operators.CONTROLLER.last_error == ""
    finally:
        restarted.stop()
