"""The stick-figure contact sheet is a valid PNG that shows the figure (decoded back with zlib, not our code)."""

from __future__ import annotations

import struct
import zlib

import numpy as np
from synthetic import straight_walk

from backend.cli.preview import render_contact_sheet


def _decode_png(data: bytes) -> np.ndarray:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    position, chunks = 8, {}
    while position < len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind = data[position + 4 : position + 8]
        body = data[position + 8 : position + 8 + length]
        (crc,) = struct.unpack(">I", data[position + 8 + length : position + 12 + length])
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF
        chunks[kind] = chunks.get(kind, b"") + body
        position += 12 + length
    width, height, depth, colour = struct.unpack(">IIBB", chunks[b"IHDR"][:10])
    assert (depth, colour) == (8, 2)
    raw = np.frombuffer(zlib.decompress(chunks[b"IDAT"]), dtype=np.uint8).reshape(height, 1 + width * 3)
    assert np.all(raw[:, 0] == 0)
    return raw[:, 1:].reshape(height, width, 3)


def test_contact_sheet_shows_left_and_right_limbs(tmp_path):
    path = render_contact_sheet(straight_walk(60), tmp_path / "walk.png", panels=4, panel_size=120)
    image = _decode_png(path.read_bytes())
    assert image.shape == (120, 480, 3)
    red = (image[..., 0] > 150) & (image[..., 2] < 100)  # right limbs
    blue = (image[..., 2] > 150) & (image[..., 0] < 100)  # left limbs
    for panel in range(4):
        columns = slice(panel * 120, (panel + 1) * 120)
        assert red[:, columns].sum() > 30 and blue[:, columns].sum() > 30, panel
    # The figure stands on the floor line in the lower part of each panel, head in the upper part.
    figure = red | blue | (image < 100).all(-1)
    rows = np.flatnonzero(figure.any(1))
    assert rows.min() < 40 and rows.max() > 100
