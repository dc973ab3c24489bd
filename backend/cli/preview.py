"""A PNG contact sheet of a motion (stick figures over time) that a person can look at: numpy + zlib only."""

from __future__ import annotations

import itertools
import struct
import zlib
from pathlib import Path

import numpy as np

from shared.motion.skeleton import KINEMATIC_CHAINS

# Colours (RGB): left limbs blue, right limbs red, spine dark grey; background white; floor light grey.
_CHAIN_COLOURS = ((200, 40, 40), (40, 80, 200), (60, 60, 60), (200, 40, 40), (40, 80, 200))
_FLOOR = (190, 190, 190)
_TRACE = (150, 200, 150)


def write_png(path: Path, image: np.ndarray) -> None:
    """Write an (H, W, 3) uint8 image as an 8-bit RGB PNG."""
    height, width, _ = image.shape
    raw = b"".join(b"\x00" + image[row].tobytes() for row in range(height))  # filter type 0 per row

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    Path(path).write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b"")
    )


def _draw_segment(image: np.ndarray, a: np.ndarray, b: np.ndarray, colour: tuple[int, int, int], radius: int) -> None:
    """A thick line from pixel a to pixel b (x, y), by stamping discs along it."""
    steps = int(np.ceil(np.abs(b - a).max())) + 1
    points = np.round(a + (b - a) * np.linspace(0.0, 1.0, steps)[:, None]).astype(int)
    height, width, _ = image.shape
    for dx in range(-radius, radius + 1):
        for dy in range(-radius, radius + 1):
            if dx * dx + dy * dy > radius * radius:
                continue
            x, y = points[:, 0] + dx, points[:, 1] + dy
            inside = (x >= 0) & (x < width) & (y >= 0) & (y < height)
            image[y[inside], x[inside]] = colour


def render_contact_sheet(joints: np.ndarray, path: Path, panels: int = 8, panel_size: int = 220) -> Path:
    """Stick figures of `panels` evenly spaced frames of (T, 22, 3) Y-up joints, seen from the front-right,
    each panel following the body, with the floor and the pelvis path so far; written as a PNG."""
    joints = np.asarray(joints, dtype=np.float64)
    frames = np.linspace(0, len(joints) - 1, min(panels, len(joints))).round().astype(int)
    yaw = np.deg2rad(30.0)  # view direction: 30° to the character's right of straight-on
    # Screen x = along the rotated X axis, screen y = up; the scene is seen from +Z rotated by `yaw`.
    right = np.array([np.cos(yaw), 0.0, -np.sin(yaw)])
    scale = panel_size * 0.8 / max(1.0, float(np.ptp(joints[..., 1])) + 0.2)
    image = np.full((panel_size, panel_size * len(frames), 3), 255, dtype=np.uint8)
    for panel, t in enumerate(frames):
        centre = joints[t, 0]
        origin = np.array([panel * panel_size + panel_size / 2, panel_size * 0.93])

        def to_pixels(points: np.ndarray, centre: np.ndarray = centre, origin: np.ndarray = origin) -> np.ndarray:
            relative = points - centre * np.array([1.0, 0.0, 1.0])
            return origin + np.stack([relative @ right, -relative[..., 1]], axis=-1) * scale

        floor = to_pixels(
            np.array([centre - right * 2 * np.array([1, 0, 1]), centre + right * 2 * np.array([1, 0, 1])])
        )
        floor[:, 1] = origin[1]
        _draw_segment(image, floor[0], floor[1], _FLOOR, 1)
        path_points = to_pixels(joints[: t + 1, 0] * np.array([1.0, 0.0, 1.0]))
        for a, b in itertools.pairwise(path_points):
            _draw_segment(image, a, b, _TRACE, 1)
        pixels = to_pixels(joints[t])
        for chain, colour in zip(KINEMATIC_CHAINS, _CHAIN_COLOURS, strict=True):
            for parent, child in itertools.pairwise(chain):
                _draw_segment(image, pixels[parent], pixels[child], colour, 2)
        _draw_segment(image, pixels[15], pixels[15], (60, 60, 60), 5)  # head
    write_png(path, image)
    return Path(path)
