"""`load_model`: build MotionGPT3 from the embedded demo model, an official `.ckpt` or our safetensors file."""

from __future__ import annotations

from pathlib import Path

import torch

from .checkpoint import (
    CheckpointError,
    load_state_dict_strict,
    read_official_checkpoint,
    read_safetensors,
    read_safetensors_config,
)
from .config import MotionGPT3Config, official_config
from .motiongpt3 import MotionGPT3

EMBEDDED_MODEL = Path(__file__).resolve().parents[1] / "assets" / "models" / "demo.safetensors"


def resolve_device(device: str = "auto") -> torch.device:
    """'auto' -> CUDA when present, else CPU; anything else as given (a clear error if CUDA is asked but absent)."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r}: CUDA is not available on this machine (use --device cpu or auto)")
    return resolved


def build_model(config: MotionGPT3Config, state_dict: dict[str, torch.Tensor] | None, source: str) -> MotionGPT3:
    """A model in eval mode with the given weights (strict) or freshly initialised ones."""
    model = MotionGPT3(config)
    if state_dict is not None:
        load_state_dict_strict(model, state_dict, source)
    return model.eval()


def read_checkpoint(path: str | Path) -> tuple[MotionGPT3Config, dict[str, torch.Tensor]]:
    """(config, weights) of our `.safetensors` (config from the JSON beside it) or an official `.ckpt`."""
    path = Path(path)
    if path.suffix == ".safetensors":
        return read_safetensors(path)
    if path.suffix in (".ckpt", ".pt", ".pth"):
        return official_config(), read_official_checkpoint(path)
    raise CheckpointError(f"{path}: unknown checkpoint type (expected .ckpt or .safetensors)")


def read_checkpoint_config(path: str | Path | None) -> MotionGPT3Config:
    """The config of the model a checkpoint holds (None = the embedded demo model), without reading weights."""
    path = Path(EMBEDDED_MODEL if path is None else path)
    if path.suffix == ".safetensors":
        return read_safetensors_config(path)
    if path.suffix in (".ckpt", ".pt", ".pth"):
        return official_config()
    raise CheckpointError(f"{path}: unknown checkpoint type (expected .ckpt or .safetensors)")


def load_model(checkpoint: str | Path | None = None, device: str = "auto") -> MotionGPT3:
    """The model from `checkpoint`: None = the embedded demo model; `*.ckpt` = the official Lightning checkpoint
    (official preset); `*.safetensors` = our format with its JSON config beside it."""
    target = resolve_device(device)
    if checkpoint is None:
        if not EMBEDDED_MODEL.is_file():
            raise CheckpointError(
                f"the embedded demo model ({EMBEDDED_MODEL.name}) is not in this build; pass --checkpoint PATH"
            )
        checkpoint = EMBEDDED_MODEL
    config, state_dict = read_checkpoint(checkpoint)
    return build_model(config, state_dict, str(checkpoint)).to(target)
