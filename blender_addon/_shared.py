"""The `shared` package: vendored inside the add-on when packaged, the top-level one in a source tree."""

# ruff: noqa: F401
from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

try:  # packaged add-on: build.py copies shared/ to <add-on>/shared/, so no top-level `shared` reaches Blender
    from .shared.motion import axes, humanml3d, ik, quaternion, resample, skeleton
    from .shared.motion.align import GroundTransform, fit_ground_transform
    from .shared.motion.bone_map import BoneMap
    from .shared.motion.pipeline import encode_joints
    from .shared.motion.rig_joints import SMPL_NAMES_MAP, joints_from_bones, rig_bone_map
except ImportError:  # source tree (tests, type checking): the repo root is on sys.path
    from shared.motion import axes, humanml3d, ik, quaternion, resample, skeleton  # type: ignore[no-redef]
    from shared.motion.align import GroundTransform, fit_ground_transform  # type: ignore[no-redef]
    from shared.motion.bone_map import BoneMap  # type: ignore[no-redef]
    from shared.motion.pipeline import encode_joints  # type: ignore[no-redef]
    from shared.motion.rig_joints import SMPL_NAMES_MAP, joints_from_bones, rig_bone_map  # type: ignore[no-redef]


def client_module() -> ModuleType:
    """`shared.client` (the non-blocking ZeroMQ client); imported lazily because it needs zmq (see vendor.py)."""
    packaged = importlib.util.find_spec(f"{__package__}.shared") is not None
    return importlib.import_module(f"{__package__}.shared.client" if packaged else "shared.client")
