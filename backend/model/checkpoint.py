"""Checkpoints: the official Lightning `.ckpt` through an explicit key map, and our safetensors + JSON format.

Nothing here executes pickled code: Lightning files are read with `torch.load(weights_only=True)`; pickled
config objects they may carry (Lightning `hyper_parameters`, OmegaConf) are rebuilt as inert stand-ins.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .config import MotionGPT3Config
from .mot_gpt2 import TEXT_EMBEDDING_ALIASES as BACKBONE_ALIASES

# Official key prefix -> our prefix (MOTIONGPT3_SPEC.md §8.2-8.4).
_PREFIX_MAP = (
    ("vae.", "vae."),
    ("lm.language_model.", "lm."),
    ("lm.motion_und_head.layers.", "motion_und_head."),
    ("lm.diffloss.", "diffloss."),
)
_EXACT_MAP = {"lm.fake_latent": "fake_latent"}
# Extra names of the tied text embedding `lm.language_model.transformer.wte.weight` (the same tensor).
TEXT_EMBEDDING_ALIASES = tuple("lm.language_model." + alias for alias in BACKBONE_ALIASES)
_DROPPED_PREFIXES = ("metrics.", "_losses.")


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or does not fit the model."""


def map_official_key(key: str) -> str | None:
    """Our parameter name for an official state-dict key; None for keys we drop (evaluators, loss buffers,
    aliases of the text embedding). Raises CheckpointError for a key the map does not know."""
    if key.startswith(_DROPPED_PREFIXES) or "Metrics" in key or key in TEXT_EMBEDDING_ALIASES:
        return None
    if key in _EXACT_MAP:
        return _EXACT_MAP[key]
    for official, ours in _PREFIX_MAP:
        if key.startswith(official):
            return ours + key[len(official) :]
    raise CheckpointError(f"official checkpoint: no mapping for key {key!r}")


def official_to_ours(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename an official state dict to our module names (aliases checked against the embedding, then dropped)."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        mapped = map_official_key(key)
        if mapped is not None:
            out[mapped] = value
    embedding = state_dict.get("lm.language_model.transformer.wte.weight")
    for alias in TEXT_EMBEDDING_ALIASES:
        if alias in state_dict and embedding is not None and state_dict[alias].shape != embedding.shape:
            raise CheckpointError(f"{alias}: shape {tuple(state_dict[alias].shape)} differs from the text embedding")
    return out


def extract_state_dict(obj: Any) -> dict[str, torch.Tensor]:
    """The tensor dict of a loaded file: `ckpt['state_dict']['state_dict']`, `ckpt['state_dict']` or flat."""
    for _ in range(3):
        if isinstance(obj, Mapping) and "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
            obj = obj["state_dict"]
        else:
            break
    if not isinstance(obj, Mapping) or not obj:
        raise CheckpointError("checkpoint holds no state dict")
    tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise CheckpointError("checkpoint's state dict holds no tensors")
    return tensors


class _InertStandIn:
    """Takes the place of any pickled class or function the weights-only loader does not know: it records
    its arguments and state and does nothing else."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args, self.kwargs = args, kwargs

    def __call__(self, *args: Any, **kwargs: Any) -> _InertStandIn:
        return _InertStandIn(*args, **kwargs)

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __setitem__(self, key: Any, value: Any) -> None:  # dict-like BUILD/SETITEM opcodes
        self.__dict__.setdefault("items", {})[key] = value

    def append(self, value: Any) -> None:  # list-like APPEND opcodes
        self.__dict__.setdefault("values", []).append(value)

    def extend(self, values: Any) -> None:
        self.__dict__.setdefault("values", []).extend(values)


def _stand_in(name: str) -> type:
    return type(name.rsplit(".", 1)[-1], (_InertStandIn,), {"__module__": "inert." + name.rsplit(".", 1)[0]})


def load_torch_file(path: str | Path) -> Any:
    """`torch.load(weights_only=True)`; pickled non-tensor globals become inert stand-ins (never executed)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
    except Exception as error:  # not a torch zip file, truncated, ...
        raise CheckpointError(f"{path}: not a readable torch checkpoint ({error})") from None
    stand_ins = [(_stand_in(name), name) for name in unsafe]
    try:
        with torch.serialization.safe_globals(stand_ins):
            return torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as error:
        lines = str(error).splitlines() or [type(error).__name__]
        reason = next((line for line in lines if "GLOBAL" in line), lines[0])
        raise CheckpointError(f"{path}: cannot be loaded safely ({reason.strip()})") from None


def load_state_dict_strict(model: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str) -> None:
    """Load with 0 missing / 0 unexpected keys and equal shapes; otherwise name the first offending key."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    if missing or unexpected:
        raise CheckpointError(
            f"{source}: {len(missing)} missing keys (first {missing[:1]}), "
            f"{len(unexpected)} unexpected keys (first {unexpected[:1]})"
        )
    for key, value in expected.items():
        if tuple(state_dict[key].shape) != tuple(value.shape):
            raise CheckpointError(
                f"{source}: {key} has shape {tuple(state_dict[key].shape)}, the model expects {tuple(value.shape)}"
            )
    model.load_state_dict(dict(state_dict), strict=True)


def read_official_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """The official Lightning checkpoint's weights under our names."""
    return official_to_ours(extract_state_dict(load_torch_file(path)))


def config_path_for(weights: str | Path) -> Path:
    """The JSON config that sits beside a safetensors file: `model.safetensors` -> `model.json`."""
    return Path(weights).with_suffix(".json")


def save_safetensors(model: nn.Module, config: MotionGPT3Config, path: str | Path) -> Path:
    """Write `path` (safetensors, contiguous CPU tensors) and its JSON config beside it; returns the config path."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    save_file(tensors, str(path), metadata={"format": "motiongpt3-blender", "preset": config.name})
    config_path = config_path_for(path)
    config_path.write_text(json.dumps(config.to_dict(), indent=2) + "\n", encoding="utf-8")
    return config_path


def read_safetensors(path: str | Path) -> tuple[MotionGPT3Config, dict[str, torch.Tensor]]:
    """Our checkpoint format: (config from the JSON beside it, tensors)."""
    from safetensors.torch import load_file

    return read_safetensors_config(path), load_file(str(path))


def read_safetensors_config(path: str | Path) -> MotionGPT3Config:
    """The config of our checkpoint format (the JSON beside the weights), without reading the weights."""
    path = Path(path)
    config_path = config_path_for(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    if not config_path.is_file():
        raise CheckpointError(f"{path}: its config {config_path.name} is missing beside it")
    try:
        return MotionGPT3Config.from_dict(json.loads(config_path.read_text(encoding="utf-8")))
    except (ValueError, TypeError) as error:
        raise CheckpointError(f"{config_path}: {error}") from None
