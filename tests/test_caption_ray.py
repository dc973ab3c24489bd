"""`motiongpt3 caption --ray`: on a local Ray instance with two workers (CPUs) the table equals the one-machine run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from reference import cmu_clip

from backend.cli import main
from backend.model.checkpoint import save_safetensors
from backend.model.config import tiny_config
from backend.model.loading import build_model

ray = pytest.importorskip("ray", reason="the [ray] extra (pip install '.[ray]') is not installed")
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(REPO)}})  # fmt: skip
    yield
    ray.shutdown()


def test_ray_run_equals_the_local_run(local_ray, cmu_walk, tmp_path):
    torch.manual_seed(0)
    checkpoint = tmp_path / "tiny.safetensors"
    model = build_model(tiny_config(), None, "random")
    save_safetensors(model, model.config, checkpoint)
    folder = tmp_path / "library"
    folder.mkdir()
    for trial in ("131_01", "135_04", "94_13"):  # 8 s, 11 s (two windows), 17 s (two or three)
        (folder / f"{trial}.bvh.gz").write_bytes(cmu_clip(trial).read_bytes())
    np.save(folder / "walk.npy", cmu_walk[0][:80])
    (folder / "broken.bvh").write_text("HIERARCHY\nROOT x\n{\n")
    common = [str(folder), "--checkpoint", str(checkpoint), "--batch", "4"]
    assert main(["caption", *common, "-o", str(tmp_path / "local.csv"), "--jobs", "0"]) == 1
    assert main(["caption", *common, "-o", str(tmp_path / "ray.csv"), "--ray", "auto", "--jobs", "1"]) == 1
    local = (tmp_path / "local.csv").read_text()
    assert (tmp_path / "ray.csv").read_text() == local
    lines = local.splitlines()
    assert len(lines) > 1 + 5  # a header, then more rows than files: the longer clips have several windows
    assert sum(1 for line in lines if line.endswith("no MOTION section")) == 1
