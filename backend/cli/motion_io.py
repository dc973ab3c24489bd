"""Motion files for the command line: read BVH / .npy clips as 263-dim features, write features, joints and BVH."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from shared.motion.bvh import read_bvh, write_bvh
from shared.motion.bvh_mapping import bvh_joints_metres, parse_unit
from shared.motion.humanml3d import FEATURE_DIM, FPS, NUM_JOINTS
from shared.motion.pipeline import decode_features, encode_joints

MOTION_SUFFIXES = (".bvh", ".bvh.gz", ".npy")


def motion_suffix(path: Path) -> str:
    """'.bvh', '.bvh.gz', '.npy' or the plain suffix of anything else (lower case)."""
    name = path.name.lower()
    return next((s for s in MOTION_SUFFIXES if name.endswith(s)), path.suffix.lower())


class MotionFileError(ValueError):
    """A motion file that cannot be used (wrong type, shape or content)."""


def load_npy(path: Path) -> np.ndarray:
    """A plain numeric .npy array (never a pickled object)."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        array = np.load(path, allow_pickle=False)
    except ValueError as error:
        raise MotionFileError(f"{path}: not a numeric .npy array ({error})") from None
    if not np.issubdtype(array.dtype, np.number):
        raise MotionFileError(f"{path}: expected a numeric array, got dtype {array.dtype}")
    return array


def read_motion_file(path: Path, bone_map: str = "auto", unit: str = "map") -> np.ndarray:
    """(N, 263) features at 20 fps from a BVH (mapped skeleton; `unit`: 'map', 'auto', a unit name or metres per
    unit, see `bvh_joints_metres`), a features .npy (N, 263) or joints .npy (T, 22, 3; Y-up metres at 20 fps)."""
    suffix = motion_suffix(path)
    if suffix in (".bvh", ".bvh.gz"):
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such file")
        clip = read_bvh(path)
        joints, _, _ = bvh_joints_metres(clip, bone_map, parse_unit(unit))
        return encode_joints(joints, clip.fps)
    if suffix != ".npy":
        raise MotionFileError(f"{path}: expected a .bvh, .bvh.gz or .npy motion file")
    array = load_npy(path)
    if array.ndim == 3 and array.shape[1:] == (NUM_JOINTS, 3):
        return encode_joints(array, FPS)
    if array.ndim != 2 or array.shape[1] != FEATURE_DIM:
        raise MotionFileError(f"{path}: expected features (N, {FEATURE_DIM}) or joints (T, 22, 3), got {array.shape}")
    if not np.all(np.isfinite(array)):
        raise MotionFileError(f"{path}: contains NaN or infinite values")
    return array.astype(np.float32)


def motion_files_in(inputs: list[Path]) -> list[Path]:
    """Files given directly plus every .bvh / .bvh.gz / .npy below given folders, sorted, without repeats."""
    found: list[Path] = []
    for item in inputs:
        if item.is_dir():
            found += sorted(p for p in item.rglob("*") if motion_suffix(p) in MOTION_SUFFIXES and p.is_file())
        else:
            found.append(item)
    return list(dict.fromkeys(found))


def write_motion_outputs(stem: Path, features: np.ndarray, fps: float = FPS) -> list[Path]:
    """stem.npy (features, 20 fps), stem_joints.npy (joints at `fps`), stem.bvh (rotations at `fps`) and
    stem_preview.png (a stick-figure contact sheet)."""
    from .preview import render_contact_sheet

    stem.parent.mkdir(parents=True, exist_ok=True)
    decoded = decode_features(features, fps=fps)
    paths = [
        stem.with_name(stem.name + ".npy"),
        stem.with_name(stem.name + "_joints.npy"),
        stem.with_name(stem.name + ".bvh"),
        stem.with_name(stem.name + "_preview.png"),
    ]
    np.save(paths[0], np.asarray(features, dtype=np.float32))
    np.save(paths[1], decoded.joints.astype(np.float32))
    write_bvh(paths[2], decoded.local_rotations, decoded.root_positions, decoded.rest_offsets, fps=fps)
    render_contact_sheet(decoded.joints, paths[3])
    return paths
