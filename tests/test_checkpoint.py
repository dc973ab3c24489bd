"""Official checkpoint key map against the spec's state-dict listing; safe loading; our safetensors format."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from lightning_fakes import DictConfig, Hostile
from reference import STATE_DICT_TSV, require

from backend.model.checkpoint import (
    CheckpointError,
    load_state_dict_strict,
    load_torch_file,
    map_official_key,
    read_official_checkpoint,
    save_safetensors,
)
from backend.model.config import official_config, tiny_config
from backend.model.loading import build_model, load_model
from backend.model.motiongpt3 import MotionGPT3

LISTING = STATE_DICT_TSV
OFFICIAL_PARAMETERS = 256_279_047  # MOTIONGPT3_SPEC.md §1 (vae + lm, unique)


def _listing() -> list[tuple[str, tuple[int, ...]]]:
    rows = require(LISTING).read_text().splitlines()[1:]
    out = []
    for row in rows:
        key, shape, _ = row.split("\t")
        out.append((key, tuple(int(n) for n in shape.strip("[]").split(",") if n.strip())))
    return out


@pytest.fixture(scope="module")
def official_meta_model() -> MotionGPT3:
    with torch.device("meta"):
        return MotionGPT3(official_config())


def _fake_official_checkpoint(path: Path, extra: dict | None = None, mutate=None) -> dict[str, float]:
    """A Lightning-format file with every listed key at its listed shape; each tensor holds its row number
    (stored as a 1-element storage expanded to the shape, so the file stays small)."""
    state, value_of, embedding = {}, {}, None
    for row, (key, shape) in enumerate(_listing()):
        if key.endswith(("lm_head.weight", "pre_processors.0.weight", "post_processors.0.weight")):
            state[key] = embedding  # aliases of the text embedding: the very same tensor
            continue
        tensor = torch.full((1,), float(row)).expand(shape) if shape else torch.tensor(float(row))
        state[key] = tensor
        value_of[key] = float(row)
        if key == "lm.language_model.transformer.wte.weight":
            embedding = tensor
    if mutate is not None:
        mutate(state)
    checkpoint = {"state_dict": state, "epoch": 299, "pytorch-lightning_version": "2.0.0"}
    checkpoint.update(extra or {})
    torch.save(checkpoint, path)
    return value_of


def test_parameter_count_matches_the_spec(official_meta_model):
    unique = {id(p): p.numel() for p in official_meta_model.parameters()}
    assert sum(unique.values()) == OFFICIAL_PARAMETERS


def test_every_listed_key_maps_and_fills_the_official_model(official_meta_model, tmp_path):
    path = tmp_path / "motiongpt3.ckpt"
    value_of = _fake_official_checkpoint(path, extra={"hyper_parameters": {"cfg": DictConfig({"lr": 1e-4})}})
    ours = read_official_checkpoint(path)
    expected = official_meta_model.state_dict()
    assert sorted(ours) == sorted(expected)  # 0 missing, 0 unexpected
    for key, value in expected.items():
        assert tuple(ours[key].shape) == tuple(value.shape), key
    # Every tensor came from the listed key of the same name (modulo prefix): no swaps.
    for official, row_value in value_of.items():
        mapped = map_official_key(official)
        if mapped is not None:
            assert float(ours[mapped].reshape(-1)[0]) == row_value, official
    dropped = [k for k, _ in _listing() if map_official_key(k) is None]
    assert all(k.startswith(("metrics.", "_losses.")) or "processors.0" in k or "lm_head" in k for k in dropped)
    assert len(dropped) == 84 + 12 + 3  # evaluator copies, loss buffers, embedding aliases


def test_a_shape_mismatch_names_the_key(tmp_path):
    model = build_model(tiny_config(), None, "random")
    state = {k: v.clone() for k, v in model.state_dict().items()}
    state["vae.final_layer.weight"] = torch.zeros(5, 5)
    with pytest.raises(CheckpointError, match=r"vae\.final_layer\.weight has shape \(5, 5\)"):
        load_state_dict_strict(model, state, "test")
    del state["vae.final_layer.weight"]
    with pytest.raises(CheckpointError, match="1 missing keys"):
        load_state_dict_strict(model, state, "test")


def test_unknown_official_key_is_an_error():
    with pytest.raises(CheckpointError, match="no mapping"):
        map_official_key("lm.something_new.weight")


def test_pickled_config_objects_load_as_inert_stand_ins(tmp_path):
    path = tmp_path / "with_config.ckpt"
    torch.save({"state_dict": {"w": torch.ones(2)}, "hyper_parameters": {"cfg": DictConfig({"lr": 1e-4})}}, path)
    loaded = load_torch_file(path)
    assert torch.equal(loaded["state_dict"]["w"], torch.ones(2))
    stand_in = loaded["hyper_parameters"]["cfg"]
    assert type(stand_in).__name__ == "DictConfig" and not isinstance(stand_in, DictConfig)


def test_pickled_payloads_are_never_executed(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "hostile.ckpt"
    torch.save({"state_dict": {"w": torch.ones(2)}, "hyper_parameters": {"x": Hostile(str(marker))}}, path)
    with pytest.raises(CheckpointError, match="cannot be loaded safely"):
        load_torch_file(path)
    assert not marker.exists()


def test_nested_state_dict_variant_loads(tmp_path):
    path = tmp_path / "nested.ckpt"
    torch.save({"state_dict": {"state_dict": {"vae.global_motion_token": torch.ones(2, 256)}}}, path)
    assert read_official_checkpoint(path)["vae.global_motion_token"].shape == (2, 256)


def test_garbage_file_is_a_clear_error(tmp_path):
    path = tmp_path / "broken.ckpt"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match=r"broken\.ckpt"):
        read_official_checkpoint(path)


def test_safetensors_round_trip_gives_the_same_model(tmp_path, cmu_walk):
    torch.manual_seed(3)
    model = build_model(tiny_config(), None, "random")
    save_safetensors(model, model.config, tmp_path / "tiny.safetensors")
    assert (tmp_path / "tiny.json").is_file()
    loaded = load_model(tmp_path / "tiny.safetensors", device="cpu")
    assert loaded.config == model.config
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    features = cmu_walk[0][:40]
    np.testing.assert_allclose(loaded.encode_motion(features), model.encode_motion(features), atol=1e-6)


def test_safetensors_without_config_is_a_clear_error(tmp_path):
    model = build_model(tiny_config(), None, "random")
    save_safetensors(model, model.config, tmp_path / "m.safetensors")
    (tmp_path / "m.json").unlink()
    with pytest.raises(CheckpointError, match=r"config m\.json is missing"):
        load_model(tmp_path / "m.safetensors", device="cpu")
