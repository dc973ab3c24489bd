"""A shot end to end in real Blender with a real backend (the embedded demo model on loopback): a segment list, a
Curve as a path, an Empty as a waypoint and one as a hand target -> one Action whose evaluated rig passes them."""

from __future__ import annotations

import socket
import time

import bpy
import numpy as np
import pytest

torch = pytest.importorskip("torch")  # the backend's environment only (not the other Blenders')

from test_blender_shot import add_mark, keyed_empty, poly_curve, rest_facing, set_segments, smpl_armature, smpl_world  # noqa: E402

import blender_addon  # noqa: E402
from blender_addon import operators  # noqa: E402

FPS = 24
START = 1
PATH = np.array([[0.0, 0.0, 0.5], [0.4, 0.0, 2.0], [1.0, 0.0, 3.2]])  # motion frame (x, y, z), 1 s .. 5 s
WAYPOINT = np.array([1.4, 0.0, 4.0])  # at 6.5 s
HAND = np.array([1.2, 1.6, 4.3])  # the right wrist at 9.5 s


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def backend():
    from backend import load_model
    from backend.service.server import Server, ServerConfig
    from shared.client import MotionClient

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    registered = not hasattr(bpy.types.Scene, "motiongpt3")
    if registered:
        blender_addon.register()
    address = f"tcp://127.0.0.1:{_free_port()}"
    server = Server(load_model(None, device="cpu"), ServerConfig(bind=address))
    server.start()
    operators.CONTROLLER.close()
    operators.CONTROLLER._client_factory = lambda: MotionClient(address, heartbeat_s=0.2, timeout_s=5.0)
    yield server
    operators.stop_timer()
    operators.CONTROLLER.close()
    server.stop()
    torch.set_num_threads(threads)
    if registered:
        blender_addon.unregister()


def frame_at(seconds: float) -> int:
    return START + round(seconds * FPS)


def test_a_shot_from_the_panel_lands_as_one_action_through_its_marks(backend) -> None:
    bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base, scene.frame_current = FPS, 1.0, START
    obj = smpl_armature()
    facing = rest_facing(obj)
    set_segments([("a person walks forward", 7.0), ("a person waves the right hand", 5.0)])
    add_mark(keyed_empty("Spot", [(frame_at(6.5), smpl_world(WAYPOINT, facing))]), "WAYPOINT")
    add_mark(keyed_empty("Hand", [(frame_at(9.5), smpl_world(HAND, facing))]), "RIGHT_HAND")
    shot = scene.motiongpt3_shot
    shot.path, shot.path_start, shot.path_end = poly_curve("Route", smpl_world(PATH, facing)), frame_at(1), frame_at(5)
    settings = scene.motiongpt3
    settings.seed, settings.candidates = 2, 1
    bpy.context.view_layer.objects.active = obj
    actions = set(bpy.data.actions)
    assert bpy.ops.motion.generate_shot() == {"FINISHED"}
    (job,) = operators.CONTROLLER.active()
    deadline = time.monotonic() + 300
    while job.status not in ("done", "error", "cancelled"):
        assert time.monotonic() < deadline, operators.CONTROLLER.summary()
        operators.timer_tick()
        time.sleep(0.01)
    assert job.status == "done", job.message
    marks = {e.animation_data.action for e in bpy.data.objects if e.type == "EMPTY"}
    (action,) = set(bpy.data.actions) - actions - marks
    assert obj.animation_data.action == action
    assert tuple(action.frame_range) == (START, START + int(11.95 * FPS))  # 12 s: 240 frames at 20 fps span 11.95 s

    def world(bone: str, frame: int) -> np.ndarray:
        scene.frame_set(frame)
        return np.array(obj.matrix_world @ obj.pose.bones[bone].head)

    spot = smpl_world(WAYPOINT, facing)
    assert np.linalg.norm(world("pelvis", frame_at(6.5))[:2] - spot[:2]) < 0.10
    hand = smpl_world(HAND, facing)
    assert np.linalg.norm(world("right_wrist", frame_at(9.5)) - hand) < 0.06
    route = smpl_world(PATH, facing)[:, :2]
    off = []
    for frame in range(frame_at(1), frame_at(5) + 1, 4):
        p = world("pelvis", frame)[:2]
        a, b = route[:-1], route[1:]
        t = np.clip(((p - a) * (b - a)).sum(1) / ((b - a) ** 2).sum(1), 0, 1)
        off.append(np.linalg.norm(a + t[:, None] * (b - a) - p, axis=1).min())
    assert np.mean(off) < 0.15, off
