"""Our BVH reader against Blender's own importer (the oracle): joint world positions equal the imported armature's
pose-bone heads (and End Sites its tails), every frame, for every variant other tools write and for real files."""

from __future__ import annotations

import itertools
import zlib
from pathlib import Path

import bpy
import numpy as np
import pytest
from reference import TEST_DATA, cmu_clip, gunzip_to, require

from shared.motion.axes import yup_to_zup
from shared.motion.bvh import BvhClip, bvh_end_site_positions, bvh_forward_kinematics, read_bvh

MOCAP = TEST_DATA / "mocap"
TOLERANCE = 1e-4  # of the skeleton's height
ORDERS = ["".join(p) for p in itertools.permutations("XYZ")]


@pytest.fixture
def empty_scene():
    bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)
    return bpy.context.scene


def blender_import(path: Path, frames: int) -> tuple[np.ndarray, dict[str, np.ndarray], list[str]]:
    """Import `path` with Blender's importer (Y-up file → Z-up scene, no scaling, one BVH frame per scene frame) →
    (pose-bone heads (F, B, 3), pose-bone tails by bone name (F, 3), bone names), world space."""
    result = bpy.ops.import_anim.bvh(
        filepath=str(path),
        global_scale=1.0,
        rotate_mode="NATIVE",
        axis_forward="-Z",
        axis_up="Y",
        use_fps_scale=False,
        update_scene_fps=True,
        update_scene_duration=True,
    )
    assert result == {"FINISHED"}
    armature = bpy.context.view_layer.objects.active
    assert armature.type == "ARMATURE"
    bones = list(armature.pose.bones)
    world = np.array(armature.matrix_world)
    heads = np.empty((frames, len(bones), 3))
    tails = np.empty((frames, len(bones), 3))
    for t in range(frames):
        bpy.context.scene.frame_set(1 + t)  # the importer keys BVH frame t at scene frame frame_start + t
        heads[t] = [tuple(bone.head) for bone in bones]
        tails[t] = [tuple(bone.tail) for bone in bones]
    heads = heads @ world[:3, :3].T + world[:3, 3]
    tails = tails @ world[:3, :3].T + world[:3, 3]
    names = [bone.name for bone in bones]
    return heads, {name: tails[:, i] for i, name in enumerate(names)}, names


def skeleton_height(clip: BvhClip) -> float:
    """Largest extent of the rest skeleton (joints placed by their OFFSETs), in the file's unit."""
    rest = np.zeros((len(clip.names), 3))
    for j, parent in enumerate(clip.parents):
        rest[j] = clip.offsets[j] + (rest[parent] if parent >= 0 else 0.0)
    return float(np.ptp(rest, axis=0).max())


def assert_reads_as_blender(path: Path, has_end_sites: bool = True) -> BvhClip:
    clip = read_bvh(path)
    fk = bvh_forward_kinematics(clip)
    ours = yup_to_zup(fk[1])  # what the importer's axis conversion does to the file's Y-up coordinates
    heads, tails, names = blender_import(path, clip.num_frames)
    assert names == clip.names
    tolerance = TOLERANCE * skeleton_height(clip)
    np.testing.assert_allclose(heads, ours, rtol=0, atol=tolerance)
    # The importer puts a bone's tail on its End Site (unless that is shorter than 0.001: then it lengthens the bone).
    real = {clip.names[j] for j, offset in clip.end_sites.items() if np.linalg.norm(offset) > 0.001}
    assert bool(real) == has_end_sites
    for name, site in bvh_end_site_positions(clip, fk).items():
        if name in real:
            np.testing.assert_allclose(tails[name], yup_to_zup(site), rtol=0, atol=tolerance, err_msg=name)
    return clip


# --- variants written here ---------------------------------------------------------------------------------------


SIDE_CHANNELS = "Yrotation Zrotation Xrotation"
PROP_CHANNELS = "Xposition Yposition Zposition Xrotation Yrotation Zrotation"


def chain_bvh(
    joint_channels: list[str],
    values: np.ndarray,
    offsets: np.ndarray,
    unit: float,
    root_channels: str,
    root_offset: tuple[float, float, float],
    names: list[str],
    extra_root: bool,
) -> str:
    """A root, a chain of one joint per entry of `joint_channels` (channel strings) ending in an End Site, a side
    joint with an End Site, optionally a second ROOT; `values` (F, C) the motion. Every length (OFFSETs and
    position channels, given in centimetres) is multiplied by `unit`."""
    listed = root_channels.split() + [c for cs in joint_channels for c in cs.split()] + SIDE_CHANNELS.split()
    listed += PROP_CHANNELS.split() if extra_root else []
    values = values * np.where(["position" in c for c in listed], unit, 1.0)

    def offset(xyz) -> str:
        return "OFFSET {:.8f} {:.8f} {:.8f}".format(*np.multiply(xyz, unit))

    lines = [
        "HIERARCHY",
        "ROOT root",
        "{",
        offset(root_offset),
        f"CHANNELS {len(root_channels.split())} {root_channels}",
    ]
    for k, channels in enumerate(joint_channels):
        lines += [f"JOINT {names[k]}", "{", offset(offsets[k]), f"CHANNELS {len(channels.split())} {channels}".rstrip()]
    lines += ["End Site", "{", offset([0.0, -4.0, 1.5]), "}"] + ["}"] * len(joint_channels)
    lines += ["JOINT side", "{", offset([7.0, 1.0, 0.5]), f"CHANNELS 3 {SIDE_CHANNELS}"]
    lines += ["End Site", "{", offset([0.0, -6.0, 0.0]), "}", "}", "}"]
    if extra_root:
        lines += ["ROOT prop", "{", offset([20, 5, 0]), f"CHANNELS 6 {PROP_CHANNELS}"]
        lines += ["End Site", "{", offset([0, 0, 3]), "}", "}"]
    lines += ["MOTION", f"Frames: {len(values)}", "Frame Time: 0.0333333"]
    lines += [" ".join(f"{v:.8f}" for v in row) for row in values]
    return "\n".join(lines) + "\n"


def variant(name: str, unit: float = 1.0) -> str:
    """The BVH text of a named variant; lengths in centimetres × `unit` (1: cm, 0.01: m, 1/2.54: inch)."""
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    frames = 24
    offsets = np.array([[0.0, 12.0, 1.0], [0.5, 14.0, -1.0], [-1.0, 15.0, 0.0], [0.0, 10.0, 2.0], [0.0, 9.0, 0.0]])
    rotations = [f"{a}rotation {b}rotation {c}rotation" for a, b, c in ORDERS[:5]]

    def angles(n: int) -> np.ndarray:
        return rng.uniform(-70, 70, size=(frames, n))

    t = np.linspace(0, 1, frames)[:, None]
    root = np.hstack([30 * t, 95 + 3 * np.sin(6 * t), -20 * t, angles(3)])
    root_channels, root_offset = "Xposition Yposition Zposition Zrotation Yrotation Xrotation", (0.0, 0.0, 0.0)
    names = [f"j{k}" for k in range(len(rotations))]
    channels, columns = rotations, [angles(3) for _ in rotations]
    if name == "positions_equal_offset":  # what MotionBuilder / Maya / Blender's exporter write
        channels = [f"Xposition Yposition Zposition {r}" for r in rotations]
        columns = [np.hstack([np.tile(o, (frames, 1)), angles(3)]) for o in offsets]
    elif name == "positions_differ_from_offset":  # stretching joints, positions listed after the rotations
        channels = [f"{r} Xposition Yposition Zposition" for r in rotations]
        columns = [np.hstack([angles(3), o * (1 + 0.5 * t) + rng.normal(0, 1, (frames, 3))]) for o in offsets]
    elif name == "partial_positions_and_bare_joints":  # Y only / no channels at all / positions only
        channels = ["Yposition " + rotations[0], "", rotations[2], "Zposition Xposition", rotations[4]]
        columns = [np.hstack([15 + t, angles(3)]), np.zeros((frames, 0)), angles(3), rng.normal(0, 3, (frames, 2))]
        columns.append(angles(3))
    elif name == "root_offset_and_positions":  # Rokoko-style: root OFFSET under absolute root positions
        root_offset = (0.0, 94.0, 0.0)
    elif name == "rotation_only_root_and_names_with_spaces":
        root_channels, root, root_offset = "Yrotation Xrotation Zrotation", angles(3), (3.0, 90.0, -2.0)
        names = ["lower back", "upper back", "j2", "j2", "head top"]  # spaces and a repeated name
    elif name not in ("rotation_only", "two_roots"):
        raise ValueError(name)
    extra_root = name == "two_roots"
    prop = [rng.normal(0, 5, (frames, 3)) + np.array([20, 5, 0]), angles(3)] if extra_root else []
    values = np.hstack([root, *columns, angles(3), *prop])
    return chain_bvh(channels, values, offsets, unit, root_channels, root_offset, names, extra_root)


VARIANTS = [
    "rotation_only",
    "positions_equal_offset",
    "positions_differ_from_offset",
    "partial_positions_and_bare_joints",
    "root_offset_and_positions",
    "rotation_only_root_and_names_with_spaces",
    "two_roots",
]


@pytest.mark.parametrize("name", VARIANTS)
def test_variant_reads_as_blender_reads_it(empty_scene, tmp_path, name):
    path = tmp_path / f"{name}.bvh"
    path.write_text(variant(name), encoding="utf-8")
    assert_reads_as_blender(path)


@pytest.mark.parametrize(("unit", "per_cm"), [("m", 0.01), ("inch", 1 / 2.54)])
def test_units_read_as_blender_and_scale_exactly(empty_scene, tmp_path, unit, per_cm):
    centimetres = read_bvh(variant("positions_differ_from_offset"))
    path = tmp_path / f"in_{unit}.bvh"
    path.write_text(variant("positions_differ_from_offset", per_cm), encoding="utf-8")
    clip = assert_reads_as_blender(path)
    scaled = bvh_forward_kinematics(clip)[1] / per_cm
    np.testing.assert_allclose(scaled, bvh_forward_kinematics(centimetres)[1], rtol=0, atol=1e-4)


# --- real files other tools wrote ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "geno_stance.bvh.gz",  # Maya export: every joint with position channels = OFFSET, cm, root OFFSET 85.5, CRLF
        "rokoko_jesse_dance_100.bvh.gz",  # Rokoko: root OFFSET 94 cm under absolute root positions, YXZ order
        "fair1_dab_60.bvh.gz",  # Animated Drawings' capture: Z-up skeleton, XYZ order, End Sites on hands and feet
    ],
)
def test_real_file_reads_as_blender_reads_it(empty_scene, tmp_path, name):
    assert_reads_as_blender(gunzip_to(require(MOCAP / name), tmp_path), has_end_sites=not name.startswith("geno"))


def test_blender_exported_cmu_clip_with_positions_on_every_joint(empty_scene, tmp_path):
    # Blender's own exporter writes position channels (holding the OFFSET) on every bone that is not connected to
    # its parent: disconnect them all, export a CMU clip, and read that file: Blender's import and ours agree, and
    # the joints are those of the original clip (turned into Blender's Z-up frame, as the exporter writes them).
    source = gunzip_to(cmu_clip("60_01"), tmp_path)
    original = read_bvh(source)
    frames = 30
    blender_import(source, 1)
    armature = bpy.context.view_layer.objects.active
    bpy.ops.object.mode_set(mode="EDIT")
    for bone in armature.data.edit_bones:
        bone.use_connect = False
    bpy.ops.object.mode_set(mode="OBJECT")
    exported = tmp_path / "exported.bvh"
    assert bpy.ops.export_anim.bvh(filepath=str(exported), frame_start=1, frame_end=frames) == {"FINISHED"}
    bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)
    clip = assert_reads_as_blender(exported)
    assert all(c[:3] == ("Xposition", "Yposition", "Zposition") for c in clip.channels)
    joints = bvh_forward_kinematics(clip)[1][:, [clip.index(n) for n in original.names]]
    expected = yup_to_zup(bvh_forward_kinematics(original)[1][:frames])
    np.testing.assert_allclose(joints, expected, rtol=0, atol=TOLERANCE * skeleton_height(original))
