"""Bone maps (JSON data files) from a BVH skeleton to the 22 SMPL joints, and BVH → SMPL-22 joint positions."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .bvh import BvhClip, bvh_end_site_positions, bvh_forward_kinematics
from .skeleton import JOINT_NAMES

BONE_MAP_DIR = Path(__file__).parent / "bone_maps"
SOURCE_KINDS = ("joint", "end_site", "midpoint")


class BoneMapError(ValueError):
    """A bone map that is malformed or does not fit a clip."""


@dataclass(frozen=True)
class JointSource:
    """Where one SMPL joint comes from: a joint's origin, the End Site below a joint, or the midpoint of two joints."""

    kind: str  # one of SOURCE_KINDS
    bones: tuple[str, ...]  # one bone name, or two for a midpoint


@dataclass(frozen=True)
class IkLimb:
    """A limb with an IK/FK switch (Rigify's `IK_FK`): which property switches it, and the controls of its IK chain.

    In IK mode the `end` joint's bone follows `target` (keyed: location and rotation), the bend plane turns with
    `chain`'s rotation (keyed) or, while the `pole_switch` property is on, with the `pole` (keyed: location); the
    joint after the end (toe) follows `tip` (keyed: rotation). Every name but `switch_property` is a bone.
    """

    joints: tuple[int, int, int]  # SMPL joints: base (hip / shoulder), middle (knee / elbow), end (ankle / wrist)
    switch_bone: str
    switch_property: str  # custom property of `switch_bone`: `fk_value` selects FK, `ik_value` IK
    fk_value: float
    ik_value: float
    target: str
    chain: str
    pole: str = ""
    pole_switch: str = ""  # custom property of `switch_bone`: true while the pole is in use
    tip: tuple[int, str] | None = None  # (SMPL joint, bone) of the joint after `end`, keyed in IK mode

    def bones(self) -> list[str]:
        """Every bone the limb names."""
        return [self.switch_bone, self.target, self.chain, *([self.pole] if self.pole else []),
                *([self.tip[1]] if self.tip else [])]  # fmt: skip


@dataclass(frozen=True)
class BoneMap:
    """SMPL joint index → source in the BVH (or armature), and the factor from the skeleton's length unit to metres.

    Armature presets may also carry: `prefix`, a regular expression for an optional name prefix (Mixamo's
    `mixamorig:` / `mixamorig1:`); `drive`, per SMPL joint the bone that is keyed when it is not the bone the joint is
    read from (Rigify: read ORG- bones, key FK controls); `leave_alone`, glob patterns of bones never keyed (twist,
    fingers, IK controls); `signature`, extra bones whose presence tells this rig from a look-alike; `root`, the bone
    keyed for root motion when it is not the pelvis's own (Rigify's `torso`: it turns with the pelvis and carries the
    location); `ik`, limbs with an IK/FK switch whose IK controls are keyed too.
    """

    name: str
    unit_to_metres: float
    sources: tuple[JointSource, ...]  # indexed by SMPL joint
    prefix: str = ""
    drive: tuple[str | None, ...] = ()  # indexed by SMPL joint; empty: the joint's own bone
    leave_alone: tuple[str, ...] = ()
    signature: tuple[str, ...] = ()
    root: str = ""
    ik: tuple[IkLimb, ...] = ()

    def bones(self) -> list[str]:
        """Every BVH bone name the map refers to, without repeats, in SMPL order."""
        return list(dict.fromkeys(b for s in self.sources for b in s.bones))


def bundled_bone_maps() -> list[str]:
    """Names of the bone maps shipped in `bone_maps/`."""
    return sorted(p.stem for p in BONE_MAP_DIR.glob("*.json"))


def _parse_source(smpl_joint: str, entry: object) -> JointSource:
    if entry is None:
        raise BoneMapError(f"{smpl_joint}: not mapped yet (null): set it to a joint of the skeleton")
    if not isinstance(entry, dict) or len(entry) != 1 or next(iter(entry)) not in SOURCE_KINDS:
        raise BoneMapError(
            f"{smpl_joint}: expected one of {{'joint': name}}, {{'end_site': name}}, "
            f"{{'midpoint': [a, b]}}, found {entry!r}"
        )
    kind, value = next(iter(entry.items()))
    bones = tuple(value) if kind == "midpoint" else (value,)
    if len(bones) != (2 if kind == "midpoint" else 1) or not all(isinstance(b, str) for b in bones):
        raise BoneMapError(f"{smpl_joint}: bad {kind} value {value!r}")
    return JointSource(kind, bones)


_IK_KEYS = ("joints", "switch", "property", "fk", "ik", "target", "chain", "pole", "pole_switch", "tip")


def _parse_ik(entry: object, name: str) -> IkLimb:
    """One entry of a map's `ik` list (see `IkLimb`); BoneMapError names what is wrong."""
    where = f"bone map {name}: ik limb {entry!r}"
    if not isinstance(entry, dict) or (unknown := [k for k in entry if k not in _IK_KEYS]):
        extra = f" (unknown: {', '.join(map(str, unknown))})" if isinstance(entry, dict) else ""
        raise BoneMapError(f"{where}: expected an object with keys {', '.join(_IK_KEYS)}{extra}")
    joints = entry.get("joints")
    if not isinstance(joints, list) or len(joints) != 3 or any(j not in JOINT_NAMES for j in joints):
        raise BoneMapError(f"{where}: 'joints' must list 3 SMPL joints (base, middle, end)")
    strings = {k: entry.get(k, "") for k in ("switch", "property", "target", "chain", "pole", "pole_switch")}
    if any(not isinstance(v, str) for v in strings.values()) or not all(
        strings[k] for k in ("switch", "property", "target", "chain")
    ):
        raise BoneMapError(f"{where}: 'switch', 'property', 'target' and 'chain' must be names")
    values = (entry.get("fk"), entry.get("ik"))
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        raise BoneMapError(f"{where}: 'fk' and 'ik' must be the switch values of FK and IK")
    tip = entry.get("tip")
    if tip is not None and (
        not isinstance(tip, dict) or len(tip) != 1 or next(iter(tip)) not in JOINT_NAMES
        or not isinstance(next(iter(tip.values())), str)
    ):  # fmt: skip
        raise BoneMapError(f"{where}: 'tip' must be {{SMPL joint: bone}}")
    index = JOINT_NAMES.index
    return IkLimb(
        (index(joints[0]), index(joints[1]), index(joints[2])),
        strings["switch"], strings["property"], float(values[0]), float(values[1]),  # type: ignore[arg-type]
        strings["target"], strings["chain"], strings["pole"], strings["pole_switch"],
        None if tip is None else (index(next(iter(tip))), next(iter(tip.values()))),
    )  # fmt: skip


def _ik_data(limb: IkLimb) -> dict:
    data: dict = {"joints": [JOINT_NAMES[j] for j in limb.joints], "switch": limb.switch_bone,
                  "property": limb.switch_property, "fk": limb.fk_value, "ik": limb.ik_value,
                  "target": limb.target, "chain": limb.chain}  # fmt: skip
    if limb.pole:
        data["pole"] = limb.pole
    if limb.pole_switch:
        data["pole_switch"] = limb.pole_switch
    if limb.tip is not None:
        data["tip"] = {JOINT_NAMES[limb.tip[0]]: limb.tip[1]}
    return data


def parse_bone_map(data: dict, name: str) -> BoneMap:
    """Validate the JSON object of a bone map; every one of the 22 SMPL joints must be mapped."""
    joints = data.get("joints", {})
    if missing := [j for j in JOINT_NAMES if j not in joints]:
        raise BoneMapError(f"bone map {name} lacks SMPL joints: {', '.join(missing)}")
    if unknown := [j for j in joints if j not in JOINT_NAMES]:
        raise BoneMapError(f"bone map {name} has unknown SMPL joints: {', '.join(unknown)}")
    unit = data.get("unit_to_metres")
    if not isinstance(unit, int | float) or unit <= 0:
        raise BoneMapError(f"bone map {name}: unit_to_metres must be a positive number, found {unit!r}")
    drive = data.get("drive", {})
    if not isinstance(drive, dict) or (unknown := [j for j in drive if j not in JOINT_NAMES]):
        raise BoneMapError(f"bone map {name}: 'drive' must map SMPL joint names to bones, found {drive!r}")
    lists = {key: data.get(key, []) for key in ("leave_alone", "signature")}
    for key, value in lists.items():
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise BoneMapError(f"bone map {name}: '{key}' must be a list of names, found {value!r}")
    root = data.get("root", "")
    if not isinstance(root, str):
        raise BoneMapError(f"bone map {name}: 'root' must be a bone name, found {root!r}")
    ik = data.get("ik", [])
    if not isinstance(ik, list):
        raise BoneMapError(f"bone map {name}: 'ik' must be a list of limbs, found {ik!r}")
    return BoneMap(
        name,
        float(unit),
        tuple(_parse_source(j, joints[j]) for j in JOINT_NAMES),
        prefix=str(data.get("prefix", "")),
        drive=tuple(drive.get(j) for j in JOINT_NAMES) if drive else (),
        leave_alone=tuple(lists["leave_alone"]),
        signature=tuple(lists["signature"]),
        root=root,
        ik=tuple(_parse_ik(limb, name) for limb in ik),
    )


def bone_map_data(bone_map: BoneMap, description: str = "") -> dict:
    """The JSON object of a bone map (the inverse of `parse_bone_map`): what a saved preset file holds."""
    data: dict = {"name": bone_map.name, "description": description, "unit_to_metres": bone_map.unit_to_metres}
    if bone_map.prefix:
        data["prefix"] = bone_map.prefix
    if bone_map.leave_alone:
        data["leave_alone"] = list(bone_map.leave_alone)
    if bone_map.signature:
        data["signature"] = list(bone_map.signature)
    if any(bone_map.drive):
        data["drive"] = {j: b for j, b in zip(JOINT_NAMES, bone_map.drive, strict=True) if b}
    if bone_map.root:
        data["root"] = bone_map.root
    if bone_map.ik:
        data["ik"] = [_ik_data(limb) for limb in bone_map.ik]
    data["joints"] = {
        j: {s.kind: list(s.bones) if s.kind == "midpoint" else s.bones[0]}
        for j, s in zip(JOINT_NAMES, bone_map.sources, strict=True)
    }
    return data


def load_bone_map(name_or_path: str | Path) -> BoneMap:
    """A bundled map by name (`cmu`, `cgspeed_daz`, `smpl22`) or a map from a JSON file path."""
    path = Path(name_or_path)
    if path.suffix != ".json":
        path = BONE_MAP_DIR / f"{name_or_path}.json"
        if not path.is_file():
            raise BoneMapError(f"no bundled bone map {name_or_path!r}; bundled: {', '.join(bundled_bone_maps())}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise BoneMapError(f"cannot read bone map {path}: {error}") from None
    return parse_bone_map(data, data.get("name", path.stem))


def missing_bones(clip: BvhClip, bone_map: BoneMap) -> list[str]:
    """Bones the map needs that the clip lacks (an `end_site` source also needs the joint's End Site)."""
    names = set(clip.names)
    with_end_site = {clip.names[j] for j in clip.end_sites}
    missing = [b for b in bone_map.bones() if b not in names]
    missing += [
        f"End Site of {s.bones[0]}"
        for s in bone_map.sources
        if s.kind == "end_site" and s.bones[0] in names and s.bones[0] not in with_end_site
    ]
    return missing


def check_bone_map(clip: BvhClip, bone_map: BoneMap) -> None:
    """Raise BoneMapError naming the bones of `bone_map` that `clip` lacks."""
    if missing := missing_bones(clip, bone_map):
        raise BoneMapError(f"BVH lacks bones of map {bone_map.name}: {', '.join(missing)}")


def detect_bone_map(clip: BvhClip) -> str:
    """Name of the bundled bone map that fits `clip` best; BoneMapError names the closest preset and what it lacks."""
    from .bvh_mapping import fit_bone_map  # (that module builds on this one)

    return fit_bone_map(clip).name


def bvh_to_smpl_joints(clip: BvhClip, bone_map: BoneMap | str | Path | None = None) -> np.ndarray:
    """SMPL-22 joint positions (F, 22, 3), float64 metres, in the BVH's own (Y-up) axes.

    `bone_map`: a BoneMap, a bundled name or JSON path, or None to detect it from the bone names.
    """
    if bone_map is None:
        from .bvh_mapping import fit_bone_map  # (that module builds on this one)

        bone_map = fit_bone_map(clip)  # names resolved (e.g. a prefix)
    elif not isinstance(bone_map, BoneMap):
        bone_map = load_bone_map(bone_map)
    check_bone_map(clip, bone_map)
    rotations, positions = bvh_forward_kinematics(clip)
    needs_end_sites = any(s.kind == "end_site" for s in bone_map.sources)
    end_sites = bvh_end_site_positions(clip, (rotations, positions)) if needs_end_sites else {}

    def position(source: JointSource) -> np.ndarray:
        if source.kind == "end_site":
            return end_sites[source.bones[0]]
        return np.mean([positions[:, clip.index(b)] for b in source.bones], axis=0)

    return np.stack([position(s) for s in bone_map.sources], axis=1) * bone_map.unit_to_metres
