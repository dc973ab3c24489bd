"""BVH motion files: a general reader, forward kinematics, and the writer for the 22-joint SMPL skeleton."""

from __future__ import annotations

import gzip
import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .quaternion import axis_angle_to_matrix, matrix_to_euler
from .resample import nominal_fps
from .skeleton import BVH_JOINT_NAMES, NUM_JOINTS, TPOSE_OFFSETS, children_of, depth_first_order

POSITION_CHANNELS = ("Xposition", "Yposition", "Zposition")
ROTATION_CHANNELS = ("Xrotation", "Yrotation", "Zrotation")
END_SITE_LENGTH = 0.07  # metres; leaves of the written skeleton get a short End Site along their bone


class BvhError(ValueError):
    """A BVH file that cannot be parsed."""


@dataclass
class BvhClip:
    """A parsed BVH file. Lengths are in the file's own unit; angles in degrees; joints in file order."""

    names: list[str]
    parents: list[int]  # -1 for a root
    offsets: np.ndarray  # (J, 3) OFFSET of each joint relative to its parent
    channels: list[tuple[str, ...]]  # per joint, in file order
    frame_time: float  # seconds
    motion: np.ndarray  # (F, C) float64, C = total number of channels
    end_sites: dict[int, np.ndarray] = field(default_factory=dict)  # joint index -> End Site OFFSET (3,)

    @property
    def num_frames(self) -> int:
        return self.motion.shape[0]

    @property
    def fps(self) -> float:
        """Frame rate, snapped to the intended whole or NTSC rate (`.0083333` s -> 120 fps)."""
        return nominal_fps(1.0 / self.frame_time)

    def index(self, name: str) -> int:
        """Index of the joint called `name`."""
        return self.names.index(name)

    def channel_columns(self, joint: int) -> range:
        """Columns of `motion` that hold the channels of `joint`."""
        start = sum(len(c) for c in self.channels[:joint])
        return range(start, start + len(self.channels[joint]))


# ---------------------------------------------------------------------------------------------------------------
# Reading


class _Tokens:
    """Whitespace-separated hierarchy tokens with their 1-based line numbers."""

    def __init__(self, lines: list[str]) -> None:
        self.items = [(tok, i + 1) for i, line in enumerate(lines) for tok in line.split()]
        self.pos = 0

    def line(self) -> int:
        """Line of the token read last."""
        return self.items[max(self.pos - 1, 0)][1] if self.items else 1

    def at_end(self) -> bool:
        return self.pos >= len(self.items)

    def peek(self) -> str:
        return "" if self.at_end() else self.items[self.pos][0]

    def next(self, what: str) -> str:
        if self.pos >= len(self.items):
            raise BvhError(f"unexpected end of HIERARCHY, expected {what}")
        self.pos += 1
        return self.items[self.pos - 1][0]

    def rest_of_line(self, what: str) -> list[str]:
        """The next token and every further token on its line, up to an opening '{' (left to be read next)."""
        first = self.next(what)
        line = self.line()
        words = [first]
        while not self.at_end() and self.items[self.pos][1] == line and self.items[self.pos][0] != "{":
            words.append(self.next(what))
        return words

    def expect(self, word: str) -> None:
        if (tok := self.next(f"'{word}'")).lower() != word.lower():
            raise BvhError(f"line {self.line()}: expected '{word}', found '{tok}'")

    def number(self, what: str) -> float:
        tok = self.next(what)
        try:
            return float(tok)
        except ValueError:
            raise BvhError(f"line {self.line()}: {what} must be a number, found '{tok}'") from None

    def vector(self, what: str) -> list[float]:
        return [self.number(what) for _ in range(3)]


@dataclass
class _Hierarchy:
    names: list[str] = field(default_factory=list)
    parents: list[int] = field(default_factory=list)
    offsets: list[list[float]] = field(default_factory=list)
    channels: list[tuple[str, ...]] = field(default_factory=list)
    end_sites: dict[int, np.ndarray] = field(default_factory=dict)

    def unique(self, name: str) -> str:
        """`name`, or `name.001`, `name.002`... when a joint of that name exists (as Blender's importer does)."""
        candidate, k = name, 0
        while candidate in self.names:
            k += 1
            candidate = f"{name}.{k:03d}"
        return candidate


_CHANNEL_NAMES = {c.lower(): c for c in POSITION_CHANNELS + ROTATION_CHANNELS}


def _parse_joint(tokens: _Tokens, tree: _Hierarchy, parent: int) -> None:
    """Parse `name { OFFSET x y z CHANNELS n ... (JOINT ... | End Site ...)* }` of one joint into `tree`.

    Keywords and channel names are case-insensitive; a name with spaces is joined with underscores and a repeated
    name gets a `.001` suffix (both as Blender's importer does)."""
    name = tree.unique("_".join(tokens.rest_of_line("joint name")))
    joint = len(tree.names)
    tree.names.append(name)
    tree.parents.append(parent)
    tokens.expect("{")
    tokens.expect("OFFSET")
    tree.offsets.append(tokens.vector(f"OFFSET of {name}"))
    tokens.expect("CHANNELS")
    count = tokens.number(f"CHANNELS count of {name}")
    if count != int(count) or count < 0:
        raise BvhError(f"line {tokens.line()}: bad CHANNELS count {count} of joint {name}")
    listed = [tokens.next(f"channel of {name}") for _ in range(int(count))]
    if bad := [c for c in listed if c.lower() not in _CHANNEL_NAMES]:
        raise BvhError(f"line {tokens.line()}: unknown channel {bad[0]} of joint {name} (or wrong CHANNELS count)")
    channels = tuple(_CHANNEL_NAMES[c.lower()] for c in listed)
    if len(set(channels)) != len(channels):
        raise BvhError(f"line {tokens.line()}: joint {name} lists a channel twice: {' '.join(listed)}")
    tree.channels.append(channels)
    while (tok := tokens.next(f"'}}' closing joint {name}")) != "}":
        if tok.lower() == "joint":
            _parse_joint(tokens, tree, joint)
        elif tok.lower() == "end":
            site = tokens.rest_of_line("'Site'")  # a name after 'End Site' is allowed and ignored
            if site[0].lower() != "site":
                raise BvhError(f"line {tokens.line()}: expected 'Site' after 'End', found '{site[0]}'")
            _parse_end_site(tokens, tree, joint)
        else:
            raise BvhError(f"line {tokens.line()}: expected JOINT, End Site or '}}' in joint {name}, found '{tok}'")


def _parse_end_site(tokens: _Tokens, tree: _Hierarchy, joint: int) -> None:
    if joint in tree.end_sites:
        raise BvhError(f"line {tokens.line()}: joint {tree.names[joint]} has more than one End Site")
    tokens.expect("{")
    tokens.expect("OFFSET")
    tree.end_sites[joint] = np.array(tokens.vector(f"End Site OFFSET of {tree.names[joint]}"))
    tokens.expect("}")


def _parse_header_value(line_no: int, line: str, key: str) -> float:
    head, _, value = line.partition(":")
    if " ".join(head.split()).lower() != key.lower():
        raise BvhError(f"line {line_no}: expected '{key}:', found '{line.strip()}'")
    try:
        return float(value)
    except ValueError:
        raise BvhError(f"line {line_no}: '{key}' must be a number, found '{value.strip()}'") from None


def _parse_motion(lines: list[str], first_line: int, num_channels: int) -> tuple[float, np.ndarray]:
    """`Frames:`, `Frame Time:` and the frame lines after MOTION → (frame_time, (F, C) motion)."""
    rows = [(first_line + i, line) for i, line in enumerate(lines) if line.strip()]
    if len(rows) < 2:
        raise BvhError(f"line {first_line}: MOTION needs 'Frames:' and 'Frame Time:' lines")
    frames = _parse_header_value(*rows[0], "Frames")
    frame_time = _parse_header_value(*rows[1], "Frame Time")
    if frame_time <= 0:
        raise BvhError(f"line {rows[1][0]}: Frame Time must be positive, found {frame_time}")
    values = [(line_no, line.split()) for line_no, line in rows[2:]]
    if frames != len(values):
        raise BvhError(f"line {rows[0][0]}: 'Frames: {frames:g}' but {len(values)} frame lines")
    for line_no, row in values:
        if len(row) != num_channels:
            raise BvhError(f"line {line_no}: {len(row)} values, expected {num_channels} channels")
    try:
        motion = np.array([v for _, row in values for v in row], dtype=np.float64)
    except ValueError:
        line_no, bad = next((n, v) for n, row in values for v in row if not _is_number(v))
        raise BvhError(f"line {line_no}: motion value '{bad}' is not a number") from None
    return frame_time, motion.reshape(len(values), num_channels)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def parse_bvh(text: str) -> BvhClip:
    """Parse BVH text (any hierarchy, channel order and line endings; one or more ROOT joints)."""
    lines = text.splitlines()
    motion_at = next((i for i, line in enumerate(lines) if line.strip().upper() == "MOTION"), None)
    if motion_at is None:
        raise BvhError("no MOTION section")
    tokens = _Tokens(lines[:motion_at])
    tokens.expect("HIERARCHY")
    tree = _Hierarchy()
    tokens.expect("ROOT")
    _parse_joint(tokens, tree, -1)
    while not tokens.at_end():
        if tokens.peek().lower() != "root":
            raise BvhError(
                f"line {tokens.line() + 1}: unexpected '{tokens.next('')}' after a ROOT joint's closing '}}'"
            )
        tokens.next("ROOT")
        _parse_joint(tokens, tree, -1)
    num_channels = sum(len(c) for c in tree.channels)
    frame_time, motion = _parse_motion(lines[motion_at + 1 :], motion_at + 2, num_channels)
    return BvhClip(
        names=tree.names,
        parents=tree.parents,
        offsets=np.array(tree.offsets, dtype=np.float64).reshape(-1, 3),
        channels=tree.channels,
        frame_time=frame_time,
        motion=motion,
        end_sites=tree.end_sites,
    )


def read_bvh(path_or_text: str | Path) -> BvhClip:
    """Read a BVH file (`.bvh`, or gzip-compressed `.bvh.gz`); a string that starts with HIERARCHY is taken as the
    file's text."""
    if isinstance(path_or_text, str) and path_or_text.lstrip()[:9].upper() == "HIERARCHY":
        return parse_bvh(path_or_text)
    data = Path(path_or_text).read_bytes()
    if data[:2] == b"\x1f\x8b":  # the gzip magic number
        data = gzip.decompress(data)
    return parse_bvh(data.decode("utf-8-sig", errors="replace"))


# ---------------------------------------------------------------------------------------------------------------
# Forward kinematics


def _local_transforms(clip: BvhClip, joint: int) -> tuple[np.ndarray, np.ndarray]:
    """(F, 3, 3) rotation and (F, 3) translation of `joint` relative to its parent (for a root: world).

    Rotation channels compose in listed order as intrinsic rotations (`Zrotation Xrotation Yrotation` →
    Rz·Rx·Ry). Position channels, on any joint, root included, are the joint's position in its parent's frame and
    replace its OFFSET, as in Blender's importer (`io_anim_bvh`: pose location = channel value − rest head); a
    joint that has some position channels but not all three takes 0 for the missing ones (Blender does the same).
    A joint without position channels sits at its OFFSET.
    """
    values = clip.motion[:, clip.channel_columns(joint)]
    rotation = np.broadcast_to(np.eye(3), (clip.num_frames, 3, 3))
    has_position = any(c in POSITION_CHANNELS for c in clip.channels[joint])
    translation = np.zeros((clip.num_frames, 3)) if has_position else np.tile(clip.offsets[joint], (clip.num_frames, 1))
    for k, channel in enumerate(clip.channels[joint]):
        axis = "XYZ".index(channel[0])
        if channel in ROTATION_CHANNELS:
            rotation = rotation @ axis_angle_to_matrix(np.eye(3)[axis], np.deg2rad(values[:, k]))
        else:
            translation[:, axis] = values[:, k]
    return rotation, translation


def bvh_forward_kinematics(clip: BvhClip) -> tuple[np.ndarray, np.ndarray]:
    """Global rotations (F, J, 3, 3) and world positions (F, J, 3) of every joint, in the file's units."""
    rotations = np.zeros((clip.num_frames, len(clip.names), 3, 3))
    positions = np.zeros((clip.num_frames, len(clip.names), 3))
    for j, parent in enumerate(clip.parents):  # parents always precede their children in file order
        local_rotation, translation = _local_transforms(clip, j)
        if parent < 0:
            rotations[:, j], positions[:, j] = local_rotation, translation
        else:
            rotations[:, j] = rotations[:, parent] @ local_rotation
            positions[:, j] = positions[:, parent] + np.einsum("fij,fj->fi", rotations[:, parent], translation)
    return rotations, positions


def bvh_world_positions(clip: BvhClip) -> np.ndarray:
    """World positions (F, J, 3) of every joint, in the file's units and axes."""
    return bvh_forward_kinematics(clip)[1]


def bvh_end_site_positions(
    clip: BvhClip, forward_kinematics: tuple[np.ndarray, np.ndarray] | None = None
) -> dict[str, np.ndarray]:
    """World positions (F, 3) of each End Site, keyed by the name of the joint it hangs from.

    `forward_kinematics`: the clip's `bvh_forward_kinematics` output, when the caller already has it.
    """
    rotations, positions = forward_kinematics or bvh_forward_kinematics(clip)
    return {
        clip.names[j]: positions[:, j] + np.einsum("fij,j->fi", rotations[:, j], offset)
        for j, offset in clip.end_sites.items()
    }


# ---------------------------------------------------------------------------------------------------------------
# Writing the 22-joint skeleton (HUMANML3D.md section 6)


def _hierarchy_lines(joint: int, rest_offsets: np.ndarray, depth: int) -> list[str]:
    """ROOT/JOINT block of `joint` and its subtree; the root gets OFFSET 0 and 6 channels."""
    pad = "\t" * depth
    keyword, channels = ("ROOT", "6 Xposition Yposition Zposition") if joint == 0 else ("JOINT", "3")
    x, y, z = rest_offsets[joint] if joint else np.zeros(3)
    lines = [f"{pad}{keyword} {BVH_JOINT_NAMES[joint]}", f"{pad}{{", f"{pad}\tOFFSET {x:.6f} {y:.6f} {z:.6f}"]
    lines.append(f"{pad}\tCHANNELS {channels} Zrotation Yrotation Xrotation")
    for child in children_of(joint):
        lines += _hierarchy_lines(child, rest_offsets, depth + 1)
    if not children_of(joint):
        x, y, z = rest_offsets[joint] / np.linalg.norm(rest_offsets[joint]) * END_SITE_LENGTH
        lines += [f"{pad}\tEnd Site", f"{pad}\t{{", f"{pad}\t\tOFFSET {x:.6f} {y:.6f} {z:.6f}", f"{pad}\t}}"]
    return [*lines, f"{pad}}}"]


def write_bvh(
    path: str | Path,
    local_rotations: np.ndarray,
    root_positions: np.ndarray,
    rest_offsets: np.ndarray = TPOSE_OFFSETS,
    fps: float = 20.0,
) -> None:
    """Write the 22-joint skeleton as BVH (metres, Y-up).

    `local_rotations` (N, 22, 3, 3) in SMPL order: joint j's rotation relative to its parent (the root's is
    global); `root_positions` (N, 3) absolute pelvis positions; `rest_offsets` (22, 3) parent-relative.
    """
    local_rotations = np.asarray(local_rotations, dtype=np.float64)
    root_positions = np.asarray(root_positions, dtype=np.float64)
    n = local_rotations.shape[0]
    if local_rotations.shape != (n, NUM_JOINTS, 3, 3) or root_positions.shape != (n, 3):
        raise ValueError(
            f"expected (N, 22, 3, 3) rotations and (N, 3) positions, got {local_rotations.shape} "
            f"and {root_positions.shape}"
        )
    order = list(depth_first_order())
    angles = matrix_to_euler(local_rotations[:, order], "ZYX").reshape(n, -1)
    motion = io.StringIO()
    np.savetxt(motion, np.concatenate([root_positions, angles], axis=1), fmt="%.6f")
    text = "\n".join(
        [
            "HIERARCHY",
            *_hierarchy_lines(0, np.asarray(rest_offsets), 0),
            "MOTION",
            f"Frames: {n}",
            f"Frame Time: {1.0 / fps:.8f}",
        ]
    )
    Path(path).write_text(f"{text}\n{motion.getvalue()}", encoding="utf-8")
