"""`motiongpt3 bench train`: seconds per optimizer step of the demo preset's stages on this machine, the trainer as
it is (fused AdamW, cached posterior means) beside the straightforward one (per-tensor AdamW, every motion encoded
every step), same run, same weights, same batches; with the `train-demo` recipe's time estimated from them."""

from __future__ import annotations

import json
import statistics
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

STAGES = ("vae", "1", "2d")  # the recipe's three kinds of step: VAE, text -> motion only, text + captions
SYNTHETIC_CLIPS = 400  # enough for several batches of every task without the minute `train-demo` data takes


def _build_data(folder: Path) -> Path:
    from backend.train.synthetic import generate_synthetic_set, write_humanml3d_layout

    write_humanml3d_layout(generate_synthetic_set(2026, SYNTHETIC_CLIPS), folder, seed=2026)
    return folder


def _trainer(stage: str, data: Path, out: Path, init: Path | None, straightforward: bool) -> Any:
    import torch

    from backend.train.demo import DemoRecipe, stage_train_config
    from backend.train.trainer import Trainer

    recipe = DemoRecipe()
    first = next(item for item in recipe.stages if item.stage == stage)  # that kind's settings in `train-demo`
    config = stage_train_config(recipe, first, data, out, init, progress=False)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*the frozen VAE is untrained")  # same cost as a trained one
        trainer = Trainer(config)
    if straightforward:
        groups = [{k: v for k, v in g.items() if k not in ("fused", "foreach")} for g in trainer.optimizer.param_groups]
        trainer.optimizer = torch.optim.AdamW(
            groups, betas=trainer.stage.betas, weight_decay=trainer.stage.weight_decay, foreach=False
        )
        trainer.objective.latent_cache = None
    return trainer


def time_steps(trainer: Any, steps: int) -> list[float]:
    """Seconds of each of `steps` optimizer steps after one untimed epoch (a 1,000-step stage spends all but its
    first epoch or so in that steady state: the posterior-mean cache warm)."""
    batches = trainer._batches()
    for _ in range(len(trainer._epoch_batches(0))):
        trainer.train_step(batches)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        trainer.train_step(batches)
        times.append(time.perf_counter() - start)
    return times


def recipe_minutes(seconds_per_step: dict[str, float]) -> float:
    """The shipped recipe's training time from per-stage-kind step times (2, 2c, 2e count as 2d's kind)."""
    from backend.train.demo import SHIPPED_STAGES

    kind = {"vae": "vae", "1": "1"}
    return sum(item.steps * seconds_per_step[kind.get(item.stage, "2d")] for item in SHIPPED_STAGES) / 60.0


def run_train_benchmark(checkpoint: Path | None, steps: int, json_path: Path | None) -> dict[str, Any]:
    """Time `steps` steps of each stage kind, both ways, and print seconds per step, the ratio and the recipe."""
    import torch

    print(f"bench train: demo preset, batch 32, {steps} timed steps per stage, {torch.get_num_threads()} threads")
    if checkpoint is None:
        print("  (random weights; give --checkpoint for a trained VAE under the LM stages: same cost)")
    result: dict[str, Any] = {"steps": steps, "threads": torch.get_num_threads(), "stages": {}}
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        data = _build_data(Path(tmp) / "data")
        for stage in STAGES:
            row = {}
            for name, straightforward in (("straightforward", True), ("ours", False)):
                trainer = _trainer(stage, data, Path(tmp) / f"{stage}-{name}", checkpoint, straightforward)
                try:
                    row[name] = statistics.median(time_steps(trainer, steps))
                finally:
                    trainer.close()
            row["speedup"] = row["straightforward"] / row["ours"]
            result["stages"][stage] = row
            print(
                f"  stage {stage:>3}: straightforward {row['straightforward']:.3f} s/step, ours "
                f"{row['ours']:.3f} s/step ({row['speedup']:.2f}x)"
            )
    for name in ("straightforward", "ours"):
        minutes = recipe_minutes({s: r[name] for s, r in result["stages"].items()})
        result[f"recipe_minutes_{name}"] = minutes
        print(f"  train-demo's {name} training time from these: {minutes:.0f} min (goal: 120 min on 2 cores)")
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return result
