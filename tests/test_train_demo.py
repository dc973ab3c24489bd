"""`motiongpt3 train-demo` runs from the repository alone: no data argument, the bundled CMU clips, every stage."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from backend.cli import main
from backend.model.loading import load_model
from backend.train import demo
from backend.train.cmu import BUNDLED_CMU


@pytest.fixture
def tiny_recipe(monkeypatch: pytest.MonkeyPatch):
    """The real recipe's stages and settings at a few steps each, on a few synthetic clips (the CMU windows are all
    read, as in the real run)."""
    real = demo.DemoRecipe()
    stages = tuple(dataclasses.replace(stage, steps=2) for stage in real.stages)

    def tiny(seed: int = real.seed) -> demo.DemoRecipe:
        return dataclasses.replace(real, seed=seed, synthetic_clips=24, stages=stages, batch_size=4)

    tiny.seed = real.seed  # type: ignore[attr-defined]  # read by the parser as the default seed
    monkeypatch.setattr(demo, "DemoRecipe", tiny)
    return real


def test_train_demo_without_arguments_reads_the_bundled_clips(tiny_recipe, tmp_path: Path, one_thread) -> None:
    assert (BUNDLED_CMU / "descriptions.tsv").is_file() and len(list((BUNDLED_CMU / "bvh20").glob("*.bvh.gz"))) == 44
    out = tmp_path / "demo"
    assert main(["train-demo", "--out", str(out), "--no-install"]) == 0
    names = (out / "data" / "train.txt").read_text().split()
    assert sum(name.startswith("cmu_") for name in names) > 150  # every bundled clip cut into windows
    final = out / tiny_recipe.stages[-1].folder / "model.safetensors"
    config = json.loads(final.with_suffix(".json").read_text())
    assert config["diffusion"]["guidance_scale"] == tiny_recipe.guidance_scale
    assert config["diffusion"]["sampling_steps"] == tiny_recipe.sampling_steps
    assert load_model(final, device="cpu").config.name == "demo"


def test_train_demo_names_a_missing_clip_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train-demo", "--cmu", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")]) == 2
    assert "nowhere: no descriptions.tsv" in capsys.readouterr().err


def test_train_demo_trains_every_family_and_refuses_another_recipes_data(
    tiny_recipe, tmp_path: Path, one_thread, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from backend.eval.paraphrase.caption_family import caption_families

    assert tiny_recipe.families == "all" and [s.folder for s in tiny_recipe.stages] == [
        "stage_vae", "stage_vae_root", "stage_1", "stage_1_more", "stage_1_long", "stage_2", "stage_2_more",
        "stage_2d", "stage_2d_more", "stage_1_again", "stage_2e_last",
    ]  # fmt: skip
    out = tmp_path / "demo"
    data = out / "data"
    tiny = demo.DemoRecipe

    def with_more_clips(seed: int = tiny_recipe.seed) -> demo.DemoRecipe:  # enough clips for every family
        return dataclasses.replace(tiny(seed), synthetic_clips=60)

    with_more_clips.seed = tiny_recipe.seed  # type: ignore[attr-defined]  # read by the parser as the default seed
    monkeypatch.setattr(demo, "DemoRecipe", with_more_clips)
    demo.build_demo_data(data, BUNDLED_CMU, demo.DemoRecipe())
    named: set[str] = set()
    for name in (data / "train.txt").read_text().split():
        if not name.startswith("cmu_"):
            for line in (data / "texts" / f"{name}.txt").read_text().splitlines():
                named.update(caption_families(line.split("#")[0]))
    # the captions an independent reader (the suite's caption classifier) finds in the synthetic data
    assert {"bow", "punch", "throw", "hop", "crawl", "climb", "wave", "walk"} <= named, sorted(named)
    # a data folder built for the first families (recorded, or from before the record) is refused, not trained on
    for record in ({"seed": tiny_recipe.seed, "synthetic_clips": 60, "families": "default"}, None):
        (data / demo.DATA_RECIPE).unlink(missing_ok=True)
        if record is not None:
            (data / demo.DATA_RECIPE).write_text(json.dumps(record))
        capsys.readouterr()
        assert main(["train-demo", "--out", str(out), "--no-install"]) == 2
        error = capsys.readouterr().err
        assert "'families': 'default'" in error and "use another --out" in error
    assert not (out / "stage_vae").exists()
