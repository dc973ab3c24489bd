"""SMPL-22 joints from an armature's bone heads/tails through a bone map (any rig whose bones a map covers)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

from .bone_map import BoneMap, JointSource, bundled_bone_maps, load_bone_map
from .skeleton import JOINT_NAMES

# A rig whose bones carry the SMPL joint names themselves (the armature the add-on creates).
SMPL_NAMES_MAP = BoneMap("smpl_names", 1.0, tuple(JointSource("joint", (name,)) for name in JOINT_NAMES))


def rig_bone_map(bone_names: Iterable[str]) -> BoneMap | None:
    """The bone map that fits a rig with these bone names: SMPL names first, then the bundled maps; None if none.

    A rig's bones have heads and tails but no End Sites, so `end_site` sources read the bone's tail (Blender's
    BVH importer puts a leaf bone's tail on its End Site).
    """
    names = set(bone_names)
    if all(name in names for name in JOINT_NAMES):
        return SMPL_NAMES_MAP
    for map_name in bundled_bone_maps():
        bone_map = load_bone_map(map_name)
        if all(bone in names for bone in bone_map.bones()):
            return bone_map
    return None


def joints_from_bones(
    bone_map: BoneMap, heads: Mapping[str, np.ndarray], tails: Mapping[str, np.ndarray] | None = None
) -> np.ndarray:
    """(T, 22, 3) joint positions from per-bone head (and tail) tracks (T, 3), in the tracks' units and axes."""

    def position(source: JointSource) -> np.ndarray:
        if source.kind == "end_site":
            if tails is None:
                raise ValueError(f"bone map {bone_map.name} needs the tail of {source.bones[0]}")
            return np.asarray(tails[source.bones[0]], dtype=np.float64)
        return np.mean([np.asarray(heads[b], dtype=np.float64) for b in source.bones], axis=0)

    return np.stack([position(s) for s in bone_map.sources], axis=1)
