"""SMPL-22 joints from an armature's bone heads/tails through a bone map, and picking the bone map that fits a rig."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from .bone_map import BoneMap, JointSource, bundled_bone_maps, load_bone_map
from .skeleton import JOINT_NAMES, PARENTS

# A rig whose bones carry the SMPL joint names themselves (the armature the add-on creates).
SMPL_NAMES_MAP = BoneMap("smpl_names", 1.0, tuple(JointSource("joint", (name,)) for name in JOINT_NAMES))


@dataclass(frozen=True)
class RigMatch:
    """How well a bone-map preset fits an armature.

    `bone_map` is the preset with the rig's own bone names (prefix resolved); `missing` the SMPL joints it could not
    map; `hierarchy` the fraction of SMPL parent → child pairs whose bones are ancestor → descendant in the rig;
    `signature` how many of the preset's signature bones the rig has.
    """

    preset: str
    bone_map: BoneMap
    missing: tuple[str, ...]
    hierarchy: float
    signature: int

    @property
    def score(self) -> float:
        """0..1: mapped joints × hierarchy agreement (1 = every joint mapped, every parent link right)."""
        return (1.0 - len(self.missing) / len(JOINT_NAMES)) * self.hierarchy

    @property
    def complete(self) -> bool:
        return not self.missing


def _ancestors(bone: str, parents: Mapping[str, str | None]) -> set[str]:
    out: set[str] = set()
    parent = parents.get(bone)
    while parent is not None and parent not in out:
        out.add(parent)
        parent = parents.get(parent)
    return out


def match_preset(preset: BoneMap, parents: Mapping[str, str | None]) -> RigMatch:
    """Score `preset` against a rig given as {bone name: parent name or None}; see `RigMatch`."""
    names = list(parents)
    by_name = {n: n for n in names}
    if preset.prefix:
        pattern = re.compile(preset.prefix)
        for n in names:  # exact names win over prefixed ones
            if (m := pattern.match(n)) is not None and m.end() > 0:
                by_name.setdefault(n[m.end() :], n)

    def resolve(bone: str | None) -> str | None:
        return None if bone is None else by_name.get(bone)

    sources, missing = [], []
    for joint, source in zip(JOINT_NAMES, preset.sources, strict=True):
        bones = tuple(resolve(b) for b in source.bones)
        if any(b is None for b in bones):
            missing.append(joint)
            sources.append(source)
        else:
            sources.append(JointSource(source.kind, tuple(b for b in bones if b is not None)))
    drive = tuple(resolve(b) for b in preset.drive)
    if any(b is None and d is not None for b, d in zip(drive, preset.drive, strict=True)):
        missing += [j for j, b, d in zip(JOINT_NAMES, drive, preset.drive, strict=True) if b is None and d is not None]
    checked = agreeing = 0
    for j, p in enumerate(PARENTS):
        if p < 0 or JOINT_NAMES[j] in missing or JOINT_NAMES[p] in missing:
            continue
        checked += 1
        child, parent = sources[j].bones[0], sources[p].bones[0]
        agreeing += parent in _ancestors(child, parents) or (
            sources[j].kind != "joint" or sources[p].kind != "joint"  # midpoints / tails: no bone of their own
        )
    hierarchy = agreeing / checked if checked else 0.0
    root = resolve(preset.root) if preset.root else ""
    if root is None:
        missing.append(JOINT_NAMES[0])
    ik = []  # limbs whose IK controls the rig lacks are keyed in FK only
    for limb in preset.ik:
        names = {b: resolve(b) for b in limb.bones()}
        if all(names.values()):
            ik.append(replace(limb, switch_bone=names[limb.switch_bone], target=names[limb.target],
                              chain=names[limb.chain], pole=names.get(limb.pole) or "",
                              tip=None if limb.tip is None else (limb.tip[0], names[limb.tip[1]])))  # fmt: skip
    resolved = replace(
        preset, sources=tuple(sources), drive=drive if preset.drive else (), root=root or "", ik=tuple(ik)
    )
    signature = sum(resolve(b) is not None for b in preset.signature)
    return RigMatch(preset.name, resolved, tuple(dict.fromkeys(missing)), hierarchy, signature)


def bundled_presets() -> list[BoneMap]:
    """Every bundled bone map (BVH skeletons and armature presets)."""
    return [load_bone_map(name) for name in bundled_bone_maps()]


def detect_rig_map(parents: Mapping[str, str | None], presets: Sequence[BoneMap] | None = None) -> RigMatch:
    """The best-scoring preset for a rig ({bone: parent}); ties go to the preset with more signature bones, then to
    the one listed first. Check `.complete` (and `.missing`) before using it."""
    candidates = bundled_presets() if presets is None else list(presets)
    if not candidates:
        raise ValueError("no bone-map presets to match")
    matches = [match_preset(p, parents) for p in candidates]
    return max(matches, key=lambda m: (round(m.score, 9), m.signature, -matches.index(m)))


def describe_missing(match: RigMatch) -> str:
    """'<preset> is the closest preset but lacks bones for: left_wrist (hand.L), ...' for a report."""
    looked_for = {j: s.bones for j, s in zip(JOINT_NAMES, match.bone_map.sources, strict=True)}
    listed = ", ".join(f"{j} ({'/'.join(looked_for[j])})" for j in match.missing)
    return f"closest bone-map preset {match.preset!r} finds no bone for: {listed}"


def describe_unmapped(match: RigMatch, proposed: int, missing_proposed: Sequence[str]) -> str:
    """Why a rig cannot be used as it is: the closest preset's missing joints when it fits at least half the joints,
    else (a preset that finds next to nothing would only send users renaming bones to its names) what the mapping
    proposed from the bone names found (`proposed` joints of 22, `missing_proposed` the others)."""
    if match.score >= 0.5:
        return describe_missing(match)
    found = f"{proposed} of {len(JOINT_NAMES)} joints"
    if missing_proposed:
        found += f" (not: {', '.join(missing_proposed)})"
    return f"no bone-map preset fits these bone names; a mapping proposed from the names finds {found}"


def is_left_alone(bone_map: BoneMap, bone: str) -> bool:
    """Whether `bone` matches one of the map's `leave_alone` patterns (never keyed)."""
    return any(fnmatch.fnmatchcase(bone, pattern) for pattern in bone_map.leave_alone)


def rig_bone_map(bone_names: Iterable[str]) -> BoneMap | None:
    """The bone map that fits a rig with these bone names: SMPL names first, then the bundled maps; None if none.

    A rig's bones have heads and tails but no End Sites, so `end_site` sources read the bone's tail (Blender's
    BVH importer puts a leaf bone's tail on its End Site).
    """
    names = set(bone_names)
    if all(name in names for name in JOINT_NAMES):
        return SMPL_NAMES_MAP
    for preset in bundled_presets():
        if (match := match_preset(preset, dict.fromkeys(names))).complete:
            return match.bone_map
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
