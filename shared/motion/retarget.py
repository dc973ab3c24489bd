"""Rest-pose-aware retargeting of SMPL-22 motion onto any mapped armature (HUMANML3D.md §4.3–4.5), pure numpy.

Frames: *armature* space (the rig's `bone.matrix_local`, armature units), *world* (HumanML3D axes: Y-up, metres:
`zup_to_yup(metres_per_unit · matrix_world · p)`), and the rig's *character* frame: world turned about Y so that the
rig's rest pose faces +Z, origin on its floor under its rest pelvis. Decoded motion lives in the character frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from . import axes, ik
from .align import yaw_matrix
from .bone_map import BoneMap
from .humanml3d import FEET_THRESHOLD, FPS
from .proportions import Proportions, to_rig, to_smpl
from .rig_joints import is_left_alone, joints_from_bones
from .skeleton import FOOT_LEFT, FOOT_RIGHT, PARENTS, depth_first_order

_PARENT_INDEX = np.maximum(np.array(PARENTS), 0)
_FEET = [*FOOT_LEFT, *FOOT_RIGHT]  # l_ankle, l_ball, r_ankle, r_ball: the order of the contact labels
_LEGS = ((1, 4, 7, 10), (2, 5, 8, 11))  # hip, knee, ankle, ball per side, contact labels 2k, 2k+1

SNAP_YAW = np.radians(10.0)  # a rest facing this close to an axis is taken as facing along it


@dataclass(frozen=True)
class RigRest:
    """An armature at rest: its bones (parents before children) with `bone.matrix_local` and length."""

    names: tuple[str, ...]
    parents: np.ndarray  # (B,) index into names, -1 for roots
    rest: np.ndarray  # (B, 4, 4) armature space; the Y axis points head → tail
    lengths: np.ndarray  # (B,)

    @classmethod
    def from_bones(
        cls, names: Sequence[str], parents: Sequence[str | None], rest: np.ndarray, lengths: Sequence[float]
    ) -> RigRest:
        """From per-bone parent names (any order): sorted so that parents come first."""
        parent_of = dict(zip(names, parents, strict=True))
        order: list[str] = []
        placed: set[str] = set()

        def place(name: str) -> None:
            if name not in placed:
                parent = parent_of[name]
                if parent is not None:
                    place(parent)
                placed.add(name)
                order.append(name)

        for name in names:
            place(name)
        index = {n: i for i, n in enumerate(names)}
        at = {n: i for i, n in enumerate(order)}
        return cls(
            tuple(order),
            np.array([-1 if parent_of[n] is None else at[parent_of[n] or ""] for n in order]),
            np.asarray(rest, dtype=np.float64)[[index[n] for n in order]],
            np.asarray(lengths, dtype=np.float64)[[index[n] for n in order]],
        )

    def index(self, name: str) -> int:
        return self.names.index(name)

    def rest_joints(self, bone_map: BoneMap) -> np.ndarray:
        """(22, 3) SMPL joints of the rest pose in armature space (heads; `end_site` sources: tails)."""
        heads = self.rest[:, :3, 3]
        tails = heads + self.rest[:, :3, 1] * self.lengths[:, None]
        return joints_from_bones(
            bone_map,
            {n: heads[i][None] for i, n in enumerate(self.names)},
            {n: tails[i][None] for i, n in enumerate(self.names)},
        )[0]


@dataclass(frozen=True)
class CharacterFrame:
    """Armature space ⇄ world (Y-up metres) ⇄ the rig's character frame (rest facing +Z, floor at y = 0)."""

    world_from_armature: np.ndarray  # (4, 4) Object.matrix_world (rotation × uniform scale + translation)
    metres_per_unit: float  # scene.unit_settings.scale_length
    yaw: float  # the rig's rest facing: +Z turned by `yaw` about +Y
    origin: np.ndarray  # (3,) world point under the rest pelvis, at the height of the lowest rest foot joint

    def armature_to_world(self, points: np.ndarray) -> np.ndarray:
        m = self.world_from_armature
        return axes.zup_to_yup((np.asarray(points) @ m[:3, :3].T + m[:3, 3]) * self.metres_per_unit)

    def world_to_armature(self, points: np.ndarray) -> np.ndarray:
        m = self.world_from_armature
        return (axes.yup_to_zup(np.asarray(points)) / self.metres_per_unit - m[:3, 3]) @ np.linalg.inv(m[:3, :3]).T

    def world_to_character(self, points: np.ndarray) -> np.ndarray:
        return (np.asarray(points) - self.origin) @ yaw_matrix(self.yaw)  # row form of Yaw(−θ)·(p − o)

    def character_to_world(self, points: np.ndarray) -> np.ndarray:
        return np.asarray(points) @ yaw_matrix(self.yaw).T + self.origin

    def rotation(self) -> np.ndarray:
        """(3, 3) rotation taking armature-space directions to character-frame directions (scale removed)."""
        linear = yaw_matrix(-self.yaw) @ axes.ZUP_TO_YUP @ self.world_from_armature[:3, :3]
        u, _, vt = np.linalg.svd(linear)  # polar part: exact for rotation × uniform scale
        return u @ vt


def character_frame(world_from_armature: np.ndarray, metres_per_unit: float, rest_joints: np.ndarray) -> CharacterFrame:
    """The character frame of a rig from its object matrix, unit scale and (22, 3) armature-space rest joints."""
    matrix = np.asarray(world_from_armature, dtype=np.float64)
    probe = CharacterFrame(matrix, float(metres_per_unit), 0.0, np.zeros(3))
    world = probe.armature_to_world(rest_joints)
    across = (world[2] - world[1]) + (world[17] - world[16])  # right − left; facing = up × across
    yaw = float(np.arctan2(across[2], -across[0]))  # horizontal forward (−across_z, across_x) → atan2(fx, fz)
    quarter = round(yaw / (np.pi / 2)) * (np.pi / 2)
    if abs(yaw - quarter) < SNAP_YAW:  # modelled facing an axis: small rest asymmetries must not turn the motion
        yaw = quarter
    origin = np.array([world[0, 0], world[_FEET, 1].min(), world[0, 2]])
    return CharacterFrame(matrix, float(metres_per_unit), yaw, origin)


def leg_scale(rest_joints_character: np.ndarray) -> float:
    """The rig's leg length (hip → knee → ankle) relative to SMPL's: root travel and heights scale by it."""
    return Proportions.of(rest_joints_character).scale


def proportioned_joints(joints: np.ndarray, rest_joints: np.ndarray, scale: float) -> np.ndarray:
    """(T, 22, 3) motion with each bone along its own direction at the length it has in `rest_joints` (22, 3), the
    pelvis trajectory scaled by `scale`: a direction-only rebuild (shots' reach targets use it for the SMPL-22
    armature; rigs are placed by `place_motion`, whose pelvis and chest carry their children by the fitted turn)."""
    joints = np.asarray(joints, dtype=np.float64)
    bones = joints - joints[:, _PARENT_INDEX]
    unit = bones / np.maximum(np.linalg.norm(bones, axis=-1, keepdims=True), 1e-12)
    lengths = np.linalg.norm(rest_joints - rest_joints[_PARENT_INDEX], axis=-1)
    out = np.empty_like(joints)
    out[:, 0] = joints[:, 0] * scale
    for j in depth_first_order()[1:]:
        out[:, j] = out[:, PARENTS[j]] + unit[:, j] * lengths[j]
    return out


def contacts_at_rate(contacts_20fps: np.ndarray, frames: int, fps: float) -> np.ndarray:
    """(frames, 4) bool contact labels (features 259–262, 20 fps rows) at `fps`, nearest row by time."""
    labels = np.asarray(contacts_20fps) > 0.5
    rows = np.clip(np.rint(np.arange(frames) * 20.0 / fps).astype(int), 0, len(labels) - 1)
    return labels[rows]


def _runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) of each run of True."""
    edges = np.diff(np.concatenate([[0], flags.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist(), strict=True))


def _within_reach(spot: np.ndarray, hips: np.ndarray, reach: float, iterations: int = 100) -> np.ndarray:
    """`spot` moved (towards the farthest hip, repeatedly) until it is within `reach` of every hip position (N, 3)
    and not below the floor; the last try when no such point is found (the leg is then straight at some frames)."""
    spot = spot.copy()
    for _ in range(iterations):
        offsets = spot - hips
        distances = np.linalg.norm(offsets, axis=-1)
        worst = int(distances.argmax())
        if distances[worst] <= reach:
            break
        spot = hips[worst] + offsets[worst] * (reach / distances[worst])
        spot[1] = max(spot[1], 0.0)
    return spot


def _ramp(flags: np.ndarray, blend_frames: int) -> np.ndarray:
    """(T,) 1 on the runs of `flags`, fading to 0 over `blend_frames` frames on either side (smoothstep)."""
    count = len(flags)
    weight = np.zeros(count)
    for start, end in _runs(flags):
        lo, hi = max(0, start - blend_frames), min(count, end + blend_frames)
        t = np.arange(lo, hi)
        ramp = np.clip(np.minimum(t - (start - blend_frames), (end - 1 + blend_frames) - t) / blend_frames, 0, 1)
        weight[lo:hi] = np.maximum(weight[lo:hi], ramp * ramp * (3.0 - 2.0 * ramp))
    return weight


def _move_ankle(out: np.ndarray, side: int, target: np.ndarray, weight: np.ndarray) -> None:
    """In place: the ankle of leg `side` moved `weight` (T,) of the way to `target` (T, 3), within the leg's reach;
    the knee re-solved in the leg's own bend plane (two-bone IK, bone lengths kept), the ball moved rigidly."""
    hip, knee, ankle, ball = _LEGS[side]
    thigh = np.linalg.norm(out[:, knee] - out[:, hip], axis=-1)
    shin = np.linalg.norm(out[:, ankle] - out[:, knee], axis=-1)
    new_ankle = out[:, ankle] + weight[:, None] * (target - out[:, ankle])
    reach = new_ankle - out[:, hip]
    distance = np.clip(np.linalg.norm(reach, axis=-1), 1e-9, (thigh + shin) * (1 - 1e-9))
    axis = reach / np.linalg.norm(reach, axis=-1, keepdims=True).clip(1e-12)
    bend = out[:, knee] - out[:, hip]
    bend -= (bend * axis).sum(-1, keepdims=True) * axis  # the knee's side of the hip → ankle line
    bend /= np.linalg.norm(bend, axis=-1, keepdims=True).clip(1e-12)
    along = (thigh**2 - shin**2 + distance**2) / (2 * distance)
    across = np.sqrt(np.clip(thigh**2 - along**2, 0.0, None))
    new_knee = out[:, hip] + along[:, None] * axis + across[:, None] * bend
    new_ankle = out[:, hip] + distance[:, None] * axis
    out[:, ball] += new_ankle - out[:, ankle]
    out[:, knee], out[:, ankle] = new_knee, new_ankle


SETTLE_S = 0.1  # seconds: smoothing (Gaussian sigma) of the pelvis's height change for the feet in contact
DRIFT_S = 1.0  # seconds: the same across the ground, a slow drift (a pelvis that moves with each step adds travel)


def follow_contacts(
    placed: np.ndarray,
    source: np.ndarray,
    contacts: np.ndarray,
    scale: float,
    blend_frames: int = 4,
    strength: float = 1.0,
    fps: float = FPS,
) -> np.ndarray:
    """Feet on the floor for a rig whose legs and feet are not SMPL's in proportion: while a foot is in contact
    (`contacts` (T, 4) as `contacts_at_rate` gives), the joint it stands on in `source` (the lower of ankle and
    ball) goes where the source's is, scaled by `scale` about the pelvis's ground track (and at `scale` × its height):
    the ankle is moved there (the foot keeps its direction), the knee re-solved; blended over `blend_frames` frames
    on either side. `placed` (T, 22, 3): the motion in the rig's proportions (`place_motion`); `source` the same
    frames in SMPL's; `fps` their rate (the pelvis's smoothing is in seconds). Planted feet then stay as planted as in
    the source, with no sliding added by the proportions."""
    out = np.array(placed, dtype=np.float64)
    source = np.asarray(source, dtype=np.float64)
    rows = np.arange(len(out))
    sides = []
    for side, (_, _, ankle, ball) in enumerate(_LEGS):
        weight = _ramp(contacts[:, 2 * side] | contacts[:, 2 * side + 1], blend_frames)
        support = np.where(source[:, ankle, 1] <= source[:, ball, 1], ankle, ball)  # (T,)
        sides.append((weight, support))
    # Heights first, by the whole body: a straight leg cannot shorten by 2 cm without bending 10° at the knee, but
    # the pelvis can sink 2 cm. Per frame the mean height change the feet in contact ask for, smoothed.
    wanted, goals = [], []
    for weight, support in sides:  # on the ground track of the pelvis as placed (root motion or in place)
        goal = out[:, 0] + scale * (source[rows, support] - source[:, 0])
        goal[:, 1] = scale * source[rows, support, 1]
        goals.append(goal)
        wanted.append(weight[:, None] * (goal - out[rows, support]))
    weights = np.stack([w for w, _ in sides], 1)  # (T, 2)
    total = weights.sum(1)
    shift = (wanted[0] + wanted[1]) * (np.minimum(total, 1.0) / np.maximum(total, 1e-9))[:, None]
    # Across the ground only what both feet ask for alike (a crouch with other thigh / shin proportions): moving the
    # pelvis for one foot would pull the other out of reach; and only as a slow drift (`DRIFT_S`), so that the root's
    # travel stays the leg-scaled source's, as HumanML3D's own recipe scales it (the read-back inverts the same drift).
    common = np.where(np.sign(wanted[0]) == np.sign(wanted[1]), np.sign(wanted[0]), 0.0)
    common *= np.minimum(np.abs(wanted[0]), np.abs(wanted[1]))
    shift[:, [0, 2]] = common[:, [0, 2]]
    for axis, seconds in ((0, DRIFT_S), (1, SETTLE_S), (2, DRIFT_S)):
        sigma = seconds * fps
        radius = int(3 * sigma)
        kernel = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
        shift[:, axis] = np.convolve(np.pad(shift[:, axis], radius, mode="edge"), kernel / kernel.sum(), mode="valid")
    out += shift[:, None]
    for side, (weight, support) in enumerate(sides):  # then each foot exactly, by its leg
        if not weight.any():
            continue
        goal = goals[side]
        target = goal - (out[rows, support] - out[:, _LEGS[side][2]])  # the ankle that puts the support joint there
        _move_ankle(out, side, target, weight * strength)
    return out


CONTACT_SPEED = float(np.sqrt(FEET_THRESHOLD)) * FPS  # m/s: HumanML3D's contact label, as a speed (0.894)


def speed_contacts(joints: np.ndarray, fps: float, scale: float = 1.0) -> np.ndarray:
    """(T, 4) contact flags (ankle and ball per foot, the label order) of (T, 22, 3) joints at `fps`: the joint moves
    slower than HumanML3D's contact speed, × `scale` for a body `scale` times SMPL's leg length."""
    feet = [*FOOT_LEFT, *FOOT_RIGHT]
    speed = np.linalg.norm(np.diff(np.asarray(joints)[:, feet], axis=0), axis=-1) * fps
    return np.concatenate([speed, speed[-1:]], 0) < CONTACT_SPEED * scale


def on_smpl_body(joints: np.ndarray, rest_joints_character: np.ndarray, fps: float) -> np.ndarray:
    """A rig's motion (T, 22, 3, its character frame) read back onto SMPL's body: the inverse of `place_motion` +
    `follow_contacts`, so a motion written onto any rig is read back as the motion it was (`proportions.to_smpl`,
    then the feet in contact where the rig's stand, scaled back)."""
    body = Proportions.of(rest_joints_character)
    smpl = to_smpl(joints, body)
    contacts = speed_contacts(joints, fps, body.scale)
    return follow_contacts(smpl, joints, contacts, 1.0 / body.scale, round(4 * fps / FPS), fps=fps)


def plant_feet(joints: np.ndarray, contacts: np.ndarray, blend_frames: int = 4) -> np.ndarray:
    """Foot-contact clean-up: during each contact run of a foot (`contacts` (T, 4) as `contacts_at_rate` gives) its
    ankle stays at the run's mean position (never below the floor), moved the least needed for the leg to reach it
    from every hip position of the run, and the ball moves rigidly with it; the knee is re-solved (two-bone IK in the
    leg's own bend plane, bone lengths kept); the change fades out over `blend_frames` frames on either side of the
    run (smoothstep)."""
    out = np.array(joints, dtype=np.float64)
    count = len(out)
    for side, (hip, knee, ankle, _) in enumerate(_LEGS):
        planted = contacts[:, 2 * side] | contacts[:, 2 * side + 1]
        target = out[:, ankle].copy()
        weight = np.zeros(count)
        thigh = np.linalg.norm(out[:, knee] - out[:, hip], axis=-1)
        shin = np.linalg.norm(out[:, ankle] - out[:, knee], axis=-1)
        for start, end in _runs(planted):
            spot = out[start:end, ankle].mean(0)
            spot[1] = max(spot[1], 0.0)
            reach = (thigh[start:end] + shin[start:end]).min() * (1 - 1e-4)  # a hair short of a locked knee
            spot = _within_reach(spot, out[start:end, hip], reach)
            lo, hi = max(0, start - blend_frames), min(count, end + blend_frames)
            t = np.arange(lo, hi)
            ramp = np.clip(np.minimum(t - (start - blend_frames), (end - 1 + blend_frames) - t) / blend_frames, 0, 1)
            ramp = ramp * ramp * (3.0 - 2.0 * ramp)
            stronger = ramp > weight[lo:hi]
            weight[lo:hi] = np.where(stronger, ramp, weight[lo:hi])
            target[lo:hi] = np.where(stronger[:, None], spot, target[lo:hi])
        if weight.any():
            _move_ankle(out, side, target, weight)
    return out


@dataclass(frozen=True)
class RigPose:
    """Keys for a rig: basis rotations of the driven bones and the root bone's location (pose-bone values)."""

    bones: tuple[str, ...]  # driven bones, in SMPL joint order
    rotations: np.ndarray  # (T, D, 3, 3) `matrix_basis` rotations
    root_bone: str
    root_locations: np.ndarray  # (T, 3) `location` of the root bone (its rest frame, armature units)


def driven_bones(bone_map: BoneMap) -> list[tuple[int, str]]:
    """(SMPL joint, bone keyed for it): the joint's own bone (`joint` sources) or the map's `drive` bone; joints
    read from tails or midpoints have no bone of their own and bones matching `leave_alone` are never keyed. The
    first entry is the root bone (location keys): the map's `root` (turned with the pelvis), else the pelvis's."""
    out: list[tuple[int, str]] = [(0, bone_map.root)] if bone_map.root else []
    seen: set[str] = {bone_map.root} if bone_map.root else set()
    for j, source in enumerate(bone_map.sources):
        bone = bone_map.drive[j] if bone_map.drive and bone_map.drive[j] else None
        if bone is None and source.kind == "joint":
            bone = source.bones[0]
        if bone is not None and bone not in seen and not is_left_alone(bone_map, bone):
            out.append((j, bone))
            seen.add(bone)
    if not out or out[0][0] != 0:
        raise ValueError(f"bone map {bone_map.name}: the pelvis must be a bone's head to drive the rig")
    return out


@dataclass(frozen=True)
class RigSolver:
    """Everything `solve_rig_pose` needs that depends on the rig alone, computed once (a solve then costs the IK and
    the chain products only: ~45 % less per call, which matters when a long clip is solved in timer slices)."""

    rig: RigRest
    frame: CharacterFrame
    offsets: np.ndarray  # (22, 3) the rig's rest joint offsets in the character frame (pelvis 0)
    joint_of: dict[int, int]  # driven bone index → SMPL joint
    chain: tuple[int, ...]  # driven bones and every ancestor of one, parents first
    names: tuple[str, ...]  # driven bones, in SMPL joint order (the root bone first)
    root: int  # the root bone's index
    root_offset: np.ndarray  # (3,) armature space: the pelvis joint's rest position minus the root bone's rest head

    @classmethod
    def prepare(cls, rig: RigRest, bone_map: BoneMap, frame: CharacterFrame) -> RigSolver:
        rest_character = frame.world_to_character(frame.armature_to_world(rig.rest_joints(bone_map)))
        offsets = rest_character - rest_character[_PARENT_INDEX]
        offsets[0] = 0.0
        driven = driven_bones(bone_map)
        joint_of = {rig.index(bone): j for j, bone in driven}
        needed = set(joint_of)
        for b in list(joint_of):  # every ancestor of a driven bone carries the chain
            p = rig.parents[b]
            while p >= 0 and p not in needed:
                needed.add(p)
                p = rig.parents[p]
        names = tuple(bone for _, bone in driven)
        root = rig.index(names[0])
        root_offset = rig.rest_joints(bone_map)[0] - rig.rest[root, :3, 3]
        return cls(rig, frame, offsets, joint_of, tuple(sorted(needed)), names, root, root_offset)

    def deltas(self, joints: np.ndarray) -> np.ndarray:
        """(T, 22, 3, 3) per-joint rotations rest → pose in armature space for (T, 22, 3) joints in the character
        frame (the §4.3 IK against the rig's own rest joints): a bone read for joint j should be turned Δ_j·R_b."""
        joints = np.asarray(joints, dtype=np.float64)
        deltas = ik.local_to_global(ik.solve_local_rotations(joints, self.offsets).local_rotations)  # (T, 22, 3, 3)
        q = self.frame.rotation()
        return q.T @ deltas @ q

    def solve(self, joints: np.ndarray) -> RigPose:
        """`solve_rig_pose` for this rig: (T, 22, 3) joints in its character frame → its keys."""
        joints = np.asarray(joints, dtype=np.float64)
        rig, frame = self.rig, self.frame
        deltas = self.deltas(joints)  # armature space
        rest = rig.rest[:, :3, :3]
        posed: dict[int, np.ndarray] = {}
        basis: dict[int, np.ndarray] = {}
        for b in self.chain:  # parents come first in `rig`
            p = rig.parents[b]
            inherited = rest[b][None] if p < 0 else posed[p] @ (rest[p].T @ rest[b])
            if b in self.joint_of:
                posed[b] = deltas[:, self.joint_of[b]] @ rest[b]
                basis[b] = np.swapaxes(inherited, -1, -2) @ posed[b]
            else:
                posed[b] = np.broadcast_to(inherited, (len(joints), 3, 3))
        # The root bone's ancestors are undriven (at rest), so its inherited matrix is its rest: B = R⁻¹·[O | head];
        # it turns with the pelvis, so its head sits where that turn carries it from the pelvis joint.
        pelvis = frame.world_to_armature(frame.character_to_world(joints[:, 0]))
        head = pelvis - deltas[:, 0] @ self.root_offset
        location = (head - rig.rest[self.root, :3, 3]) @ rest[self.root]  # R_rootᵀ·Δhead, row form
        rotations = np.stack([basis[rig.index(n)] for n in self.names], 1)
        return RigPose(self.names, rotations, self.names[0], location)


def solve_rig_pose(joints: np.ndarray, rig: RigRest, bone_map: BoneMap, frame: CharacterFrame) -> RigPose:
    """(T, 22, 3) joints in the rig's character frame → the basis rotations that put every driven bone where the
    motion's bone points, whatever the rig's rest pose (T or A), bone rolls and object transform (§4.4, §4.5).

    The §4.3 IK runs against the rig's own rest joints, giving per-joint world deltas Δ_j (rest → pose); a driven
    bone's target orientation is O_b = Δ_j·R_b (R: rest, armature space), and its basis follows the rig's own chain
    `P_b = P_parent·R_parentᵀ·R_b·B_b`, so undriven bones in between (extra spine segments, twist bones) stay at
    rest and are still accounted for. Bones are assumed to inherit their parent's rotation (no constraints).
    """
    return RigSolver.prepare(rig, bone_map, frame).solve(joints)


def place_motion(
    joints: np.ndarray,
    rest_joints_character: np.ndarray,
    in_place: bool = False,
) -> np.ndarray:
    """Decoded motion (T, 22, 3; floor y = 0, starting near the origin facing +Z) → the rig's character frame in its
    proportions (`proportions.to_rig`: pelvis trajectory scaled by `leg_scale`, rest pose on the floor); `in_place`
    keeps the pelvis over its frame-0 ground position (vertical motion and turning are kept)."""
    out = to_rig(joints, Proportions.of(rest_joints_character))
    if in_place:
        out[..., [0, 2]] -= out[:, :1, [0, 2]] - out[:1, :1, [0, 2]]
    return out
