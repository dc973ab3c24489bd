"""Bone-mapping editor rules (no bpy): 22 slots → a checked bone map, and which preset names may be saved."""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence

from ._shared import BoneMap, JointSource, RigMatch, retarget, skeleton
from ._shared import is_left_alone as left_alone

JOINT_NAMES = tuple(skeleton.JOINT_NAMES)
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")  # a file stem that is safe on every platform


class MappingError(ValueError):
    """A mapping the editor refuses; the message names every slot (joint) and bone at fault."""


def slots_from_match(match: RigMatch) -> list[str]:
    """The 22 slots a preset match fills: the bone each joint is read from ('' for the joints it could not map)."""
    return ["" if j in match.missing else s.bones[0] for j, s in zip(JOINT_NAMES, match.bone_map.sources, strict=True)]


def _is_below(bone: str, ancestor: str, parents: Mapping[str, str | None]) -> bool:
    seen: set[str] = set()
    parent = parents.get(bone)
    while parent is not None and parent not in seen:
        if parent == ancestor:
            return True
        seen.add(parent)
        parent = parents.get(parent)
    return False


def _slot_errors(slots: Sequence[str], parents: Mapping[str, str | None], sources: Sequence[JointSource]) -> list[str]:
    """Empty slots, bones the armature lacks, bones read for two joints, and SMPL parent → child pairs whose bones
    are not ancestor → descendant (the rule `match_preset` scores; joints read from tails or midpoints pass)."""
    errors = []
    if empty := [j for j, bone in zip(JOINT_NAMES, slots, strict=True) if not bone]:
        errors.append(f"unmapped joints: {', '.join(empty)}")
    errors += [
        f"{j}: no bone {bone!r}" for j, bone in zip(JOINT_NAMES, slots, strict=True) if bone and bone not in parents
    ]
    users: dict[str, list[str]] = {}
    for j, source in zip(JOINT_NAMES, sources, strict=True):
        if source.kind == "joint" and source.bones[0] in parents:
            users.setdefault(source.bones[0], []).append(j)
    errors += [f"bone {bone!r} is used by {' and '.join(js)}" for bone, js in users.items() if len(js) > 1]
    for k, p in enumerate(skeleton.PARENTS):
        child, parent = sources[k], sources[p] if p >= 0 else None
        if parent is None or child.kind != "joint" or parent.kind != "joint":
            continue
        if child.bones[0] in parents and parent.bones[0] in parents and child.bones[0] != parent.bones[0]:
            if not _is_below(child.bones[0], parent.bones[0], parents):
                below = f"is not below {JOINT_NAMES[p]}'s bone {parent.bones[0]!r}"
                errors.append(f"{JOINT_NAMES[k]}: bone {child.bones[0]!r} {below}")
    return errors


def build_mapping(
    slots: Sequence[str], parents: Mapping[str, str | None], base: RigMatch | None = None, name: str = "custom"
) -> BoneMap:
    """The bone map of 22 slots (bone names, SMPL joint order) on a rig given as {bone: parent or None}.

    `base`: the preset match the slots were filled from; a joint whose slot still holds the preset's bone keeps the
    preset's source (tail / midpoint) and driven bone, and the preset's unit and leave-alone patterns are kept.
    Raises MappingError listing every problem (see `_slot_errors`)."""
    if len(slots) != len(JOINT_NAMES):
        raise MappingError(f"expected {len(JOINT_NAMES)} slots, found {len(slots)}")
    kept = [
        base is not None and j not in base.missing and bone == base.bone_map.sources[i].bones[0]
        for i, (j, bone) in enumerate(zip(JOINT_NAMES, slots, strict=True))
    ]
    sources = tuple(
        base.bone_map.sources[i] if keep and base is not None else JointSource("joint", (bone,))
        for i, (keep, bone) in enumerate(zip(kept, slots, strict=True))
    )
    drive: tuple[str | None, ...] = ()
    if base is not None and base.bone_map.drive:
        drive = tuple(d if keep else None for d, keep in zip(base.bone_map.drive, kept, strict=True))
    leave = base.bone_map.leave_alone if base is not None else ()
    bone_map = BoneMap(name, base.bone_map.unit_to_metres if base else 1.0, sources, drive=drive, leave_alone=leave)
    errors = _slot_errors(slots, parents, sources)
    errors += [
        f"{j}: bone {bone!r} matches a leave-alone pattern of preset {base.preset!r} and would never be keyed"
        for j, bone, keep in zip(JOINT_NAMES, slots, kept, strict=True)
        if base is not None and bone and not keep and left_alone(bone_map, bone)
    ]
    if not errors:
        try:
            retarget.driven_bones(bone_map)
        except ValueError as error:
            errors.append(str(error))
    if errors:
        raise MappingError("; ".join(errors))
    return bone_map


def preset_name_error(name: str, bundled: Collection[str]) -> str | None:
    """Why `name` cannot be a saved preset's file name (unsafe characters, a bundled preset's name), or None."""
    if not SAFE_NAME.fullmatch(name):
        return f"{name!r} is not a safe file name: use up to 64 letters, digits, '_' and '-' (not first)"
    if name.lower() in {b.lower() for b in bundled}:
        return f"{name!r} is a bundled preset: choose another name"
    return None
