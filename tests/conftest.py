"""Shared pytest fixtures: real clips (CMU from the repository; HumanML3D 012314 where provided), the add-on."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS))  # lets tests import the `synthetic` helpers

from reference import cmu_walk_clip, humanml3d_reference  # noqa: E402  (needs the sys.path entry above)


@pytest.fixture(scope="session")
def clip_012314() -> tuple[np.ndarray, np.ndarray]:
    """(features (170, 263), joints (170, 22, 3)) of HumanML3D clip 012314, float32 as released; skips without
    MOTIONGPT3_HUMANML3D_REF (the clip is AMASS-derived and not in the repository)."""
    folder = humanml3d_reference()
    return np.load(folder / "feats_012314.npy"), np.load(folder / "joints_012314.npy")


@pytest.fixture(scope="session")
def cmu_walk() -> tuple[np.ndarray, np.ndarray]:
    """(features (165, 263), joints (166, 22, 3)) of the bundled CMU walk 131_01 at 20 fps (`cmu_walk_clip`)."""
    return cmu_walk_clip()


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The seeded random-weight `tiny` model (`serving.tiny_model`) saved as safetensors, for tests of commands and
    servers that load a checkpoint file."""
    from serving import tiny_model

    from backend.model.checkpoint import save_safetensors

    path = tmp_path_factory.mktemp("model") / "tiny.safetensors"
    model = tiny_model()
    save_safetensors(model, model.config, path)
    return path


@pytest.fixture
def one_thread():
    """Run torch on one intra-op thread: the tensors in these tests are tiny, and on a loaded 2-core machine
    two threads stall each other (measured 3-10x slower)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def backend_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The backend wheel, built by `build.py`'s own code into a temporary folder (once per test session)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("build_script", TESTS.parent / "build.py")
    assert spec is not None and spec.loader is not None
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    return build.build_wheel(tmp_path_factory.mktemp("backend_wheel"))


@pytest.fixture(scope="module")
def addon():
    """The add-on registered in real Blender for a Blender test module (`pytestmark = usefixtures("addon")`); left
    registered if something else registered it first."""
    import blender_addon
    from blender_addon import operators

    registered = not hasattr(__import__("bpy").types.Scene, "motiongpt3")
    if registered:
        blender_addon.register()
    yield
    operators.stop_timer()  # a live timer hangs bpy 4.5 at exit (BLENDER_NOTES.md section 8)
    if registered:
        blender_addon.unregister()


@pytest.fixture
def client():
    """A factory-fresh empty scene and a ScriptedClient standing in for the backend (what the add-on sends lands in
    `client.sent`; the test queues the events it answers with)."""
    import bpy
    from scripted_client import ScriptedClient

    from blender_addon import operators

    bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)
    scripted = ScriptedClient()
    operators.CONTROLLER.close()
    operators.CONTROLLER._client_factory = lambda: scripted
    yield scripted
    operators.stop_timer()
    operators.CONTROLLER.close()


# Blender as a Python module can hang or crash at interpreter exit when a timer is still registered
# (BLENDER_NOTES.md section 8). Once bpy has been imported, leave through os._exit with pytest's status.
_exit_status = 0


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    global _exit_status
    _exit_status = int(exitstatus)


def pytest_unconfigure(config: pytest.Config) -> None:
    if "bpy" in sys.modules:
        import os

        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_exit_status)
