"""A draft bone map for an unknown skeleton from its joint names (tokens) and hierarchy, unmatched joints left open.

`propose_bone_map(names, parents)` works on any tree of named joints (a BVH skeleton or an armature): it finds each
side's hand and foot by name, walks up the hierarchy for elbow, shoulder, collar, knee and hip, takes the pelvis as
where the legs meet, head and neck by name, and the spine from the path between pelvis and neck.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from .bone_map import JointSource
from .skeleton import JOINT_NAMES

SIDES = {"l": "left", "left": "left", "lft": "left", "r": "right", "right": "right", "rt": "right", "rgt": "right"}
PARTS = {  # token -> part, for tokens that name one
    **dict.fromkeys(("hand", "wrist"), "hand"),
    **dict.fromkeys(("forearm", "elbow", "lowerarm", "lowarm"), "forearm"),
    **dict.fromkeys(("arm", "upperarm", "uparm", "shoulder", "shldr", "humerus"), "arm"),
    **dict.fromkeys(("collar", "clavicle", "clav"), "collar"),
    **dict.fromkeys(("foot", "ankle"), "foot"),
    **dict.fromkeys(("toe", "toes", "toebase", "ball"), "toe"),
    **dict.fromkeys(("knee", "shin", "calf", "lowerleg", "lowleg", "leg"), "shin"),
    **dict.fromkeys(("thigh", "upleg", "upperleg", "hip", "femur"), "thigh"),
    "neck": "neck",
    "head": "head",
}
NOT_A_JOINT = {"end", "site", "top", "nub", "tip", "twist", "roll", "eye", "jaw", "ik", "pole", "target"}
FINGERS = {"thumb", "index", "middle", "mid", "ring", "pinky", "little", "finger", "fingers"}
_COMPOUNDS = (("fore", "arm", "forearm"), ("up", "leg", "upleg"), ("up", "arm", "uparm"), ("upper", "arm", "upperarm"),
              ("lower", "arm", "lowerarm"), ("upper", "leg", "upperleg"), ("lower", "leg", "lowerleg"),
              ("toe", "base", "toebase"))  # fmt: skip


def name_tokens(name: str) -> list[str]:
    """'mixamorig:LeftForeArm' -> ['left', 'forearm']; 'lShldr' -> ['l', 'shldr']; 'hand.L' -> ['hand', 'l']."""
    name = name.rsplit(":", 1)[-1].rsplit("|", 1)[-1]  # namespaces (Mixamo, Maya)
    words = re.findall(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+", name)
    tokens: list[str] = []
    for word in (w.lower() for w in words):
        if word not in PARTS and word not in SIDES and word[:1] in "lr" and word[1:] in PARTS:
            tokens += [word[0], word[1:]]  # 'lhand'
        else:
            tokens.append(word)
    merged: list[str] = []
    for token in tokens:
        if merged and (merged[-1], token) in {(a, b) for a, b, _ in _COMPOUNDS}:
            merged[-1] = next(c for a, b, c in _COMPOUNDS if (a, b) == (merged[-1], token))
        else:
            merged.append(token)
    return merged


@dataclass(frozen=True)
class _Joint:
    name: str
    side: str | None  # "left", "right" or None
    part: str | None
    finger: bool
    helper: bool  # an end / twist / IK helper, never a joint of the map


def _describe(name: str) -> _Joint:
    tokens = name_tokens(name)
    sides = {SIDES[t] for t in tokens if t in SIDES}
    parts = [PARTS[t] for t in tokens if t in PARTS]
    return _Joint(
        name,
        next(iter(sides)) if len(sides) == 1 else None,
        parts[-1] if parts else None,
        any(t in FINGERS for t in tokens),
        any(t in NOT_A_JOINT for t in tokens),
    )


@dataclass(frozen=True)
class BoneProposal:
    """SMPL joint -> where it comes from (None: not found, the user must choose)."""

    sources: tuple[JointSource | None, ...]  # in SMPL order

    @property
    def unmatched(self) -> list[str]:
        return [j for j, s in zip(JOINT_NAMES, self.sources, strict=True) if s is None]


def propose_bone_map(names: Sequence[str], parents: Sequence[int], end_sites: Sequence[int] = ()) -> BoneProposal:
    """A draft map for joints `names` with `parents` (index, -1 for a root) and joints that have an End Site."""
    info = [_describe(n) for n in names]
    depth = [0] * len(names)
    for j, p in enumerate(parents):
        depth[j] = depth[p] + 1 if p >= 0 else 0

    def ancestors(j: int) -> list[int]:
        out = []
        while parents[j] >= 0:
            j = parents[j]
            out.append(j)
        return out

    def first(candidates: Sequence[int]) -> int | None:
        return min(candidates, key=lambda j: (depth[j], j)) if candidates else None

    def find(part: str, side: str | None, below: int | None = None) -> int | None:
        return first(
            [
                j
                for j, d in enumerate(info)
                if d.part == part and d.side == side and not d.finger and not d.helper
                and (below is None or below in ancestors(j))
            ]
        )  # fmt: skip

    def up(start: int | None, part: str) -> int | None:
        """The nearest ancestor of `start` named as `part`, else its parent."""
        if start is None:
            return None
        chain = ancestors(start)
        return next((j for j in chain if info[j].part == part and not info[j].helper), chain[0] if chain else None)

    found: dict[str, JointSource | None] = dict.fromkeys(JOINT_NAMES)
    joint = {}
    for side in ("left", "right"):
        hand = find("hand", side)
        elbow = up(hand, "forearm")
        shoulder = up(elbow, "arm")
        collar = parents[shoulder] if shoulder is not None and parents[shoulder] >= 0 else None
        if collar is not None and info[collar].side != side:
            collar = None  # the shoulder hangs straight off the spine: no collar joint
        foot = find("foot", side)
        knee = up(foot, "shin")
        hip = up(knee, "thigh")
        toe = find("toe", side, below=foot) if foot is not None else None
        joint.update({f"{side}_wrist": hand, f"{side}_elbow": elbow, f"{side}_shoulder": shoulder,
                      f"{side}_collar": collar, f"{side}_ankle": foot, f"{side}_knee": knee, f"{side}_hip": hip,
                      f"{side}_foot": toe})  # fmt: skip
        if toe is None and foot is not None and foot in end_sites:
            found[f"{side}_foot"] = JointSource("end_site", (names[foot],))
    hips = [joint["left_hip"], joint["right_hip"]]
    if None not in hips:
        shared_above = [a for a in ancestors(hips[0]) if a in ancestors(hips[1])]
        joint["pelvis"] = shared_above[0] if shared_above else None
    head = find("head", None)
    joint["head"] = head
    if head is not None:  # the lowest neck joint above the head (Neck, not Neck1), else the head's parent
        necks = [a for a in ancestors(head) if info[a].part == "neck" and not info[a].helper]
        joint["neck"] = first(necks) if necks else up(head, "neck")
    for name, index in joint.items():
        if index is not None:
            found[name] = JointSource("joint", (names[index],))
    _spine(found, joint, ancestors, names)
    for side in ("left", "right"):  # a missing collar: halfway between the chest and the shoulder (as CMU's maps)
        chest, shoulder = found["spine3"], joint.get(f"{side}_shoulder")
        if found[f"{side}_collar"] is None and chest is not None and shoulder is not None and chest.kind == "joint":
            found[f"{side}_collar"] = JointSource("midpoint", (chest.bones[0], names[shoulder]))
    return BoneProposal(tuple(found[j] for j in JOINT_NAMES))


def _spine(found, joint, ancestors, names) -> None:
    """spine1..3 from the joints between the pelvis and the neck: the chest (spine3) is where the arms branch off."""
    pelvis, neck = joint.get("pelvis"), joint.get("neck")
    if pelvis is None or neck is None or pelvis not in ancestors(neck):
        return
    path = list(reversed(ancestors(neck)))
    path = path[path.index(pelvis) + 1 :]  # from just above the pelvis up to just below the neck
    shoulders = [joint.get("left_shoulder"), joint.get("right_shoulder")]
    if None not in shoulders:
        above = [a for a in ancestors(shoulders[0]) if a in ancestors(shoulders[1]) and a in path]
        if above:
            path = path[: path.index(above[0]) + 1]  # the chest: the highest spine joint needed
    chosen: list[JointSource] = []
    if len(path) >= 3:
        picks = [path[0], path[len(path) // 2], path[-1]] if len(path) > 3 else path
        chosen = [JointSource("joint", (names[j],)) for j in picks]
    elif len(path) == 2:
        a, b = names[path[0]], names[path[1]]
        chosen = [JointSource("joint", (a,)), JointSource("midpoint", (a, b)), JointSource("joint", (b,))]
    elif len(path) == 1:
        a, p, n = names[path[0]], names[pelvis], names[neck]
        chosen = [JointSource("midpoint", (p, a)), JointSource("joint", (a,)), JointSource("midpoint", (a, n))]
    for key, source in zip(("spine1", "spine2", "spine3"), chosen, strict=False):
        found[key] = source
