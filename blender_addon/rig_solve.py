"""Keys solved against the evaluated rig: whatever drives the bones the joints are read from (constraints, drivers,
custom properties, helper bones, IK), the controls are set on a copy of the armature in a scene of its own, the
depsgraph evaluates it, the read bones are measured against the target and the controls corrected, a few times per
frame, one evaluation per timer slice. The animator's objects, scene, frame and Actions are never touched.

FK pass: the rig's IK/FK switches set to FK, every keyed control corrected through the measured transmission matrix
(how far each read bone turns per turn of each control, probed once per solve), the root bone's location through
the pelvis joint's position. IK pass (maps with `ik` limbs): the switches set to IK, the FK result held, each limb's
IK target moved and turned onto the end joint, its chain root (or pole) turned onto the bend plane, its tip turned,
and the chain root scaled so that a stretchy IK chain (Rigify's IK bones have IK stretch: bent, they come out up to 4 %
short, the end still on its target, so the knee or elbow sits off) keeps the target's length; so both the FK and the
IK controls are keyed and the deform bones take the same pose whichever the animator picks.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace

import bpy
import numpy as np
from mathutils import Quaternion

from . import solve_math
from ._shared import BoneMap, IkLimb, quaternion, retarget, skeleton
from .action_io import armature_data
from .rig_math import PoseTrack, RigTarget, continuous_quaternions, ik_bone_names
from .steps import Steps

TOLERANCE_DEG = 0.1  # a frame is done when every joint is this close (and the pelvis / IK ends within POSITION_TOL)
POSITION_TOL = 1e-3  # of the rig's leg length
MAX_ITERATIONS = 6  # evaluations per frame and pass, at most
PROBE_RAD = 0.1  # the turn each control is probed with
PROBE_AXIS = np.array([1.0, 2.0, 3.0]) / np.sqrt(14.0)
FOLLOW_MIN = 0.3  # a joint turning less than this with its own control does not follow it
NOTICE_DEG = 5.0  # residuals above this are reported
SHORTENED_DEG = 2.0  # an IK limb this far off with its ends and bend plane on target: the chain changed length
STRAIGHT_DEG = 0.5  # an IK chain is done when its segments point this close (a stretchy chain held straight kinks)
CARRIER_WEIGHT = 4.0  # the pelvis and chest (they place the hips, shoulders and head) over a bone's own twist


@dataclass
class SolveReport:
    """How well the solved keys make the read bones follow the target: worst residual per pass and joint (degrees),
    and what the animator should know (joints that do not follow, the IK/FK note)."""

    residual_deg: dict[str, dict[str, float]] = field(default_factory=dict)  # pass ('FK' / 'IK') → joint → degrees
    notices: list[str] = field(default_factory=list)
    evaluations: dict[str, int] = field(default_factory=dict)  # pass ('probe' / 'FK' / 'IK') → rig evaluations


def _reader(bone_map: BoneMap, joint: int) -> str | None:
    source = bone_map.sources[joint]
    return source.bones[0] if source.kind == "joint" else None


def needs_solve(obj: bpy.types.Object, bone_map: BoneMap) -> bool:
    """Whether the keys need the evaluated solve: a control that is not the bone its joint is read from, IK limbs, or
    a constraint / driver on a read bone or any of its ancestors. Plain parented rigs are solved exactly in closed
    form (`retarget.RigSolver`) and skip it."""
    if bone_map.ik or bone_map.root:
        return True
    for j, bone in retarget.driven_bones(bone_map):
        if _reader(bone_map, j) not in (None, bone):
            return True
    bones = armature_data(obj).bones
    chain: set[str] = set()
    for name in filter(None, (_reader(bone_map, j) for j in range(skeleton.NUM_JOINTS))):
        read = bones.get(name)
        while read is not None and read.name not in chain:
            chain.add(read.name)
            read = read.parent
    pose = obj.pose
    if pose is not None and any(len(pose.bones[n].constraints) for n in chain if n in pose.bones):
        return True
    anim = obj.animation_data
    drivers = anim.drivers if anim is not None else ()
    return any(d.data_path.startswith('pose.bones["') and d.data_path.split('"')[1] in chain for d in drivers)


class Scratch:
    """A copy of the armature (no Action, no NLA; Blender points its constraints and drivers at the copy itself) in a
    scene of its own, evaluated by that scene's depsgraph. `close()` removes both."""

    def __init__(self, obj: bpy.types.Object):
        self.scene = bpy.data.scenes.new("MotionGPT3 solve (temporary)")
        self.obj = obj.copy()
        anim = self.obj.animation_data
        if anim is not None:
            anim.action = None
            for track in list(anim.nla_tracks):
                anim.nla_tracks.remove(track)
        self.scene.collection.objects.link(self.obj)
        self._depsgraph: bpy.types.Depsgraph | None = None
        self._object_removed = False
        pose = self.obj.pose
        assert pose is not None  # a copy of an armature object
        self.bones = pose.bones
        self._buffer = np.empty(len(self.bones) * 16, np.float32)

    def index(self, name: str) -> int:
        return self.bones.find(name)

    @property
    def depsgraph(self) -> bpy.types.Depsgraph:
        """The scratch scene's depsgraph, built (and the copy evaluated) on first use: the one long step (~35 ms on
        Rigify's generated rig), so `solve_steps` gives it a slice of its own."""
        if self._depsgraph is None:
            with bpy.context.temp_override(scene=self.scene, view_layer=self.scene.view_layers[0]):
                self._depsgraph = bpy.context.evaluated_depsgraph_get()
        return self._depsgraph

    def evaluate(self) -> np.ndarray:
        """(N, 4, 4) every bone's evaluated pose matrix (armature space), in `bones` order."""
        self.depsgraph.update()
        evaluated = self.obj.evaluated_get(self.depsgraph).pose
        assert evaluated is not None
        evaluated.bones.foreach_get("matrix", self._buffer)
        return self._buffer.reshape(-1, 4, 4).transpose(0, 2, 1).astype(np.float64)  # foreach_get is column-major

    def set_rotation(self, name: str, quat: np.ndarray) -> None:
        """Set a bone's basis rotation (w, x, y, z) in its own rotation mode."""
        pb = self.bones[name]
        q = Quaternion([float(v) for v in quat])
        if pb.rotation_mode == "QUATERNION":
            pb.rotation_quaternion = q
        elif pb.rotation_mode == "AXIS_ANGLE":
            axis, angle = q.to_axis_angle()
            pb.rotation_axis_angle = (angle, axis[0], axis[1], axis[2])
        else:
            pb.rotation_euler = q.to_euler(pb.rotation_mode, pb.rotation_euler)

    def set_location(self, name: str, location: np.ndarray) -> None:
        self.bones[name].location = [float(v) for v in location]

    def set_scale(self, name: str, scale: np.ndarray) -> None:
        self.bones[name].scale = [float(v) for v in scale]

    def scale(self, name: str) -> np.ndarray:
        return np.array(self.bones[name].scale, dtype=np.float64)

    def basis(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """A bone's current basis: rotation (w, x, y, z) and location."""
        m = self.bones[name].matrix_basis
        return np.array(m.to_quaternion()), np.array(m.translation)

    def set_property(self, bone: str, prop: str, value: float) -> None:
        """Set a custom property (an IK/FK switch), keeping its type (an int switch stays an int)."""
        pb = self.bones[bone]
        current = pb.get(prop)
        pb[prop] = type(current)(value) if isinstance(current, int | float) else value
        self.obj.update_tag()  # a custom property set from Python tags nothing: its drivers would keep their value

    def remove_object(self) -> None:
        """Remove the copy (the armature data is the animator's own, shared with it: kept)."""
        if self._object_removed:
            return
        self._object_removed = True
        self._depsgraph = None
        bpy.data.objects.remove(self.obj)

    def close(self) -> None:
        """Remove the copy (unless removed already) and its scene."""
        self.remove_object()
        bpy.data.scenes.remove(self.scene)


@dataclass
class _Target:
    """The target in armature space: joint positions and the orientation each read bone should have."""

    heads: np.ndarray  # (K, 22, 3)
    frames: np.ndarray  # (K, 22, 3, 3)


TARGET_CHUNK_FRAMES = 32  # frames of the target solved per slice (~1.5 ms on an idle machine)


def _target_steps(target: RigTarget, joints: np.ndarray) -> Steps[_Target]:
    """The target of (K, 22, 3) joints in the rig's character frame, `TARGET_CHUNK_FRAMES` frames per slice."""
    solver = retarget.RigSolver.prepare(target.rig, target.bone_map, target.frame)
    deltas = np.empty((len(joints), skeleton.NUM_JOINTS, 3, 3))  # armature space
    for start in range(0, len(joints), TARGET_CHUNK_FRAMES):
        yield None
        deltas[start : start + TARGET_CHUNK_FRAMES] = solver.deltas(joints[start : start + TARGET_CHUNK_FRAMES])
    rest = np.tile(np.eye(3), (skeleton.NUM_JOINTS, 1, 1))
    for j in range(skeleton.NUM_JOINTS):
        if (name := _reader(target.bone_map, j)) is not None:
            rest[j] = solve_math.orthonormal(target.rig.rest[target.rig.index(name)])
    heads = target.frame.world_to_armature(target.frame.character_to_world(joints))
    return _Target(heads, deltas @ rest)


class _Measure:
    """Reads the joints off an evaluation: each joint's bone head and rotation (22 rows; identity where unread)."""

    def __init__(self, scratch: Scratch, bone_map: BoneMap):
        self.rows = np.array([scratch.index(_reader(bone_map, j) or "") for j in range(skeleton.NUM_JOINTS)])
        self.read = self.rows >= 0

    def __call__(self, matrices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        picked = matrices[np.maximum(self.rows, 0)]
        frames = solve_math.orthonormal(picked[:, :3, :3])
        frames[~self.read] = np.eye(3)
        return picked[:, :3, 3], frames


def _pose_rotation(matrices: np.ndarray, row: int) -> np.ndarray:
    return solve_math.orthonormal(matrices[row, :3, :3])


def _location_axes(scratch: Scratch, name: str, matrices: np.ndarray, basis: np.ndarray) -> np.ndarray:
    """(3, 3) how the bone's head moves in armature space per unit of its `location`: the frame its basis applies
    in (evaluated pose · basis rotation⁻¹), without its rest turn unless the bone's Local Location is on."""
    frame = _pose_rotation(matrices, scratch.index(name)) @ basis.T
    bone = armature_data(scratch.obj).bones[name]
    if bone.use_local_location:
        return frame
    rest = np.array(bone.matrix_local.to_3x3())
    if bone.parent is not None:
        rest = np.array(bone.parent.matrix_local.to_3x3()).T @ rest
    return frame @ solve_math.orthonormal(rest).T


def solve_steps(
    obj: bpy.types.Object, target: RigTarget, joints: np.ndarray, track: PoseTrack, solve: np.ndarray | None = None
) -> Steps[tuple[PoseTrack, SolveReport]]:
    """`track` (the closed-form keys of `joints` (K, 22, 3), the rig's character frame at the track's rate) corrected
    on the evaluated rig, frames where `solve` (K,) is true (default all), one evaluation per slice; IK controls added
    for the map's IK/FK limbs. Returns the corrected track and a report."""
    bone_map = target.bone_map
    count = track.frames
    solve = np.ones(count, dtype=bool) if solve is None else np.asarray(solve, dtype=bool)
    goal = yield from _target_steps(target, joints)
    scratch = Scratch(obj)
    try:
        yield None
        assert scratch.depsgraph is not None  # built in a slice of its own
        yield None
        measure = _Measure(scratch, bone_map)
        report = SolveReport()
        rest = target.rig.rest_joints(bone_map)  # (22, 3) armature space
        tolerance = POSITION_TOL * max(float(np.linalg.norm(rest[[1, 4]] - rest[[4, 7]], axis=-1).sum()), 1e-6)
        for limb in bone_map.ik:
            scratch.set_property(limb.switch_bone, limb.switch_property, limb.fk_value)
        quats, locations = yield from _fk_pass(scratch, measure, bone_map, track, goal, solve, tolerance, report)
        out = replace(track, quaternions=continuous_quaternions(quats), root_locations=locations)
        if bone_map.ik:
            out = yield from _ik_pass(scratch, measure, bone_map, out, goal, solve, tolerance, report)
            switches = ", ".join(sorted({f"{limb.switch_bone}[{limb.switch_property!r}]" for limb in bone_map.ik}))
            report.notices.append(f"FK and IK controls keyed: the limbs follow the motion in either mode ({switches})")
        for mode, residual in report.residual_deg.items():
            if off := [f"{joint} {deg:.0f}°" for joint, deg in residual.items() if deg > NOTICE_DEG]:
                report.notices.append(f"{mode}: the rig does not reach the motion at {', '.join(off)}")
            elif mode == "IK" and (worst := max(residual.values(), default=0.0)) > SHORTENED_DEG:
                report.notices.append(
                    f"IK: limbs up to {worst:.0f}° off: the rig's own IK chain does not keep their length (IK "
                    "stretch with the chain root's scale locked); FK follows exactly"
                )
        scratch.remove_object()  # removing the copy and its scene are slices of their own (~5-8 ms each)
        yield None
        return out, report
    finally:
        scratch.close()


def _fk_pass(
    scratch: Scratch,
    measure: _Measure,
    bone_map: BoneMap,
    track: PoseTrack,
    goal: _Target,
    solve: np.ndarray,
    tolerance: float,
    report: SolveReport,
) -> Steps[tuple[np.ndarray, np.ndarray]]:
    """Every keyed control but a separate root bone (which turns as the pelvis and carries the location) corrected
    through the measured transmission; the root bone's location through the pelvis joint's position."""
    joint_of = [j for j, _ in retarget.driven_bones(bone_map)]
    held = {0} if bone_map.root else set()  # a separate root bone keeps its closed-form turn
    free = [d for d, j in enumerate(joint_of) if d not in held and _reader(bone_map, j) is not None]
    rows = [scratch.index(track.bones[d]) for d in range(len(track.bones))]
    free_rows = [rows[d] for d in free]
    joints = [joint_of[d] for d in free]
    pelvis = joints.index(0) if 0 in joints else None
    quats = np.array(track.quaternions, dtype=np.float64)
    locations = np.array(track.root_locations, dtype=np.float64)
    closed = quats.copy()
    closed_locations = locations.copy()

    def pose(t: int) -> None:
        for d, name in enumerate(track.bones):
            scratch.set_rotation(name, quats[t, d])
        scratch.set_location(track.root_bone, locations[t])

    def errors(t: int, matrices: np.ndarray) -> np.ndarray:
        heads, frames = measure(matrices)
        return solve_math.joint_errors(heads, frames, goal.heads[t], goal.frames[t], joints)

    frames = np.flatnonzero(solve)
    if len(frames) == 0 or not free:
        return quats, locations
    # Probe: turn each free control a little about each axis and see how every joint turns (3 evaluations each): the
    # (3F, 3F) transmission J, joint turns per control turn, so that δ = S·e corrects all controls at once.
    first = int(frames[0])
    pose(first)
    at_rest = scratch.evaluate()
    base = solve_math.exp_rotation(errors(first, at_rest))
    yield None
    count = len(free)
    transmission = np.zeros((3 * count, 3 * count))
    for a, d in enumerate(free):
        for k in range(3):
            turned = solve_math.turned_basis(
                quaternion.quat_to_matrix(quats[first, d]), _pose_rotation(at_rest, rows[d]),
                solve_math.exp_rotation(np.eye(3)[k] * PROBE_RAD),
            )  # fmt: skip
            scratch.set_rotation(track.bones[d], quaternion.matrix_to_quat(turned))
            probed = solve_math.exp_rotation(errors(first, scratch.evaluate()))
            # Each joint's turn under the probe from its errors before (E) and after (E' = E·turnᵀ): turn = E'ᵀ·E,
            # so that large errors (a first guess half a turn off) do not bend the measurement.
            change = solve_math.log_rotation(np.swapaxes(probed, -1, -2) @ base)  # (F, 3)
            transmission[:, 3 * a + k] = change.ravel() / PROBE_RAD
            yield None
        scratch.set_rotation(track.bones[d], quats[first, d])
    for a in range(count):
        follow = float(np.trace(transmission[3 * a : 3 * a + 3, 3 * a : 3 * a + 3])) / 3.0
        if follow < FOLLOW_MIN:
            report.notices.append(
                f"{skeleton.JOINT_NAMES[joints[a]]} does not follow {track.bones[free[a]]} (its bone "
                f"{_reader(bone_map, joints[a])} turns {follow:.2f}× with it): keyed as solved without the rig's "
                "evaluation; map the bone that drives it"
            )
            transmission[:, 3 * a : 3 * a + 3] = 0.0
            transmission[3 * a : 3 * a + 3, :] = 0.0
    single = np.array([j in solve_math.ONLY_CHILD for j in joints])
    weights = np.repeat(np.where(np.isin(joints, solve_math.CARRIERS), CARRIER_WEIGHT, 1.0), 3)
    correction = solve_math.correction_matrix(transmission, weights)
    report.evaluations["probe"] = 3 * count + 1
    evaluations = 0
    residual = np.zeros(count)
    previous: int | None = None
    for t in (int(f) for f in frames):
        if previous is not None:  # warm start: the last frame's correction of the closed form, carried over
            change = quaternion.qmul(quats[previous], quaternion.qinv(closed[previous]))
            quats[t] = quaternion.qmul(change, closed[t])
            locations[t] = closed_locations[t] + locations[previous] - closed_locations[previous]
        best: tuple[float, np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None
        step = 1.0
        for _ in range(MAX_ITERATIONS * (3 if previous is None else 1)):
            pose(t)
            matrices = scratch.evaluate()
            evaluations += 1
            yield None
            heads, frames_now = measure(matrices)
            error = solve_math.joint_errors(heads, frames_now, goal.heads[t], goal.frames[t], joints)
            offset = goal.heads[t, 0] - heads[0]
            worst = np.degrees(np.linalg.norm(error, axis=-1))
            # Done when every segment points right and the pelvis, chest and leaves are turned right (the twist of a
            # bone in a chain may be the rig's own business: Rigify's lowest spine bone turns with its hips).
            shown = np.where(single, solve_math.direction_errors_deg(heads, goal.heads[t], joints), worst)
            score = float(shown.max()) + float(np.linalg.norm(offset) / tolerance) * TOLERANCE_DEG
            if shown.max() < TOLERANCE_DEG and np.linalg.norm(offset) < tolerance:
                best = (score, quats[t].copy(), locations[t].copy(), shown, matrices)
                break
            if best is not None and score >= best[0]:  # worse: back to the best state, half the step
                step *= 0.5
                quats[t], locations[t], matrices = best[1].copy(), best[2].copy(), best[4]
                heads, frames_now = measure(matrices)
                error = solve_math.joint_errors(heads, frames_now, goal.heads[t], goal.frames[t], joints)
                offset = goal.heads[t, 0] - heads[0]
            else:
                best = (score, quats[t].copy(), locations[t].copy(), shown, matrices)
                step = min(1.0, step * 2.0)
            turns = step * (correction @ error.ravel()).reshape(count, 3)  # world turns of the free controls
            pose_rot = solve_math.orthonormal(matrices[free_rows, :3, :3])
            basis = quaternion.quat_to_matrix(quats[t, free])
            quats[t, free] = quaternion.matrix_to_quat(
                solve_math.turned_basis(basis, pose_rot, solve_math.exp_rotation(turns))
            )
            # The pelvis joint moves with the turns (about each control's head), then by the root's location.
            moved = np.zeros(3)
            if pelvis is not None:
                for a, d in enumerate(free):
                    pelvis_turn = transmission[3 * pelvis : 3 * pelvis + 3, 3 * a : 3 * a + 3] @ turns[a]
                    moved += np.cross(pelvis_turn, heads[0] - matrices[rows[d], :3, 3])
            axes = _location_axes(scratch, track.root_bone, matrices, quaternion.quat_to_matrix(quats[t, 0]))
            locations[t] += np.linalg.solve(axes, step * offset - moved)
        assert best is not None
        quats[t], locations[t] = best[1], best[2]  # the best evaluated state (never an unverified update)
        residual = np.maximum(residual, best[3])
        previous = t
    report.evaluations["FK"] = evaluations
    report.residual_deg["FK"] = {skeleton.JOINT_NAMES[j]: float(r) for j, r in zip(joints, residual, strict=True)}
    return quats, locations


def _ik_pass(
    scratch: Scratch,
    measure: _Measure,
    bone_map: BoneMap,
    track: PoseTrack,
    goal: _Target,
    solve: np.ndarray,
    tolerance: float,
    report: SolveReport,
) -> Steps[PoseTrack]:
    """The limbs switched to IK, the FK keys held: each limb's IK target moved and turned onto the end joint, the
    tip turned, the bend plane turned by the chain root (or by the pole while the rig uses it); the pole (or chain
    root) the rig does not use is still placed, so switching it on keeps the pose."""
    rotated, located = ik_bone_names(bone_map)
    limbs = bone_map.ik
    count = track.frames
    for limb in bone_map.ik:
        scratch.set_property(limb.switch_bone, limb.switch_property, limb.ik_value)
    start = {name: scratch.basis(name) for name in (*rotated, *located)}
    rot = np.array([[start[n][0] for n in rotated]] * count, dtype=np.float64)  # (K, R, 4)
    loc = np.array([[start[n][1] for n in located]] * count, dtype=np.float64)  # (K, L, 3)
    rot_at = {n: i for i, n in enumerate(rotated)}
    loc_at = {n: i for i, n in enumerate(located)}
    # Chain roots whose scale is free: scaled so that the rig's IK (with stretch) keeps the chain at its rest length.
    scaled = tuple(dict.fromkeys(limb.chain for limb in limbs if not any(scratch.bones[limb.chain].lock_scale)))
    scl = np.array([[scratch.scale(n) for n in scaled]] * count, dtype=np.float64).reshape(count, len(scaled), 3)
    scl_at = {n: i for i, n in enumerate(scaled)}
    # Around the animator's scale: a bent chain is made up for its shortening, one the motion holds straight is scaled
    # a hair short (the IK then stretches it straight onto its target instead of kinking it).
    scale_range = {n: (scl[0, i] * 0.9, scl[0, i] * 1.25) for n, i in scl_at.items()}
    uses_pole = {
        limb.switch_bone: bool(limb.pole and limb.pole_switch and scratch.bones[limb.switch_bone].get(limb.pole_switch))
        for limb in bone_map.ik
    }
    worst: dict[str, float] = {}
    previous: int | None = None
    matrices = np.zeros((0, 4, 4))
    evaluations = 0
    for t in (int(f) for f in np.flatnonzero(solve)):
        if previous is not None:  # warm start: the last frame's controls, moved and turned as the targets did
            rot[t], loc[t], scl[t] = rot[previous], loc[previous], scl[previous]
            for limb in limbs:
                _ik_carry(scratch, limb, matrices, goal, previous, t, rot[t], loc[t], rot_at, loc_at)
        for d, name in enumerate(track.bones):
            scratch.set_rotation(name, track.quaternions[t, d])
        scratch.set_location(track.root_bone, track.root_locations[t])
        brackets = {n: _Bracket(*scale_range[n]) for n in scaled}  # per frame: the scales known too short / long
        best: tuple[float, np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None
        for _ in range(MAX_ITERATIONS * (3 if previous is None else 1)):
            for name, i in rot_at.items():
                scratch.set_rotation(name, rot[t, i])
            for name, i in loc_at.items():
                scratch.set_location(name, loc[t, i])
            for name, i in scl_at.items():
                scratch.set_scale(name, scl[t, i])
            matrices = scratch.evaluate()
            evaluations += 1
            yield None
            heads, frames = measure(matrices)
            misses = [_IkMiss.of(limb, heads, frames, goal, t) for limb in limbs]
            directions = max(max(m.directions_deg(heads, goal.heads[t]).values()) for m in misses)
            offset = max(float(np.linalg.norm(m.end_offset)) for m in misses)
            score = directions + offset / tolerance * TOLERANCE_DEG
            if best is None or score < best[0]:
                best = (score, rot[t].copy(), loc[t].copy(), scl[t].copy(), matrices)
            # The chain's length (base → middle → end) against the target's: a stretchy IK chain (Rigify's bones have
            # IK stretch) comes out short when bent, the end still on its target, so the middle joint sits off.
            gaps = [solve_math.chain_length(goal.heads[t], limb.joints) - solve_math.chain_length(heads, limb.joints)
                    for limb in limbs]  # fmt: skip
            lengths_done = all(  # a chain held straight kinks visibly over a fraction of a millimetre: its directions
                limb.chain not in scl_at
                or (abs(gap) < tolerance and max(miss.directions_deg(heads, goal.heads[t]).values()) < STRAIGHT_DEG)
                for limb, miss, gap in zip(limbs, misses, gaps, strict=True)
            )
            if all(m.within(tolerance) for m in misses) and lengths_done:
                break
            for limb, miss, gap in zip(limbs, misses, gaps, strict=True):
                _ik_update(scratch, limb, miss, matrices, goal, t, rot[t], loc[t], rot_at, loc_at,
                           uses_pole[limb.switch_bone])  # fmt: skip
                if (at := scl_at.get(limb.chain)) is not None:
                    wanted = solve_math.chain_length(goal.heads[t], limb.joints)
                    scl[t, at] = brackets[limb.chain].next(scl[t, at], gap, wanted)
        else:  # out of iterations: back to the best state evaluated (never an unverified update)
            assert best is not None
            rot[t], loc[t], scl[t], matrices = best[1], best[2], best[3], best[4]
            heads, frames = measure(matrices)
            misses = [_IkMiss.of(limb, heads, frames, goal, t) for limb in limbs]
        for limb, miss in zip(limbs, misses, strict=True):
            for joint, deg in miss.directions_deg(heads, goal.heads[t]).items():
                worst[joint] = max(worst.get(joint, 0.0), deg)
            if limb.pole and not uses_pole[limb.switch_bone]:  # the unused pole goes where it would hold this bend
                at = loc_at[limb.pole]
                loc[t, at] = _pole_location(scratch, bone_map, limb, matrices, heads, loc[t, at])
        previous = t
    report.residual_deg["IK"] = worst
    report.evaluations["IK"] = evaluations
    bones = tuple(dict.fromkeys((*track.bones, *rotated)))
    extra = [rotated.index(b) for b in bones[len(track.bones) :]]
    quats = np.concatenate([track.quaternions, continuous_quaternions(rot[:, extra])], axis=1)
    return replace(track, bones=bones, quaternions=quats, located=located, locations=loc, scaled=scaled, scales=scl)


class _Bracket:
    """A chain root's scale for one frame, found by a safeguarded secant on the chain's length gap (wanted − measured,
    which does not grow with the scale): the scales seen too short and too long bound the next one. A stretchy chain
    that the target pulls straight keeps the same gap whatever the scale (the secant has no slope there): then a step
    of wanted / measured, or the bracket's middle."""

    def __init__(self, low: np.ndarray, high: np.ndarray):
        self.low, self.high = low.copy(), high.copy()
        self.last: tuple[np.ndarray, float] | None = None

    def next(self, scale: np.ndarray, gap: float, wanted: float) -> np.ndarray:
        if gap > 0:  # too short: a larger scale
            self.low = np.maximum(self.low, scale)
        else:
            self.high = np.minimum(self.high, scale)
        factor = wanted / max(wanted - gap, 1e-9)
        if self.last is not None and abs(self.last[1] - gap) > 1e-9:
            before = float(self.last[0].mean()) / float(scale.mean())
            factor = 1.0 - gap * (before - 1.0) / (self.last[1] - gap)
        self.last = (scale.copy(), gap)
        proposed = scale * float(np.clip(factor, 0.8, 1.25))
        if np.all(proposed > self.low) and np.all(proposed < self.high):
            return proposed
        return (self.low + self.high) / 2.0


@dataclass(frozen=True)
class _IkMiss:
    """How far a limb in IK is from the target on one evaluation."""

    limb: IkLimb
    end_turn: np.ndarray  # (3, 3) world turn of the end joint's bone onto the target
    tip_turn: np.ndarray | None  # (3, 3) the same for the tip
    end_offset: np.ndarray  # (3,) target − measured end joint position (armature space)
    bend: float  # radians: the bend plane's turn about base → end onto the target's

    @classmethod
    def of(cls, limb: IkLimb, heads: np.ndarray, frames: np.ndarray, goal: _Target, t: int) -> _IkMiss:
        base, middle, end = limb.joints
        tip = [limb.tip[0]] if limb.tip is not None else []
        turns = solve_math.exp_rotation(
            solve_math.joint_errors(heads, frames, goal.heads[t], goal.frames[t], [end, *tip])
        )
        bend = solve_math.bend_angle(heads[base], heads[middle], goal.heads[t, [base, middle, end]])
        return cls(limb, turns[0], turns[1] if tip else None, goal.heads[t, end] - heads[end], bend)

    def within(self, tolerance: float) -> bool:
        turns = [self.end_turn, *([self.tip_turn] if self.tip_turn is not None else [])]
        worst = max(float(np.degrees(np.linalg.norm(solve_math.log_rotation(m)))) for m in turns)
        return (
            worst < TOLERANCE_DEG
            and abs(np.degrees(self.bend)) < TOLERANCE_DEG
            and (float(np.linalg.norm(self.end_offset)) < tolerance)
        )

    def directions_deg(self, heads: np.ndarray, target: np.ndarray) -> dict[str, float]:
        """Degrees between measured and target segments base → middle → end (→ tip), by the segment's first joint."""
        chain = [*self.limb.joints, *([self.limb.tip[0]] if self.limb.tip is not None else [])]
        out = {}
        for a, b in itertools.pairwise(chain):
            u, v = heads[b] - heads[a], target[b] - target[a]
            cos = u @ v / max(float(np.linalg.norm(u) * np.linalg.norm(v)), 1e-12)
            out[skeleton.JOINT_NAMES[a]] = float(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))))
        return out


def _ik_carry(
    scratch: Scratch,
    limb: IkLimb,
    matrices: np.ndarray,
    goal: _Target,
    before: int,
    t: int,
    rot: np.ndarray,
    loc: np.ndarray,
    rot_at: dict[str, int],
    loc_at: dict[str, int],
) -> None:
    """A limb's IK target (and tip) carried from frame `before` (evaluated as `matrices`) to `t` as the target joints
    move and turn between them (in place in this frame's `rot` / `loc` rows)."""
    end = limb.joints[2]
    row = scratch.index(limb.target)
    basis = quaternion.quat_to_matrix(rot[rot_at[limb.target]])
    change = goal.frames[t, end] @ goal.frames[before, end].T
    rot[rot_at[limb.target]] = quaternion.matrix_to_quat(
        solve_math.turned_basis(basis, _pose_rotation(matrices, row), change)
    )
    axes = _location_axes(scratch, limb.target, matrices, basis)
    loc[loc_at[limb.target]] += np.linalg.solve(axes, goal.heads[t, end] - goal.heads[before, end])
    if limb.tip is not None:
        tip = limb.tip[0]
        tip_change = change.T @ goal.frames[t, tip] @ goal.frames[before, tip].T
        tip_basis = quaternion.quat_to_matrix(rot[rot_at[limb.tip[1]]])
        rot[rot_at[limb.tip[1]]] = quaternion.matrix_to_quat(
            solve_math.turned_basis(tip_basis, _pose_rotation(matrices, scratch.index(limb.tip[1])), tip_change)
        )


def _ik_update(
    scratch: Scratch,
    limb: IkLimb,
    miss: _IkMiss,
    matrices: np.ndarray,
    goal: _Target,
    t: int,
    rot: np.ndarray,
    loc: np.ndarray,
    rot_at: dict[str, int],
    loc_at: dict[str, int],
    uses_pole: bool,
) -> None:
    """One correction of a limb's IK controls (in place in `rot` / `loc`, this frame's rows): the target moved by the
    end joint's offset and turned by its turn, the tip turned by its own turn less the target's, the bend plane
    turned about the chain root's length (or the pole about the base → end axis)."""
    base, _, end = limb.joints
    row = scratch.index(limb.target)
    pose_rot = _pose_rotation(matrices, row)
    basis = quaternion.quat_to_matrix(rot[rot_at[limb.target]])
    rot[rot_at[limb.target]] = quaternion.matrix_to_quat(solve_math.turned_basis(basis, pose_rot, miss.end_turn))
    axes = _location_axes(scratch, limb.target, matrices, basis)
    loc[loc_at[limb.target]] += np.linalg.solve(axes, miss.end_offset)
    if limb.tip is not None and miss.tip_turn is not None:
        tip_row = scratch.index(limb.tip[1])
        tip_basis = quaternion.quat_to_matrix(rot[rot_at[limb.tip[1]]])
        turn = miss.end_turn.T @ miss.tip_turn  # the tip follows the target's turn already
        rot[rot_at[limb.tip[1]]] = quaternion.matrix_to_quat(
            solve_math.turned_basis(tip_basis, _pose_rotation(matrices, tip_row), turn)
        )
    axis = goal.heads[t, end] - goal.heads[t, base]
    axis /= max(float(np.linalg.norm(axis)), 1e-12)
    if uses_pole:
        pole_row = scratch.index(limb.pole)
        head = matrices[pole_row, :3, 3]
        turned_head = goal.heads[t, base] + solve_math.exp_rotation(axis * miss.bend) @ (head - goal.heads[t, base])
        pole_basis = quaternion.quat_to_matrix(np.array(scratch.bones[limb.pole].matrix_basis.to_quaternion()))
        loc[loc_at[limb.pole]] += np.linalg.solve(
            _location_axes(scratch, limb.pole, matrices, pole_basis), turned_head - head
        )
    else:
        chain_rot = _pose_rotation(matrices, scratch.index(limb.chain))
        own_axis = chain_rot[:, 1]  # turn about the chain root's own length: its locked axes stay at 0
        sign = 1.0 if own_axis @ axis >= 0 else -1.0
        chain_basis = quaternion.quat_to_matrix(rot[rot_at[limb.chain]])
        turned = solve_math.turned_basis(chain_basis, chain_rot, solve_math.exp_rotation(own_axis * miss.bend * sign))
        rot[rot_at[limb.chain]] = quaternion.matrix_to_quat(turned)


def _pole_location(
    scratch: Scratch, bone_map: BoneMap, limb: IkLimb, matrices: np.ndarray, heads: np.ndarray, current: np.ndarray
) -> np.ndarray:
    """The location that puts a pole the rig does not use in the limb's bend plane, in front of the middle joint as
    far from it as at rest (switching the pole on then keeps the bend)."""
    base, middle, end = limb.joints
    bones = armature_data(scratch.obj).bones
    reader = _reader(bone_map, middle)
    if reader is None:
        return current
    distance = float((bones[limb.pole].head_local - bones[reader].head_local).length)
    axis = heads[end] - heads[base]
    axis /= max(float(np.linalg.norm(axis)), 1e-12)
    bend = heads[middle] - heads[base]
    bend -= axis * (bend @ axis)
    if np.linalg.norm(bend) < 1e-9:
        return current
    wanted = heads[middle] + bend / np.linalg.norm(bend) * distance
    row = scratch.index(limb.pole)
    basis = quaternion.quat_to_matrix(np.array(scratch.bones[limb.pole].matrix_basis.to_quaternion()))
    return current + np.linalg.solve(_location_axes(scratch, limb.pole, matrices, basis), wanted - matrices[row, :3, 3])
