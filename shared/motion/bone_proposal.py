"""A bone map proposed for a skeleton with unknown names, from name tokens and the hierarchy (pure python).

Names are cut into lower-case tokens (camelCase, digits, `._-: ` separators), the side is read from the usual
conventions (`.L`, `_l`, `L_`, `Left…`, `…_left`, `l…` before a capital), and each SMPL joint is looked for among the
descendants of its parent joint's bone by synonyms (thigh / upleg / upperleg, calf / shin / lowerleg, clavicle /
collar, …); the spine is the chain between the pelvis and the neck. `propose_bone_map(names, parents)` returns a
`Proposal`: the bone per joint (None where nothing fits) and why, ready for a person to check (the add-on's Bone
Mapping panel, a `motiongpt3 bonemap` command).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .bone_map import BoneMap, JointSource
from .skeleton import JOINT_NAMES

_CAMEL = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")
_IGNORED = {"mixamorig", "mixamorig1", "def", "org", "bip01", "bip001", "bip", "jnt", "joint", "bn", "bone", "b",
            "cc", "base", "rig", "deform", "sk", "ctrl", "c", "j", "mch", "character", "char", "armature"}  # fmt: skip
_LEFT = {"l", "left", "lt", "lft"}
_RIGHT = {"r", "right", "rt", "rgt"}
_HELPERS = {"twist", "roll", "bend", "ik", "pole", "target", "end", "nub", "tip", "null", "helper", "mch", "tweak",
            "ctrl", "fk", "rot", "vis", "offset", "corrective", "pv", "socket", "weapon", "prop"}  # fmt: skip

# Synonyms per role: (token or token pair joined, score). Higher wins; 0 or absent: not this role.
_ROLES: dict[str, dict[str, float]] = {
    "pelvis": {"hips": 3, "pelvis": 3, "hip": 1.5, "cog": 2, "root": 0.5, "spine": 0.3},
    "thigh": {"upleg": 3, "upperleg": 3, "thigh": 3, "femur": 3, "uprleg": 3, "hip": 2, "leg": 1},
    "shin": {"lowerleg": 3, "calf": 3, "shin": 3, "knee": 3, "tibia": 3, "crus": 3, "lowleg": 3, "leg": 2},
    "foot": {"foot": 3, "ankle": 3, "heel": 0.5},
    "toe": {"toe": 3, "toes": 3, "toebase": 3, "ball": 3, "foot": 0.2},
    "neck": {"neck": 3},
    "head": {"head": 3, "skull": 2},
    "collar": {"clavicle": 3, "clav": 3, "collar": 3, "collarbone": 3, "shoulder": 2, "scapula": 2},
    "upperarm": {"upperarm": 3, "uparm": 3, "humerus": 3, "arm": 2, "shoulder": 1},
    "forearm": {"forearm": 3, "lowerarm": 3, "lowarm": 3, "elbow": 3, "ulna": 3, "radius": 3, "arm": 1},
    "hand": {"hand": 3, "wrist": 3, "palm": 1},
}
_SIDED = {"thigh", "shin", "foot", "toe", "collar", "upperarm", "forearm", "hand"}


@dataclass(frozen=True)
class ParsedName:
    """A bone name cut into tokens, with the side it names ('L', 'R' or '')."""

    name: str
    side: str
    tokens: tuple[str, ...]


def parse_name(name: str) -> ParsedName:
    """Tokens (lower case, helper prefixes dropped) and side of a bone name."""
    side = ""
    base = name.split(":")[-1]  # namespaces (mixamorig:Hips)
    suffix = re.search(r"(?:[._\-\s])([LRlr])(?:\.\d+)?$", base)  # spine.L, thigh_l, hand-R (.001 copies)
    prefix = re.match(r"^([LRlr])(?:[._\-\s])", base)  # L_thigh, r.hand
    if suffix:
        side, base = suffix.group(1).upper(), base[: suffix.start()] + base[suffix.end() :]
    elif prefix:
        side, base = prefix.group(1).upper(), base[prefix.end() :]
    words = [w.lower() for part in re.split(r"[._\-\s:]+", base) for w in _CAMEL.findall(part)]
    if not side:
        for i, word in enumerate(words):
            if word in _LEFT | _RIGHT:
                side = "L" if word in _LEFT else "R"
                words.pop(i)
                break
    tokens = tuple(w for w in words if w not in _IGNORED and not w.isdigit())
    return ParsedName(name, side, tokens)


def role_score(parsed: ParsedName, role: str) -> float:
    """How well a parsed name says `role` (0: not at all); helper bones (twist, IK, pole, …) score 0."""
    if any(t in _HELPERS for t in parsed.tokens):
        return 0.0
    synonyms = _ROLES[role]
    joined = "".join(parsed.tokens)
    pairs = {a + b for a, b in zip(parsed.tokens, parsed.tokens[1:], strict=False)}
    best = max((synonyms.get(t, 0.0) for t in (*parsed.tokens, *pairs, joined)), default=0.0)
    if role in _SIDED and not parsed.side:
        return 0.0
    if role not in _SIDED and parsed.side:
        return 0.0
    return float(best)


@dataclass(frozen=True)
class Proposal:
    """A proposed mapping: per SMPL joint the bone whose head is the joint (None: nothing found) and a reason."""

    bones: tuple[str | None, ...]  # indexed by SMPL joint
    reasons: tuple[str, ...]  # indexed by SMPL joint: how the bone was chosen, or why none was

    @property
    def missing(self) -> tuple[str, ...]:
        return tuple(j for j, b in zip(JOINT_NAMES, self.bones, strict=True) if b is None)

    @property
    def complete(self) -> bool:
        return not self.missing

    def bone_map(self, name: str = "proposed") -> BoneMap:
        """The proposal as a bone map (every joint read from its bone's head); ValueError while incomplete."""
        if not self.complete:
            raise ValueError(f"proposal incomplete: no bone for {', '.join(self.missing)}")
        return BoneMap(name, 1.0, tuple(JointSource("joint", (b,)) for b in self.bones if b is not None))


class _Tree:
    def __init__(self, names: Sequence[str], parents: Sequence[str | None]):
        self.names = list(names)
        self.parent = dict(zip(names, parents, strict=True))
        self.children: dict[str | None, list[str]] = {}
        for n in self.names:
            self.children.setdefault(self.parent[n], []).append(n)
        self.parsed = {n: parse_name(n) for n in self.names}

    def descendants(self, bone: str | None) -> list[str]:
        out, stack = [], list(self.children.get(bone, []))
        while stack:
            n = stack.pop(0)
            out.append(n)
            stack.extend(self.children.get(n, []))
        return out  # breadth first: nearer bones first

    def depth(self, bone: str) -> int:
        d, p = 0, self.parent.get(bone)
        while p is not None:
            d, p = d + 1, self.parent.get(p)
        return d

    def path(self, top: str, bottom: str) -> list[str]:
        """Bones from `top` (exclusive) down to `bottom` (inclusive); [] if `bottom` is not below `top`."""
        chain, n = [], bottom
        while n is not None and n != top:
            chain.append(n)
            n = self.parent.get(n)
        return chain[::-1] if n == top else []

    def best(self, role: str, among: list[str], side: str = "", used: set[str] | None = None) -> str | None:
        """The best-scoring bone for `role` in `among` (ties: the nearer one, i.e. earlier in `among`)."""
        scored = [(role_score(self.parsed[n], role), -i, n) for i, n in enumerate(among)
                  if (not side or self.parsed[n].side == side) and n not in (used or set())]  # fmt: skip
        scored = [s for s in scored if s[0] > 0]
        return max(scored)[2] if scored else None


def propose_bone_map(names: Sequence[str], parents: Mapping[str, str | None] | Sequence[str | None]) -> Proposal:
    """A proposed SMPL-22 mapping of a skeleton: `names` its bones, `parents` per bone its parent's name (a mapping
    by name or a sequence aligned with `names`; None for roots). Joints are searched top-down, each among the
    descendants of its parent joint's bone; the side of sided joints must agree."""
    parent_list = [parents.get(n) for n in names] if isinstance(parents, Mapping) else list(parents)
    tree = _Tree(names, parent_list)
    bones: dict[str, str | None] = dict.fromkeys(JOINT_NAMES)
    reasons: dict[str, str] = {}
    used: set[str] = set()

    def take(joint: str, bone: str | None, why: str) -> str | None:
        bones[joint] = bone
        reasons[joint] = why if bone is not None else f"no bone below its parent joint's bone looks like {why}"
        if bone is not None:
            used.add(bone)
        return bone

    everything = tree.descendants(None)
    pelvis = tree.best("pelvis", everything)
    if pelvis is None:  # the shallowest bone with three or more children
        branching = [n for n in everything if len(tree.children.get(n, [])) >= 3]
        pelvis = min(branching, key=tree.depth) if branching else None
    take("pelvis", pelvis, "hips / pelvis")
    below = tree.descendants(pelvis) if pelvis else []
    for side, prefix in (("L", "left"), ("R", "right")):
        thigh = take(f"{prefix}_hip", tree.best("thigh", below, side, used), "a thigh / upper leg")
        shin = take(f"{prefix}_knee", tree.best("shin", tree.descendants(thigh), side, used) if thigh else None,
                    "a shin / calf / lower leg")  # fmt: skip
        foot = take(f"{prefix}_ankle", tree.best("foot", tree.descendants(shin), side, used) if shin else None,
                    "a foot / ankle")  # fmt: skip
        toe = tree.best("toe", tree.descendants(foot), side, used) if foot else None
        if toe is None and foot and len(kids := tree.children.get(foot, [])) == 1:
            toe = kids[0]  # the foot's only child
        take(f"{prefix}_foot", toe, "a toe / ball")
    neck = take("neck", tree.best("neck", below, "", used), "a neck")
    take("head", tree.best("head", tree.descendants(neck), "", used) if neck else None, "a head")
    spine = tree.path(pelvis, neck)[:-1] if pelvis and neck else []
    if len(spine) >= 3:
        take("spine1", spine[0], "the spine between pelvis and neck: first")
        take("spine2", spine[len(spine) // 2], "the spine between pelvis and neck: middle")
        take("spine3", spine[-1], "the spine between pelvis and neck: last")
    else:
        for j, bone in zip(("spine1", "spine2", "spine3"), spine + [None] * 3, strict=False):
            take(j, bone, "three spine bones between pelvis and neck")
    chest = bones["spine3"]
    for side, prefix in (("L", "left"), ("R", "right")):
        collar = take(f"{prefix}_collar", tree.best("collar", tree.descendants(chest), side, used) if chest else None,
                      "a clavicle / collar / shoulder")  # fmt: skip
        arm = take(f"{prefix}_shoulder",
                   tree.best("upperarm", tree.descendants(collar), side, used) if collar else None,
                   "an upper arm")  # fmt: skip
        fore = take(f"{prefix}_elbow", tree.best("forearm", tree.descendants(arm), side, used) if arm else None,
                    "a forearm / lower arm")  # fmt: skip
        take(f"{prefix}_wrist", tree.best("hand", tree.descendants(fore), side, used) if fore else None,
             "a hand / wrist")  # fmt: skip
    for joint, bone in bones.items():
        if bone is not None and joint not in reasons:
            reasons[joint] = "found"
    return Proposal(tuple(bones[j] for j in JOINT_NAMES), tuple(reasons[j] for j in JOINT_NAMES))
