"""The MotionGPT3 backend, one layer per folder, each importing only the ones below it:

model/ (the network, checkpoints, devices) < tasks/ (the four tasks) < service/, train/, eval/ < bench/ < cli/.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from backend.model.motiongpt3 import MotionGPT3


def load_model(checkpoint: str | Path | None = None, device: str = "auto") -> MotionGPT3:
    """MotionGPT3 from the embedded demo model (None), an official `.ckpt` or our `.safetensors` file."""
    from backend.model.loading import load_model as _load

    return _load(checkpoint, device)
