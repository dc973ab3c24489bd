"""The `shared` package: vendored inside the add-on when packaged, the top-level one in a source tree."""

# ruff: noqa: F401
from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the type checker reads the source tree's `shared` (the packaged copy is the same code)
    from shared import shot as shot_spec
    from shared.motion import (
        axes,
        humanml3d,
        ik,
        pass_through,
        proportions,
        quaternion,
        resample,
        retarget,
        skeleton,
    )
    from shared.motion.align import GroundTransform, fit_ground_transform
    from shared.motion.bone_guess import propose_bone_map
    from shared.motion.bone_map import (
        BoneMap,
        BoneMapError,
        IkLimb,
        JointSource,
        bone_map_data,
        bundled_bone_maps,
        parse_bone_map,
    )
    from shared.motion.pipeline import encode_joints
    from shared.motion.rig_joints import (
        SMPL_NAMES_MAP,
        RigMatch,
        bundled_presets,
        describe_missing,
        describe_unmapped,
        detect_rig_map,
        is_left_alone,
        joints_from_bones,
        match_preset,
    )
else:
    try:  # packaged add-on: build.py copies shared/ to <add-on>/shared/, so no top-level `shared` reaches Blender
        from .shared import shot as shot_spec
        from .shared.motion import (
            axes,
            humanml3d,
            ik,
            pass_through,
            proportions,
            quaternion,
            resample,
            retarget,
            skeleton,
        )
        from .shared.motion.align import GroundTransform, fit_ground_transform
        from .shared.motion.bone_guess import propose_bone_map
        from .shared.motion.bone_map import (
            BoneMap,
            BoneMapError,
            IkLimb,
            JointSource,
            bone_map_data,
            bundled_bone_maps,
            parse_bone_map,
        )
        from .shared.motion.pipeline import encode_joints
        from .shared.motion.rig_joints import (
            SMPL_NAMES_MAP,
            RigMatch,
            bundled_presets,
            describe_missing,
            describe_unmapped,
            detect_rig_map,
            is_left_alone,
            joints_from_bones,
            match_preset,
        )
    except ImportError:  # source tree (tests): the repo root is on sys.path
        from shared import shot as shot_spec
        from shared.motion import (
            axes,
            humanml3d,
            ik,
            pass_through,
            proportions,
            quaternion,
            resample,
            retarget,
            skeleton,
        )
        from shared.motion.align import GroundTransform, fit_ground_transform
        from shared.motion.bone_guess import propose_bone_map
        from shared.motion.bone_map import (
            BoneMap,
            BoneMapError,
            IkLimb,
            JointSource,
            bone_map_data,
            bundled_bone_maps,
            parse_bone_map,
        )
        from shared.motion.pipeline import encode_joints
        from shared.motion.rig_joints import (
            SMPL_NAMES_MAP,
            RigMatch,
            bundled_presets,
            describe_missing,
            describe_unmapped,
            detect_rig_map,
            is_left_alone,
            joints_from_bones,
            match_preset,
        )


def client_module() -> ModuleType:
    """`shared.client` (the non-blocking ZeroMQ client); imported lazily because it needs zmq (see vendor.py)."""
    packaged = importlib.util.find_spec(f"{__package__}.shared") is not None
    return importlib.import_module(f"{__package__}.shared.client" if packaged else "shared.client")
