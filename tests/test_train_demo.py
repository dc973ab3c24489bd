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


@pytest.fixture
def tiny_candidate(tiny_recipe, monkeypatch: pytest.MonkeyPatch) -> tuple[demo.DemoStage, ...]:
    """The candidate recipe's stages at a few steps each (its data: 60 synthetic clips of every family)."""
    real_replace = dataclasses.replace

    def with_more_clips(recipe, **changes):  # enough clips for every extra family to show up
        return real_replace(recipe, **changes, synthetic_clips=60)

    monkeypatch.setattr(demo, "replace", with_more_clips)
    return demo.DemoRecipe().stages


def test_the_candidate_recipe_trains_every_family_and_keeps_its_data_apart(
    tiny_candidate, tmp_path: Path, one_thread, capsys: pytest.CaptureFixture[str]
) -> None:
    from backend.eval.paraphrase.caption_family import caption_families

    shipped = demo.demo_recipe("shipped")
    assert shipped.families == "default" and [s.folder for s in shipped.stages] == [
        "stage_vae", "stage_vae_root", "stage_1", "stage_1_more", "stage_1_long", "stage_2", "stage_2_more",
        "stage_2d", "stage_2d_more", "stage_1_again", "stage_2e_last",
    ]  # fmt: skip
    assert demo.demo_recipe("candidate").stages == shipped.stages
    out = tmp_path / "candidate"
    assert main(["train-demo", "--recipe", "candidate", "--out", str(out), "--no-install"]) == 0
    for stage in tiny_candidate:
        assert (out / stage.folder / "model.safetensors").is_file(), stage.folder
    data = out / "data"
    named: set[str] = set()
    for name in (data / "train.txt").read_text().split():
        if not name.startswith("cmu_"):
            for line in (data / "texts" / f"{name}.txt").read_text().splitlines():
                named.update(caption_families(line.split("#")[0]))
    # the captions an independent reader (the suite's caption classifier) finds in the candidate's synthetic data
    assert {"bow", "punch", "throw", "hop", "crawl", "climb"} <= named, sorted(named)
    assert json.loads((data / demo.DATA_RECIPE).read_text())["families"] == "all"
    # the shipped recipe refuses that data folder instead of training on the wrong clips
    capsys.readouterr()
    assert main(["train-demo", "--out", str(out), "--no-install"]) == 2
    error = capsys.readouterr().err
    assert "'families': 'all'" in error and "use another --out" in error
