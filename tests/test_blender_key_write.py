"""`action_io.set_keys` against the way it replaced, in real Blender (every bpy env: BLENDER_TESTS in build.py).

set_keys writes a whole curve as sample points and lets `convert_to_keyframes` make them linear keys. The oracle is
the former write, `keyframe_points.add` + `foreach_set("co")` + `foreach_set("interpolation")` + `fc.update()`: every
property of every key (co, handles, handle types, interpolation, selection, easing...), the curve's range and its
value at integer and fractional frames (outside the keys too) must come out the same, with no `fc.update()` on the
new curve; the same holds where set_keys falls back to the former write (fractional first frame, unsorted frames,
one key)."""

from __future__ import annotations

from collections.abc import Callable

import bpy
import numpy as np
import pytest
from reference import cmu_walk_clip

from blender_addon import action_io, armature, rig_math
from blender_addon.action_io import Channels, key_columns, sampled_start, sampled_starts, set_keys
from shared.motion.humanml3d import features_to_joints


def former_set_keys(fc: bpy.types.FCurve, co: np.ndarray) -> None:
    """set_keys as it was: the oracle."""
    kp = fc.keyframe_points
    if len(kp):
        kp.clear()
    n = len(co) // 2
    kp.add(n)
    kp.foreach_set("co", co)
    linear = bpy.types.Keyframe.bl_rna.properties["interpolation"].enum_items["LINEAR"].value
    kp.foreach_set("interpolation", np.full(n, linear, np.int32))
    fc.update()


def key_properties(fc: bpy.types.FCurve) -> dict[str, np.ndarray]:
    """Every RNA property of every key of `fc` (new properties of later Blenders included), read with foreach_get."""
    n = len(fc.keyframe_points)
    out = {}
    for prop in bpy.types.Keyframe.bl_rna.properties:
        if prop.identifier == "rna_type":
            continue
        width = max(1, getattr(prop, "array_length", 0) or 1)
        dtype = {"FLOAT": np.float32, "BOOLEAN": bool}.get(prop.type, np.int32)  # INT, ENUM: int
        buf = np.empty(n * width, dtype)
        fc.keyframe_points.foreach_get(prop.identifier, buf)
        out[prop.identifier] = buf
    return out


def assert_same_curve(new: bpy.types.FCurve, old: bpy.types.FCurve, co: np.ndarray) -> None:
    """`new` (set_keys) and `old` (the oracle) alike; with ascending frames both hold exactly the keys of `co`."""
    assert len(new.sampled_points) == 0
    mine, theirs = key_properties(new), key_properties(old)
    assert mine.keys() == theirs.keys() and {"co", "handle_left", "handle_right", "interpolation"} <= mine.keys()
    for name in mine:
        assert np.array_equal(mine[name], theirs[name]), name
    skip = {"rna_type", "data_path", "keyframe_points", "sampled_points", "modifiers", "driver", "group"}
    for prop in bpy.types.FCurve.bl_rna.properties:  # the curve's own settings and flags (selection, active key...)
        if prop.identifier not in skip:
            mine_value, their_value = getattr(new, prop.identifier), getattr(old, prop.identifier)
            if getattr(prop, "array_length", 0):
                mine_value, their_value = tuple(mine_value), tuple(their_value)
            assert mine_value == their_value, prop.identifier
    low, high = co[0::2].min(), co[0::2].max()
    if (np.diff(co[0::2]) > 0).all():
        assert np.array_equal(mine["co"], co)
    assert tuple(new.range()) == tuple(old.range()) == (low, high)
    frames = np.concatenate([np.arange(low - 3, high + 3, 0.25), co[0::2], co[0::2] + 1e-3])
    assert [new.evaluate(f) for f in frames] == [old.evaluate(f) for f in frames]


@pytest.fixture
def curves() -> Callable[..., tuple[bpy.types.FCurve, bpy.types.FCurve]]:
    """A pair of F-curves on an Empty's fresh Action (one for set_keys, one for the oracle), set up alike."""
    bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)
    obj = bpy.data.objects.new("target", None)
    bpy.context.scene.collection.objects.link(obj)
    channels = Channels(obj, bpy.data.actions.new("keys"))
    count = [0]

    def pair(setup: Callable[[bpy.types.FCurve], None] = lambda fc: None):
        out = []
        for _ in range(2):
            fc = channels.ensure(f'["p{count[0]}"]', 0, "test")
            count[0] += 1
            setup(fc)
            out.append(fc)
        return out[0], out[1]

    return pair


def _co(frames: np.ndarray, values: np.ndarray) -> np.ndarray:
    out = np.empty(2 * len(frames), np.float32)
    out[0::2], out[1::2] = frames, values
    return out


_RNG = np.random.default_rng(7)
_CASES = {  # name: (co, whether set_keys writes it as sample points)
    "random": (_co(np.arange(0, 50), _RNG.normal(size=50)), True),
    "random walk from a negative frame": (_co(np.arange(-30, 30), np.cumsum(_RNG.normal(size=60))), True),
    "constant": (_co(np.arange(1, 21), np.full(20, 0.5)), True),
    "zigzag": (_co(np.arange(1, 41), np.tile([-3.0, 5.0], 20)), True),
    "plateaus and steps": (_co(np.arange(1, 31), np.repeat([0.0, 1.0, 1.0, -2.0, 4.0, 4.0], 5)), True),
    "two keys": (_co(np.array([7, 8]), np.array([1.0, -1.0])), True),
    "uneven fractional frames": (_co(12 + np.cumsum(np.r_[0, _RNG.uniform(0.1, 3, 39)]), _RNG.normal(size=40)), True),
    "fractional first frame": (_co(np.arange(40) + 1.5, _RNG.normal(size=40)), False),
    "unsorted frames": (_co(np.array([1, 3, 2, 4, 5]), np.array([0.0, 1.0, 2.0, 0.5, 3.0])), False),
    "repeated frame": (_co(np.array([1, 2, 2, 3]), np.array([0.0, 1.0, 2.0, 0.5])), False),
    "one key": (_co(np.array([5]), np.array([2.0])), False),
}


def _extrapolate_linear(fc: bpy.types.FCurve) -> None:
    fc.extrapolation = "LINEAR"


def _no_smoothing(fc: bpy.types.FCurve) -> None:
    fc.auto_smoothing = "NONE"


def _cyclic(fc: bpy.types.FCurve) -> None:
    fc.modifiers.new("CYCLES")


def _keyed_before(fc: bpy.types.FCurve) -> None:
    """Keys of the user's (Bezier, vector handles) that the write replaces."""
    for frame, value in ((-4.0, 2.0), (3.5, -1.0), (90.0, 7.0)):
        key = fc.keyframe_points.insert(frame, value)
        key.handle_left_type = key.handle_right_type = "VECTOR"
    fc.update()


_SETUPS = {
    "fresh curve": lambda fc: None,
    "linear extrapolation": _extrapolate_linear,
    "no auto smoothing": _no_smoothing,
    "cycles modifier": _cyclic,
    "keys to replace": _keyed_before,
}


@pytest.mark.parametrize("setup", list(_SETUPS))
@pytest.mark.parametrize("case", list(_CASES))
def test_set_keys_writes_what_the_former_write_did(curves, case: str, setup: str) -> None:
    co, sampled = _CASES[case]
    assert (sampled_start(co) is not None) == sampled  # the case exercises the path it names
    new, old = curves(_SETUPS[setup])
    set_keys(new, co)
    former_set_keys(old, co)
    assert_same_curve(new, old, co)


def test_write_track_writes_a_generated_motion_as_the_former_write_did(curves) -> None:
    """The benchmark's candidate through `write_track` (all curves checked at once by `sampled_starts`): 400 frames
    of a real clip's quaternions and root location, 91 curves."""
    obj = armature.create_smpl_armature(bpy.context)
    features = cmu_walk_clip()[0]
    track = rig_math.pose_track(features_to_joints(features[:-1]), 60, armature.target_of(obj), frames=400)
    columns = key_columns(1.0, track)
    assert sampled_starts(columns) == [1] * len(columns) == [sampled_start(co) for co in columns]
    paths = [(action_io.bone_path(b, "rotation_quaternion"), i, b) for b in track.bones for i in range(4)]
    paths += [(action_io.bone_path(track.root_bone, "location"), i, track.root_bone) for i in range(3)]
    new_channels = Channels(obj, bpy.data.actions.new("new"))
    action_io.write_track(new_channels, 1.0, track)
    old_channels = Channels(obj, bpy.data.actions.new("old"))
    for (path, index, group), co in zip(paths, columns, strict=True):
        old = old_channels.ensure(path, index, group)
        former_set_keys(old, co)
        assert_same_curve(new_channels.fcurves.find(path, index=index), old, co)


def test_sampled_starts_checks_every_row() -> None:
    low, high = action_io._frame_limits()
    rows = [
        (np.arange(3, 13), 3),
        (np.arange(-12, -2) * 0.5, -6),  # whole first frame, fractional steps
        (np.arange(10) + 0.5, None),  # fractional first frame
        (np.array([1, 2, 3, 5, 4, 6, 7, 8, 9, 10]), None),  # unsorted
        (np.array([1, 2, 3, 3, 4, 5, 6, 7, 8, 9]), None),  # a frame twice
        (np.r_[np.nan, np.arange(2, 11)], None),
        (np.arange(high - 10, high), high - 10),  # the last frame Blender takes
        (np.arange(high - 9, high + 1), None),
        (np.arange(low, low + 10), low),
    ]
    columns = np.stack([_co(frames, np.zeros(10)) for frames, _ in rows])
    assert sampled_starts(columns) == [start for _, start in rows]
    assert sampled_starts(columns[:, :2]) == [None] * len(rows)  # one key each


def test_set_keys_on_an_assigned_action_updates_the_evaluated_object(curves) -> None:
    """Rewriting the curve of the Action the object plays shows at once (the write tags it for re-evaluation)."""
    obj = bpy.data.objects["target"]
    channels = Channels(obj, bpy.data.actions.new("played"))
    fc = channels.ensure("location", 0, "Object Transforms")
    scene = bpy.context.scene
    scene.frame_set(10)
    for values in (np.linspace(0.0, 1.0, 20), np.linspace(4.0, -2.0, 20)):
        co = _co(np.arange(1, 21), values)
        assert sampled_start(co) == 1
        set_keys(fc, co)
        bpy.context.view_layer.update()
        depsgraph = bpy.context.evaluated_depsgraph_get()
        assert obj.evaluated_get(depsgraph).location.x == pytest.approx(values[9])
