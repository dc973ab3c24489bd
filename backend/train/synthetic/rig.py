"""Synthetic rig: a per-clip body (rest offsets, arms hanging), per-frame pose tracks, and tracks -> 22 joints.

The upper body is driven by forward kinematics from joint angles (`shared.motion.ik.forward_kinematics`, BVH
convention: joint j's rotation moves its children); the legs are solved by analytic two-bone IK towards the
ankle targets of the tracks, so planted feet stay exactly where the tracks put them. Every bone keeps the
body's rest length exactly. Y-up, metres, the rest body faces +Z with its left on +X.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from shared.motion.ik import forward_kinematics
from shared.motion.skeleton import NUM_JOINTS, TPOSE_OFFSETS

from .curves import smooth

SIDE_SIGN = np.array([1.0, -1.0])  # left (+X), right (−X)
HIPS, KNEES, ANKLES, TOES = (1, 2), (4, 5), (7, 8), (10, 11)
_UP = np.array([0.0, 1.0, 0.0])
STAND_REACH = 0.985  # standing: hip-to-ankle distance as a fraction of thigh + shin (knees slightly soft)
MAX_REACH = 0.995  # planted legs are never stretched further; the pelvis is lowered instead

# Symmetric bone groups that share one random length factor (left, right joint indices).
_BONE_GROUPS = (
    (1, 2),
    (4, 5),
    (7, 8),
    (10, 11),
    (13, 14),
    (16, 17),
    (18, 19),
    (20, 21),
    (3,),
    (6,),
    (9,),
    (12,),
    (15,),
)


def rot_x(a: np.ndarray) -> np.ndarray:
    """Rotations (..., 3, 3) about +X by a (...,) radians (positive tilts +Y towards +Z: a forward bend)."""
    c, s, o, z = np.cos(a), np.sin(a), np.ones_like(a), np.zeros_like(a)
    return np.stack([np.stack([o, z, z], -1), np.stack([z, c, -s], -1), np.stack([z, s, c], -1)], -2)


def rot_y(a: np.ndarray) -> np.ndarray:
    """Rotations (..., 3, 3) about +Y by a (...,) radians (positive turns +Z towards +X: a turn to the left)."""
    c, s, o, z = np.cos(a), np.sin(a), np.ones_like(a), np.zeros_like(a)
    return np.stack([np.stack([c, z, s], -1), np.stack([z, o, z], -1), np.stack([-s, z, c], -1)], -2)


def rot_z(a: np.ndarray) -> np.ndarray:
    """Rotations (..., 3, 3) about +Z by a (...,) radians (positive turns +X towards +Y)."""
    c, s, o, z = np.cos(a), np.sin(a), np.ones_like(a), np.zeros_like(a)
    return np.stack([np.stack([c, -s, z], -1), np.stack([s, c, z], -1), np.stack([z, z, o], -1)], -2)


def heading_vectors(heading: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit forward and left horizontal vectors (..., 3) of yaw angles (...,)."""
    s, c, z = np.sin(heading), np.cos(heading), np.zeros_like(heading)
    return np.stack([s, z, c], -1), np.stack([c, z, -s], -1)


def rest_offsets_arms_down() -> np.ndarray:
    """TPOSE_OFFSETS with the upper and lower arms hanging (slightly out and forward); (22, 3), metres."""
    offsets = TPOSE_OFFSETS.copy()
    for joint, direction in ((18, (0.12, -1.0, -0.03)), (20, (0.04, -1.0, 0.10))):
        d = np.array(direction) / np.linalg.norm(direction)
        for j, sign in ((joint, 1.0), (joint + 1, -1.0)):
            offsets[j] = np.linalg.norm(TPOSE_OFFSETS[j]) * d * np.array([sign, 1.0, 1.0])
    return offsets


@dataclass(frozen=True)
class Body:
    """One clip's skeleton: rest offsets (22, 3) parent->joint, arms hanging, facing +Z, left = +X."""

    offsets: np.ndarray

    @property
    def thigh(self) -> np.ndarray:
        """(2,) left/right hip->knee lengths."""
        return np.linalg.norm(self.offsets[list(KNEES)], axis=-1)

    @property
    def shin(self) -> np.ndarray:
        """(2,) left/right knee->ankle lengths."""
        return np.linalg.norm(self.offsets[list(ANKLES)], axis=-1)

    @property
    def foot(self) -> np.ndarray:
        """(2, 3) ankle->toe vectors of the flat foot, body frame."""
        return self.offsets[list(TOES)]

    @property
    def ankle_height(self) -> np.ndarray:
        """(2,) ankle height above the floor when the foot is flat with its toe joint on the floor."""
        return -self.foot[:, 1]

    @property
    def stance(self) -> np.ndarray:
        """(2, 3) standing ankle positions relative to the pelvis (x, z; y = 0): feet under the hips."""
        hips = self.offsets[list(HIPS)]
        return np.stack([hips[:, 0] * 1.15, np.zeros(2), hips[:, 2] + 0.01], -1)

    @property
    def standing_height(self) -> float:
        """Pelvis height when standing on flat feet placed at `stance` with slightly soft knees."""
        hips = self.offsets[list(HIPS)]
        horizontal = np.linalg.norm((self.stance - hips)[:, [0, 2]], axis=-1)
        reach = STAND_REACH * (self.thigh + self.shin)
        return float(np.min(self.ankle_height - hips[:, 1] + np.sqrt(reach**2 - horizontal**2)))


def make_body(rng: np.random.Generator, variation: float = 0.05) -> Body:
    """A body whose bone lengths differ from the rest offsets by at most ±`variation` (global and per-bone)."""
    offsets = rest_offsets_arms_down()
    overall = rng.uniform(1.0 - 0.8 * variation, 1.0 + 0.8 * variation)
    factors = np.ones(NUM_JOINTS)
    for group in _BONE_GROUPS:
        factors[list(group)] = overall * rng.uniform(1.0 - 0.2 * variation, 1.0 + 0.2 * variation)
    return Body(offsets * factors[:, None])


@dataclass
class Tracks:
    """Per-frame pose parameters of T frames (angles in radians, positions in metres, world Y-up).

    root:       (T, 3) pelvis position.
    heading:    (T,)   body yaw, + = left (counter-clockwise seen from above); 0 faces +Z.
    pelvis:     (T, 3) pelvis pitch (forward tilt), roll (+ = lean left), twist (yaw on top of heading).
    spine:      (T, 3) trunk bend forward, side bend (+ = left), twist (+ = left), spread over spine1..3.
    head:       (T, 2) neck pitch (+ = look down), yaw (+ = look left).
    arms:       (T, 2, 4) [left, right] × [shoulder flexion (forward raise), abduction (side raise),
                external twist, elbow flexion].
    ankles:     (T, 2, 3) ankle targets [left, right].
    foot_yaw:   (T, 2) foot yaw (same convention as heading).
    foot_pitch: (T, 2) + = heel up, toes down.
    planted:    (T, 2) bool, the foot bears weight (its leg is never over-stretched: the pelvis drops).
    """

    root: np.ndarray
    heading: np.ndarray
    pelvis: np.ndarray
    spine: np.ndarray
    head: np.ndarray
    arms: np.ndarray
    ankles: np.ndarray
    foot_yaw: np.ndarray
    foot_pitch: np.ndarray
    planted: np.ndarray

    def __len__(self) -> int:
        return len(self.heading)

    @classmethod
    def concatenate(cls, parts: list[Tracks]) -> Tracks:
        """Tracks of the parts one after the other along time."""
        return cls(**{f.name: np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(cls)})


@dataclass(frozen=True)
class Neutral:
    """A clip's relaxed standing posture (the pose every action starts from and returns to)."""

    spine_bend: float
    head_pitch: float
    arm_abduction: float
    elbow: float

    def fill(self, tracks: Tracks) -> None:
        """Add the neutral posture to action-relative tracks in place."""
        tracks.spine[:, 0] += self.spine_bend
        tracks.head[:, 0] += self.head_pitch
        tracks.arms[:, :, 1] += self.arm_abduction
        tracks.arms[:, :, 3] += self.elbow


def make_neutral(rng: np.random.Generator) -> Neutral:
    """A slightly varied relaxed posture."""
    return Neutral(
        spine_bend=rng.uniform(0.08, 0.18),  # the rest offsets' spine leans back a little
        head_pitch=rng.uniform(-0.05, 0.12),
        arm_abduction=rng.uniform(0.08, 0.2),
        elbow=rng.uniform(0.1, 0.35),
    )


def foot_vectors(body: Body, foot_yaw: np.ndarray, foot_pitch: np.ndarray) -> np.ndarray:
    """World ankle->toe vectors (T, 2, 3) of feet with the given yaw and pitch (T, 2)."""
    return np.einsum("tfab,fb->tfa", rot_y(foot_yaw) @ rot_x(foot_pitch), body.foot)


def two_bone_ik(
    hip: np.ndarray, target: np.ndarray, upper: np.ndarray, lower: np.ndarray, pole: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Knee and reached ankle (..., 3) for hips and ankle targets (..., 3), bone lengths (...,), pole (..., 3).

    The knee lies in the plane of hip, target and pole, on the pole's side; a target out of reach is pulled
    in along the hip->target line. |knee − hip| = upper and |ankle − knee| = lower exactly.
    """
    span = target - hip
    distance = np.linalg.norm(span, axis=-1, keepdims=True)
    u = span / np.maximum(distance, 1e-9)
    d = np.clip(distance, np.abs(upper - lower)[..., None] + 1e-4, (upper + lower)[..., None] * (1.0 - 1e-7))
    along = (upper[..., None] ** 2 - lower[..., None] ** 2 + d**2) / (2.0 * d)
    radius = np.sqrt(np.maximum(upper[..., None] ** 2 - along**2, 0.0))
    side = pole - (pole * u).sum(-1, keepdims=True) * u
    side = side / np.maximum(np.linalg.norm(side, axis=-1, keepdims=True), 1e-9)
    return hip + along * u + radius * side, hip + d * u


def _pelvis_rotation(tracks: Tracks) -> np.ndarray:
    p = tracks.pelvis
    return rot_y(tracks.heading + p[:, 2]) @ rot_x(p[:, 0]) @ rot_z(-p[:, 1])


def _lower_pelvis_for_reach(body: Body, tracks: Tracks, pelvis_rotation: np.ndarray) -> np.ndarray:
    """Root positions (T, 3) with the pelvis lowered wherever a planted leg would be stretched too far."""
    hips = tracks.root[:, None] + np.einsum("tab,fb->tfa", pelvis_rotation, body.offsets[list(HIPS)])
    span = hips - tracks.ankles  # (T, 2, 3)
    horizontal2 = span[..., 0] ** 2 + span[..., 2] ** 2
    reach = MAX_REACH * (body.thigh + body.shin)
    allowed = np.sqrt(np.maximum(reach**2 - horizontal2, 0.0))
    excess = np.where(tracks.planted & (span[..., 1] > 0), span[..., 1] - allowed, 0.0).max(-1)
    excess = np.maximum(excess, 0.0)
    if not np.any(excess > 0):
        return tracks.root
    # Widen by a moving maximum before smoothing so the smoothed drop still covers every violation.
    width = 3
    padded = np.pad(excess, width, mode="edge")
    widened = np.lib.stride_tricks.sliding_window_view(padded, 2 * width + 1).max(-1)
    drop = np.maximum(smooth(widened, 1.5), excess)
    root = tracks.root.copy()
    root[:, 1] -= drop
    return root


def tracks_to_joints(body: Body, tracks: Tracks) -> np.ndarray:
    """Joint positions (T, 22, 3) of the tracks: FK for pelvis, spine, head and arms; IK for the legs."""
    frames = len(tracks)
    local = np.broadcast_to(np.eye(3), (frames, NUM_JOINTS, 3, 3)).copy()
    local[:, 0] = _pelvis_rotation(tracks)
    bend, side, twist = (tracks.spine[:, i] / 3.0 for i in range(3))
    spine = rot_y(twist) @ rot_x(bend) @ rot_z(-side)
    local[:, 3] = local[:, 6] = local[:, 9] = spine
    local[:, 12] = rot_y(tracks.head[:, 1]) @ rot_x(tracks.head[:, 0])
    for side_index, (shoulder, elbow) in enumerate(((16, 18), (17, 19))):
        flex, abduct, turn, elbow_flex = (tracks.arms[:, side_index, i] for i in range(4))
        sign = SIDE_SIGN[side_index]
        local[:, shoulder] = rot_z(sign * abduct) @ rot_x(-flex) @ rot_y(sign * turn)
        local[:, elbow] = rot_x(-elbow_flex)
    root = _lower_pelvis_for_reach(body, tracks, local[:, 0])
    joints = forward_kinematics(local, root, body.offsets)
    # Legs: knees bend towards the feet's forward direction (tilted up so a raised leg still has a pole).
    forward, _ = heading_vectors(tracks.foot_yaw)
    pole = forward + 0.5 * _UP
    knees, ankles = two_bone_ik(
        joints[:, list(HIPS)], tracks.ankles, np.broadcast_to(body.thigh, (frames, 2)), body.shin, pole
    )
    joints[:, list(KNEES)] = knees
    joints[:, list(ANKLES)] = ankles
    joints[:, list(TOES)] = ankles + foot_vectors(body, tracks.foot_yaw, tracks.foot_pitch)
    return joints
