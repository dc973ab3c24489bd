"""Pure-numpy rig math for the add-on: HumanML3D joints → pose-bone quaternions and root locations of any mapped rig.

The solve itself is `shared.motion.retarget` (rest-pose aware, BLENDER_NOTES.md §5.2); here: frame rates, slices,
key layout. Quaternions are (w, x, y, z), consecutive frames on one hemisphere (F-curves interpolate per component).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from ._shared import BoneMap, pass_through, proportions, quaternion, resample, retarget
from .steps import Steps, run_steps

SMPL_FPS = 20.0


@dataclass(frozen=True)
class PoseTrack:
    """Keys for a rig: (K, D, 4) basis quaternions of the driven `bones` and (K, 3) `root_bone` locations at `fps`;
    optionally (K, L, 3) locations of further `located` bones (IK targets and poles) and (K, S, 3) scales of `scaled`
    bones (IK chain roots whose chain the rig's own IK stretch would shorten)."""

    fps: float
    bones: tuple[str, ...]
    root_bone: str
    quaternions: np.ndarray
    root_locations: np.ndarray
    located: tuple[str, ...] = ()
    locations: np.ndarray | None = None  # (K, L, 3) for `located`
    scaled: tuple[str, ...] = ()
    scales: np.ndarray | None = None  # (K, S, 3) for `scaled`

    @property
    def frames(self) -> int:
        return len(self.quaternions)

    def extra_locations(self) -> np.ndarray:
        """(K, L, 3) locations of `located` (L = 0 without)."""
        return np.zeros((self.frames, 0, 3)) if self.locations is None else self.locations

    def extra_scales(self) -> np.ndarray:
        """(K, S, 3) scales of `scaled` (S = 0 without)."""
        return np.zeros((self.frames, 0, 3)) if self.scales is None else self.scales

    def sliced(self, keep: np.ndarray) -> PoseTrack:
        """The frames where `keep` (K,) is true."""
        return replace(
            self,
            quaternions=self.quaternions[keep],
            root_locations=self.root_locations[keep],
            locations=None if self.locations is None else self.locations[keep],
            scales=None if self.scales is None else self.scales[keep],
        )


@dataclass(frozen=True)
class RigTarget:
    """What the solver needs of a target armature: its rest, bone map, character frame and rest joints there."""

    rig: retarget.RigRest
    bone_map: BoneMap
    frame: retarget.CharacterFrame
    rest_joints: np.ndarray  # (22, 3) in the character frame (Y-up metres, facing +Z, floor at 0)


def rig_target(
    rig: retarget.RigRest, bone_map: BoneMap, world_from_armature: np.ndarray, metres_per_unit: float
) -> RigTarget:
    """A `RigTarget` for an armature object with `matrix_world` and the scene's metres per unit."""
    rest = rig.rest_joints(bone_map)
    frame = retarget.character_frame(world_from_armature, metres_per_unit, rest)
    return RigTarget(rig, bone_map, frame, frame.world_to_character(frame.armature_to_world(rest)))


def continuous_quaternions(quats: np.ndarray) -> np.ndarray:
    """(K, ..., 4) with every frame flipped onto the previous frame's hemisphere (and w ≥ 0 on frame 0)."""
    q = np.array(quats, dtype=np.float64)
    q[0] *= np.where(q[0, ..., :1] < 0.0, -1.0, 1.0)
    return quaternion.qfix(q)


def requested_frames_20fps(scene_frames: int, scene_fps: float) -> int:
    """20 fps frames whose duration covers `scene_frames` frames at `scene_fps` (first frame at t = 0)."""
    return int(np.ceil((scene_frames - 1) * SMPL_FPS / scene_fps - 1e-6)) + 1


def joints_at_scene_rate(joints_20fps: np.ndarray, scene_fps: float, frames: int | None = None) -> np.ndarray:
    """(T, 22, 3) joints at 20 fps → `frames` frames at `scene_fps` (by time; default: the whole duration)."""
    out = resample.resample_linear(joints_20fps, SMPL_FPS, scene_fps)
    if frames is not None:
        if frames > len(out):
            raise ValueError(f"{len(joints_20fps)} frames at 20 fps cover {len(out)} frames at {scene_fps:g} fps")
        out = out[:frames]
    return out


def fk_bone_names(bone_map: BoneMap) -> tuple[str, ...]:
    """The bones the rotation solve keys (root first), in `PoseTrack.bones` order."""
    return tuple(bone for _, bone in retarget.driven_bones(bone_map))


def ik_bone_names(bone_map: BoneMap) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(rotated, located) IK controls of the map's IK/FK limbs: targets, chain roots and tips are keyed with
    rotations; targets and poles with locations."""
    rotated = [b for limb in bone_map.ik for b in (limb.target, limb.chain, *([limb.tip[1]] if limb.tip else []))]
    located = [b for limb in bone_map.ik for b in (limb.target, *([limb.pole] if limb.pole else []))]
    return tuple(dict.fromkeys(rotated)), tuple(dict.fromkeys(located))


def ik_chain_names(bone_map: BoneMap) -> tuple[str, ...]:
    """The chain roots of the map's IK/FK limbs: keyed with a scale where it is free (stretchy IK chains)."""
    return tuple(dict.fromkeys(limb.chain for limb in bone_map.ik))


def driven_bone_names(bone_map: BoneMap) -> tuple[str, ...]:
    """Every bone a pose track may key with a rotation: the solve's (root first), then the IK controls."""
    return tuple(dict.fromkeys(fk_bone_names(bone_map) + ik_bone_names(bone_map)[0]))


IK_CHUNK_FRAMES = 16  # frames solved per slice: ~2.3 ms on an idle 2-core VM (a solve costs ~1.2 ms + ~0.07 ms per
# frame with the rig prepared once), so a tick (4 ms budget + the slice that crosses it) stays near 6 ms


def place_motion(
    target: RigTarget,
    joints_20fps: np.ndarray,
    contacts_20fps: np.ndarray | None = None,
    in_place: bool = False,
    plant: bool = False,
) -> np.ndarray:
    """Decoded joints (20 fps, floor at 0, near the origin facing +Z) in the rig's proportions and character frame
    (root scaled by its leg length); with `contacts_20fps` (features 259–262) feet in contact stand where the
    motion's do (scaled: `retarget.follow_contacts`), and with `plant` they are held still (`retarget.plant_feet`)."""
    placed = retarget.place_motion(joints_20fps, target.rest_joints, in_place)
    if contacts_20fps is not None:
        contacts = retarget.contacts_at_rate(contacts_20fps, len(placed), SMPL_FPS)
        scale = retarget.leg_scale(target.rest_joints)
        # The feet go where the motion's would on SMPL's own body (its lengths, not the decoded joints' own), so
        # only what the rig's proportions change is corrected: on an SMPL-proportioned rig nothing moves.
        smpl = proportions.to_rig(joints_20fps, proportions.Proportions.of(proportions.smpl_rest()))
        placed = retarget.follow_contacts(placed, smpl, contacts, scale)
        if plant:
            placed = retarget.plant_feet(placed, contacts)
    return placed


def pose_track_steps(
    joints_20fps: np.ndarray, scene_fps: float, target: RigTarget, frames: int | None = None
) -> Steps[PoseTrack]:
    """Joints at 20 fps in the rig's character frame → a `PoseTrack` of `frames` keys at the scene rate,
    `IK_CHUNK_FRAMES` frames per slice (frames are solved independently)."""
    joints = joints_at_scene_rate(joints_20fps, scene_fps, frames)
    bones = fk_bone_names(target.bone_map)
    quats = np.empty((len(joints), len(bones), 4))
    location = np.empty((len(joints), 3))
    solver = retarget.RigSolver.prepare(target.rig, target.bone_map, target.frame)
    for start in range(0, len(joints), IK_CHUNK_FRAMES):
        end = start + IK_CHUNK_FRAMES
        pose = solver.solve(joints[start:end])
        quats[start:end], location[start:end] = quaternion.matrix_to_quat(pose.rotations), pose.root_locations
        yield min(1.0, end / len(joints))
    return PoseTrack(float(scene_fps), bones, bones[0], continuous_quaternions(quats), location)


def pose_track(joints_20fps: np.ndarray, scene_fps: float, target: RigTarget, frames: int | None = None) -> PoseTrack:
    """`pose_track_steps` in one go."""
    return run_steps(pose_track_steps(joints_20fps, scene_fps, target, frames))


def rotation_property(mode: str) -> tuple[str, int]:
    """The pose-bone property a rotation mode reads and its size: `rotation_quaternion` (w, x, y, z),
    `rotation_axis_angle` (angle, x, y, z) or, for the six Euler orders, `rotation_euler` (x, y, z radians)."""
    if mode == "QUATERNION":
        return "rotation_quaternion", 4
    if mode == "AXIS_ANGLE":
        return "rotation_axis_angle", 4
    return "rotation_euler", 3


def mode_quaternions(mode: str, values: np.ndarray) -> np.ndarray:
    """Unit quaternions (..., 4) of values (..., C) of the rotation property of `mode`."""
    values = np.asarray(values, dtype=np.float64)
    if mode == "QUATERNION":
        return quaternion.qnormalize(values)
    if mode == "AXIS_ANGLE":
        return quaternion.axis_angle_to_quat(values)
    return quaternion.euler_to_quat(values, mode)


@dataclass(frozen=True)
class KeyedPoses:
    """The user's animation at some scene frames: each driven bone's rotation mode and values of that mode's property,
    and the root bone's location; of the IK controls (targets, poles, chain roots) the locations and scales the Action
    keys. In-between Keys passes the generated track through them; written keys continue from them (quaternion signs,
    Euler branches) so no F-curve jumps next to a user's key."""

    frames: np.ndarray  # (N,) scene frames, increasing
    modes: dict[str, str]  # bone → rotation mode
    rotations: dict[str, np.ndarray]  # bone → (N, C) values of its rotation property
    root_locations: np.ndarray  # (N, 3) the root bone's `location`
    locations: dict[str, np.ndarray] = field(default_factory=dict)  # IK target / pole → (N, 3) keyed `location`
    scales: dict[str, np.ndarray] = field(default_factory=dict)  # IK chain root → (N, 3) keyed `scale`
    loose: frozenset[str] = frozenset()  # IK controls whose rotation the Action does not key (not passed through)

    def quaternions(self, bones: tuple[str, ...]) -> np.ndarray:
        """(N, D, 4) unit quaternions of `bones`."""
        return np.stack([mode_quaternions(self.modes[b], self.rotations[b]) for b in bones], axis=1)


def pass_through_keys(track: PoseTrack, frames: np.ndarray, keyed: KeyedPoses) -> PoseTrack:
    """The track (keys on scene `frames`) corrected to equal the keyed poses at their frames: every driven bone's
    rotation (IK controls: where the Action keys it), the root location, and the IK targets', poles' and chain roots'
    locations and scales the Action keys; the residual of each key spreads smoothly to the neighbouring keys."""
    quats = pass_through.pin_rotations(track.quaternions, frames, keyed.frames, keyed.quaternions(track.bones))
    loose = [d for d, bone in enumerate(track.bones) if bone in keyed.loose]
    quats[:, loose] = track.quaternions[:, loose]
    location = pass_through.pin_locations(track.root_locations, frames, keyed.frames, keyed.root_locations)
    extra, scales = track.extra_locations().copy(), track.extra_scales().copy()
    for columns, names, keys in ((extra, track.located, keyed.locations), (scales, track.scaled, keyed.scales)):
        for i, bone in enumerate(names):
            if bone in keys:
                columns[:, i] = pass_through.pin_locations(columns[:, i], frames, keyed.frames, keys[bone])
    return replace(
        track,
        quaternions=continuous_quaternions(quats),
        root_locations=location,
        locations=extra if track.located else track.locations,
        scales=scales if track.scaled else track.scales,
    )


def rotation_values(
    quats: np.ndarray,
    frames: np.ndarray,
    mode: str,
    anchors: np.ndarray | None = None,
    anchor_frames: np.ndarray | None = None,
) -> np.ndarray:
    """(K, ..., C) values of the rotation property of `mode` for quaternions (K, ..., 4) keyed on `frames`,
    continuous in time and, with `anchors` ((N, ..., C) values of the user's keys on `anchor_frames`), continuing
    from the nearest anchor (quaternions on its hemisphere, Euler angles on its branch and turn)."""
    if anchors is None or anchor_frames is None:
        anchor_frames, anchors = np.zeros(0), None
    if mode in ("QUATERNION", "AXIS_ANGLE"):
        anchor_q = np.zeros((0, 4)) if anchors is None else mode_quaternions(mode, anchors)
        signed = pass_through.anchored_quaternions(quats, frames, anchor_frames, anchor_q)
        return signed if mode == "QUATERNION" else quaternion.quat_to_axis_angle(signed)
    start = np.zeros((0, 3)) if anchors is None else anchors
    return pass_through.anchored_eulers(quats, mode, frames, anchor_frames, start)
