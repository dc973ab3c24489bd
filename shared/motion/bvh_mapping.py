"""Fitting a bone map to a BVH skeleton: the bundled preset that fits (else the closest one and what it lacks), the
length unit (refusing a skeleton that is not human-sized in the stated unit, naming the likely one), draft maps."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np

from .bone_guess import propose_bone_map
from .bone_map import (
    BoneMap,
    BoneMapError,
    JointSource,
    bone_map_data,
    bvh_to_smpl_joints,
    check_bone_map,
    load_bone_map,
)
from .bvh import BvhClip
from .rig_joints import RigMatch, bundled_presets, match_preset
from .skeleton import JOINT_NAMES, TPOSE_OFFSETS

# Length units a BVH file may be in: option name -> (metres per unit, what to call it).
UNITS = {
    "m": (1.0, "metres"),
    "cm": (0.01, "centimetres"),
    "mm": (0.001, "millimetres"),
    "in": (0.0254, "inches"),
    "ft": (0.3048, "feet"),
    "cmu": (0.0564444, "CMU units (1/0.45 inch)"),
}
HUMAN_LEG_M = (0.35, 1.4)  # hip -> knee -> ankle, from small children to the tallest adults
SMPL_LEG_M = float(np.linalg.norm(TPOSE_OFFSETS[4]) + np.linalg.norm(TPOSE_OFFSETS[7]))  # 0.83 m
_J = {name: i for i, name in enumerate(JOINT_NAMES)}


def parse_unit(text: str) -> float | str:
    """`--unit`: 'map' (the bone map's unit_to_metres), 'auto' (from the skeleton's size), a name of UNITS or a
    positive number of metres per unit."""
    key = text.strip().lower()
    if key in ("map", "auto"):
        return key
    if key in UNITS:
        return UNITS[key][0]
    try:
        value = float(key)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise BoneMapError(f"--unit: expected map, auto, {', '.join(UNITS)} or metres per unit, got {text!r}")
    return value


def _unit_name(metres_per_unit: float) -> str:
    for _, (factor, name) in UNITS.items():
        if math.isclose(factor, metres_per_unit, rel_tol=1e-6):
            return name
    return f"units of {metres_per_unit:g} m"


def leg_length(joints: np.ndarray) -> float:
    """Median over frames of the mean hip → knee → ankle length of both legs of (T, 22, 3) SMPL joints."""
    legs = [
        np.linalg.norm(joints[:, _J[f"{s}_hip"]] - joints[:, _J[f"{s}_knee"]], axis=-1)
        + np.linalg.norm(joints[:, _J[f"{s}_knee"]] - joints[:, _J[f"{s}_ankle"]], axis=-1)
        for s in ("left", "right")
    ]
    return float(np.median((legs[0] + legs[1]) / 2))


def likely_unit(leg_in_file_units: float) -> str | None:
    """The UNITS key in which legs this long are human-sized, closest to SMPL's; None if no unit makes them so."""
    human = [
        (abs(math.log(leg_in_file_units * f / SMPL_LEG_M)), key)
        for key, (f, _) in UNITS.items()
        if leg_in_file_units > 0 and HUMAN_LEG_M[0] <= leg_in_file_units * f <= HUMAN_LEG_M[1]
    ]
    return min(human)[1] if human else None


def check_human_size(joints_file_units: np.ndarray, metres_per_unit: float, stated_by: str) -> None:
    """Refuse (BoneMapError) SMPL joints in file units whose legs are not human-sized at `metres_per_unit`, naming
    the likely unit. `stated_by` says where the unit came from ("bone map 'cmu'", "--unit")."""
    leg = leg_length(joints_file_units)
    metres = leg * metres_per_unit
    if HUMAN_LEG_M[0] <= metres <= HUMAN_LEG_M[1]:
        return
    where = f"in {_unit_name(metres_per_unit)} ({metres_per_unit:g} m per unit, from {stated_by})"
    low, high = HUMAN_LEG_M
    said = f"its legs (hip to ankle) would be {metres:.3g} m long {where}, not a human's {low}-{high} m"
    key = likely_unit(leg)
    if key is None:
        raise BoneMapError(f"not a human-sized skeleton: {said}, in no usual unit ({', '.join(UNITS)}) either")
    factor, name = UNITS[key]
    raise BoneMapError(
        f"not a human-sized skeleton: {said}; in {name} they are {leg * factor:.2f} m: the file is likely in "
        f'{name}, pass --unit {key} (or set "unit_to_metres": {factor:g} in the bone map)'
    )


# ----------------------------------------------------------------------------------------------- presets


def preset_matches(clip: BvhClip) -> list[RigMatch]:
    """How every bundled preset fits the clip's skeleton (a joint read from an End Site the clip lacks is missing)."""
    parents = {name: (clip.names[p] if p >= 0 else None) for name, p in zip(clip.names, clip.parents, strict=True)}
    with_end_site = {clip.names[j] for j in clip.end_sites}
    matches = []
    for preset in bundled_presets():
        match = match_preset(preset, parents)
        no_site = [
            j
            for j, s in zip(JOINT_NAMES, match.bone_map.sources, strict=True)
            if j not in match.missing and s.kind == "end_site" and s.bones[0] not in with_end_site
        ]
        matches.append(replace(match, missing=match.missing + tuple(no_site)) if no_site else match)
    return matches


def closest_preset_report(clip: BvhClip, matches: list[RigMatch]) -> str:
    """Why no preset fits: the closest by matched joints and what it lacks (never a preset that matches nothing)."""
    what = f"this BVH skeleton (root {clip.names[0]!r}, {len(clip.names)} joints)"
    hint = "write a map with `motiongpt3 bonemap FILE.bvh -o map.json`, complete it and pass --map map.json"
    best = max(matches, key=lambda m: (len(JOINT_NAMES) - len(m.missing), m.hierarchy))
    mapped = len(JOINT_NAMES) - len(best.missing)
    if mapped == 0:
        return f"no bundled bone map matches any joint of {what}; {hint}"
    looked_for = {j: s for j, s in zip(JOINT_NAMES, best.bone_map.sources, strict=True)}
    lacks = ", ".join(
        f"{j} ({'End Site of ' if looked_for[j].kind == 'end_site' else ''}{'/'.join(looked_for[j].bones)})"
        for j in best.missing
    )
    closest = f"the closest, {best.preset!r}, maps {mapped} of 22 joints and lacks {lacks}"
    return f"no bundled bone map fits {what}: {closest}; {hint}"


def fit_bone_map(clip: BvhClip, spec: str | Path | BoneMap = "auto") -> BoneMap:
    """The bone map for `clip`: `auto` picks the bundled preset that fits best (names resolved, e.g. Mixamo's prefix);
    a bundled name or a JSON path is loaded and checked. BoneMapError names what is missing."""
    if isinstance(spec, BoneMap) or str(spec) != "auto":
        bone_map = spec if isinstance(spec, BoneMap) else load_bone_map(spec)
        check_bone_map(clip, bone_map)
        return bone_map
    matches = preset_matches(clip)
    complete = [m for m in matches if m.complete]
    if not complete:
        raise BoneMapError(closest_preset_report(clip, matches))
    best = max(complete, key=lambda m: (round(m.hierarchy, 9), m.signature, -matches.index(m)))
    return best.bone_map


def bvh_joints_metres(
    clip: BvhClip, spec: str | Path | BoneMap = "auto", unit: float | str = "map"
) -> tuple[np.ndarray, BoneMap, float]:
    """(T, 22, 3) SMPL joints in metres (the file's axes), the bone map and the metres per file unit used.

    `unit`: 'map' (the bone map's), 'auto' (from the skeleton's size) or metres per unit. A skeleton that is not
    human-sized in that unit is refused naming the likely unit."""
    bone_map = fit_bone_map(clip, spec)
    joints = bvh_to_smpl_joints(clip, replace(bone_map, unit_to_metres=1.0))
    if unit == "auto":
        key = likely_unit(leg_length(joints))
        if key is None:
            check_human_size(joints, bone_map.unit_to_metres, f"bone map {bone_map.name!r}")  # raises, explains
        factor = UNITS[key][0] if key is not None else bone_map.unit_to_metres
    elif unit == "map":
        factor = bone_map.unit_to_metres
        check_human_size(joints, factor, f"the unit_to_metres of bone map {bone_map.name!r}")
    else:
        factor = float(unit)
        check_human_size(joints, factor, "--unit")
    return joints * factor, bone_map, factor


# ----------------------------------------------------------------------------------------------- drafts


def draft_bone_map(clip: BvhClip, name: str) -> tuple[dict, list[str]]:
    """A bone-map JSON object for `clip` proposed from joint names and hierarchy (`bone_guess`), its unit guessed from
    the skeleton's size, and the SMPL joints it could not map (null in the object, for the user to fill in)."""
    proposal = propose_bone_map(clip.names, clip.parents, list(clip.end_sites))
    sources = proposal.sources
    unit_note = "unit not guessed (legs unmapped): check unit_to_metres"
    factor = 1.0
    legs = [_J[f"{s}_{p}"] for s in ("left", "right") for p in ("hip", "knee", "ankle")]
    if all(sources[j] is not None for j in legs):  # the unit from the legs' length (other joints may be open)
        filler = sources[legs[0]]
        bone_map = BoneMap(name, 1.0, tuple(s if s is not None else filler for s in sources))
        key = likely_unit(leg_length(bvh_to_smpl_joints(clip, bone_map)))
        if key is not None:
            factor, unit_note = UNITS[key][0], f"unit guessed from the legs' length: {UNITS[key][1]}"
    placeholder = JointSource("joint", ("?",))
    data = bone_map_data(BoneMap(name, factor, tuple(s or placeholder for s in sources)))
    data["description"] = f"draft by `motiongpt3 bonemap` from joint names and hierarchy; {unit_note}"
    for joint, source in zip(JOINT_NAMES, sources, strict=True):
        if source is None:
            data["joints"][joint] = None
    if proposal.unmatched:
        data["unmatched"] = proposal.unmatched
        data["bvh_joints"] = list(clip.names)
    return data, proposal.unmatched


def bone_map_json(data: dict) -> str:
    """A bone-map JSON object as text in the bundled files' layout: one line per SMPL joint."""
    head = {k: v for k, v in data.items() if k != "joints"}
    lines = [f"  {json.dumps(k)}: {json.dumps(v)}," for k, v in head.items()]
    joints = [f"    {json.dumps(j)}: {json.dumps(s)}" for j, s in data.get("joints", {}).items()]
    return "{\n" + "\n".join(lines) + '\n  "joints": {\n' + ",\n".join(joints) + "\n  }\n}\n"
