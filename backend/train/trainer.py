"""The training loop: data order, accumulation, schedule, logging, atomic checkpoints, exact resume, DDP.

Output folder:
    train_log.csv                       one row per optimizer step (rank 0)
    run.json                            the run's settings
    checkpoints/step_XXXXXXXX/          model.safetensors + model.json + trainer_state.pt
    checkpoints/LATEST                  name of the newest complete checkpoint folder
    model.safetensors, model.json       the final weights (the next stage's `--init`)

Exact resume: the next step after `--resume` computes the same loss as the uninterrupted run (same world size,
batch size and accumulation). Data items are pure functions of (seed, epoch, index) and the per-epoch order comes
from DistributedSampler(seed + epoch), so the data position is just (epoch, batch in epoch). The two random
streams the step uses — the global torch RNG (dropout) and the trainer's generator (VAE posterior samples,
diffusion timesteps/noise, CFG dropout) — are saved per rank in `trainer_state.pt`, together with the optimizer.
That file holds only tensors and plain containers and is read with `torch.load(weights_only=True)`.

DDP: launch with `torchrun --nproc_per_node N -m backend.cli train ...` (gloo on CPU, NCCL on CUDA). Each rank
reads its DistributedSampler shard; rank 0 logs and writes checkpoints.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import shutil
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import distributed as dist
from torch.utils.data import DataLoader, DistributedSampler

from backend.model.checkpoint import (
    CheckpointError,
    config_path_for,
    load_state_dict_strict,
    read_safetensors,
    save_safetensors,
)
from backend.model.config import PRESETS, MotionGPT3Config
from backend.model.loading import read_checkpoint, resolve_device
from backend.model.motiongpt3 import MotionGPT3

from .data import Collate, MotionTextDataset, TrainingBatch
from .prompts import load_templates
from .stages import build_optimizer, configure_trainable, get_stage, set_learning_rate
from .step import TrainingObjective

STATE_FORMAT = 1
METRICS = ("loss", "text", "diff", "recon", "joints", "root", "limbs", "kl", "latent_std")
LOG_COLUMNS = ("step", "epoch", "stage", *METRICS, "lr", "samples_per_s", "seconds")


@dataclass
class TrainConfig:
    """Settings of one training run (the CLI's arguments)."""

    stage: str
    data: Path
    out: Path
    preset: str | None = None  # None: the --init checkpoint's config, else "demo"
    init: Path | None = None  # previous stage's model.safetensors (strict) or an official .ckpt
    gpt2: Path | None = None  # GPT-2 weights (transformers layout) for the text branch
    steps: int = 1000  # optimizer steps in the whole run (the schedule spans them)
    batch_size: int = 32  # per process and micro-batch
    accumulate: int = 1  # micro-batches per optimizer step
    seed: int = 1234
    save_every: int = 500  # optimizer steps between checkpoints (and one at the end)
    keep_checkpoints: int = 2
    workers: int = 0  # DataLoader worker processes
    device: str = "auto"
    resume: bool = False
    lr_scale: float = 1.0
    train_text: bool = False  # unfreeze the text branch in stages 1/2 (presets without pretrained GPT-2)
    posterior_mean_latents: bool = False  # LM stages: VAE posterior means instead of samples as latents
    kl_weight: float | None = None  # VAE stage: override the stage's KL weight
    posterior_noise: float | None = None  # VAE stage: override the stage's posterior noise scale
    joints_weight: float | None = None  # VAE stage: override the weight of the joint-position loss
    root_weight: float | None = None  # VAE stage: override the weight of the root-motion loss
    limb_weight: float | None = None  # VAE stage: override the weight of the limbs' loss
    split: str = "train"
    progress: bool = True


# TrainConfig fields that, when set, replace the stage's own value of the same name.
STAGE_OVERRIDES = ("kl_weight", "posterior_noise", "joints_weight", "root_weight", "limb_weight")


# ----------------------------------------------------------------------------------------- atomic files


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):  # not every platform / file system can fsync a directory
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """`write(tmp)` to a temporary file in the same folder, fsync it, then rename it over `path`.

    Readers see the old file or the complete new one; on any error the temporary file is removed."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(tmp)
        _fsync_file(tmp)
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def save_model_atomic(model: MotionGPT3, config: MotionGPT3Config, path: Path) -> None:
    """`save_safetensors` (weights + JSON config beside them), each file written atomically."""
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")
    tmp_config = config_path_for(tmp)
    try:
        save_safetensors(model, config, tmp)
        _fsync_file(tmp)
        _fsync_file(tmp_config)
        os.replace(tmp_config, config_path_for(path))
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        tmp_config.unlink(missing_ok=True)
        raise


def latest_checkpoint(out: Path) -> Path | None:
    """The newest complete checkpoint folder of a run, or None."""
    pointer = Path(out) / "checkpoints" / "LATEST"
    if not pointer.is_file():
        return None
    folder = pointer.parent / pointer.read_text(encoding="utf-8").strip()
    if not (folder / "model.safetensors").is_file() or not (folder / "trainer_state.pt").is_file():
        raise CheckpointError(f"{pointer} names {folder.name}, which is incomplete")
    return folder


def write_checkpoint(
    out: Path, step: int, model: MotionGPT3, config: MotionGPT3Config, state: dict[str, Any], keep: int = 2
) -> Path:
    """Write `checkpoints/step_N/` (built in a temporary folder, renamed into place), then point LATEST at it
    and drop all but the newest `keep` step folders. An error leaves the previous checkpoint untouched."""
    root = Path(out) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step_{step:08d}"
    tmp = root / f".{final.name}.tmp-{os.getpid()}"
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        save_model_atomic(model, config, tmp / "model.safetensors")
        atomic_write(tmp / "trainer_state.pt", lambda p: torch.save(state, p))
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        _fsync_dir(root)
        atomic_write(root / "LATEST", lambda p: p.write_text(final.name + "\n", encoding="utf-8"))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    folders = sorted(p for p in root.glob("step_*") if p.is_dir())
    for old in folders[: max(len(folders) - max(keep, 1), 0)]:
        if old != final:
            shutil.rmtree(old, ignore_errors=True)
    return final


# ----------------------------------------------------------------------------------------- distributed


@dataclass(frozen=True)
class Distributed:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls, use_cuda: bool) -> Distributed:
        """Join the torchrun process group when WORLD_SIZE > 1 (NCCL on CUDA, gloo on CPU)."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if use_cuda:
            torch.cuda.set_device(local_rank)
        if not dist.is_initialized():
            dist.init_process_group("nccl" if use_cuda else "gloo")
        return cls(dist.get_rank(), dist.get_world_size(), local_rank)


def _stream_seed(seed: int, rank: int, stream: int) -> int:
    return int(np.random.SeedSequence([seed, rank, stream]).generate_state(1, np.uint64)[0]) >> 1


# ----------------------------------------------------------------------------------------- progress/logs


class _Progress:
    """tqdm on stderr when installed, otherwise a line every ~5 % of the run."""

    def __init__(self, total: int, initial: int, label: str, enabled: bool) -> None:
        self.total, self.enabled, self.label = total, enabled, label
        self.bar = None
        if enabled:
            try:
                from tqdm import tqdm

                self.bar = tqdm(total=total, initial=initial, desc=label, file=sys.stderr, dynamic_ncols=True)
            except ImportError:
                pass

    def update(self, row: dict[str, Any]) -> None:
        if not self.enabled:
            return
        shown = {k: f"{row[k]:.4g}" for k in ("loss", "text", "diff", "recon") if _finite(row.get(k))}
        shown["samples/s"] = f"{row['samples_per_s']:.1f}"
        if self.bar is not None:
            self.bar.set_postfix(shown, refresh=False)
            self.bar.update(1)
        elif row["step"] % max(1, self.total // 20) == 0 or row["step"] == self.total:
            text = " ".join(f"{k}={v}" for k, v in shown.items())
            print(f"{self.label}: step {row['step']}/{self.total} {text}", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _finite(value: Any) -> bool:
    return isinstance(value, float) and math.isfinite(value)


class _CsvLog:
    """Append-only CSV of LOG_COLUMNS; on resume, rows after the resumed step are dropped first."""

    def __init__(self, path: Path, resume_step: int | None) -> None:
        self.path = path
        rows: list[dict[str, str]] = []
        if resume_step is not None and path.is_file():
            with open(path, newline="", encoding="utf-8") as handle:
                rows = [r for r in csv.DictReader(handle) if int(r["step"]) <= resume_step]
        self.handle = open(path, "w", newline="", encoding="utf-8")  # kept open for the run
        self.writer = csv.DictWriter(self.handle, fieldnames=LOG_COLUMNS)
        self.writer.writeheader()
        self.writer.writerows(rows)
        self.handle.flush()

    def write(self, row: dict[str, Any]) -> None:
        self.writer.writerow({k: ("" if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()})
        self.handle.flush()

    def close(self) -> None:
        self.handle.close()


def _tensorboard(folder: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except Exception:  # tensorboard is optional
        return None
    return SummaryWriter(str(folder))


# ----------------------------------------------------------------------------------------- trainer


def initial_model(cfg: TrainConfig) -> tuple[MotionGPT3Config, dict[str, torch.Tensor] | None]:
    """The model config and starting weights: from --init (its own config; --preset must agree), else a preset."""
    if cfg.init is None:
        preset = cfg.preset or "demo"
        if preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r} (known: {', '.join(PRESETS)})")
        return PRESETS[preset](), None
    path = Path(cfg.init)
    config, state = read_checkpoint(path)
    if cfg.preset is not None and PRESETS[cfg.preset]() != config:
        raise ValueError(f"--preset {cfg.preset} does not match the config of {path} ({config.name})")
    return config, state


def _load_gpt2(path: Path) -> dict[str, torch.Tensor]:
    if path.is_dir():
        path = path / "model.safetensors"
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    return torch.load(str(path), map_location="cpu", weights_only=True)


class Trainer:
    """One stage's training run. `run()` trains to `cfg.steps` (or to `until`) and returns the logged rows."""

    def __init__(self, cfg: TrainConfig) -> None:
        self.cfg = cfg
        self.stage = replace(get_stage(cfg.stage), posterior_samples=not cfg.posterior_mean_latents)
        overrides = {name: getattr(cfg, name) for name in STAGE_OVERRIDES if getattr(cfg, name) is not None}
        self.stage = replace(self.stage, **overrides)
        if cfg.steps < 1 or cfg.batch_size < 1 or cfg.accumulate < 1:
            raise ValueError("steps, batch size and accumulation must be >= 1")
        device = resolve_device(cfg.device)
        self.dist = Distributed.from_env(device.type == "cuda")
        self.device = torch.device("cuda", self.dist.local_rank) if device.type == "cuda" else device
        self.out = Path(cfg.out)

        torch.manual_seed(cfg.seed)  # identical initial weights on every rank (DDP also broadcasts rank 0's)
        self.config, init_state = initial_model(cfg)
        self.model = MotionGPT3(self.config)
        if init_state is not None:
            load_state_dict_strict(self.model, init_state, str(cfg.init))
        elif self.stage.trains != "vae" and not cfg.resume:
            warnings.warn(f"stage {self.stage.name} without --init: the frozen VAE is untrained", stacklevel=2)
        if cfg.gpt2 is not None:
            self.model.lm.load_gpt2_text_branch(_load_gpt2(Path(cfg.gpt2)))
        self.model.to(self.device)
        self.hooks = configure_trainable(self.model, self.stage, cfg.train_text)
        self.objective = TrainingObjective(self.model, self.stage)
        self.step_module: torch.nn.Module = self.objective  # DDP-wrapped under torchrun
        if self.dist.world_size > 1:
            self.step_module = torch.nn.parallel.DistributedDataParallel(self.objective, find_unused_parameters=True)
        self.optimizer = build_optimizer(self.model, self.stage, cfg.lr_scale)

        subtasks = load_templates(list(self.stage.templates)) if self.stage.templates else None
        holders = self.config.backbone.holders_per_motion
        self.dataset = MotionTextDataset(cfg.data, cfg.split, subtasks, seed=cfg.seed, holders=holders)
        self.dataset.check_stats(self.model.feature_mean.cpu().numpy(), self.model.feature_std.cpu().numpy())
        self.collate = Collate(self.config.max_prompt_tokens, self.stage.mask_prompt)
        self.sampler = DistributedSampler(
            self.dataset,
            num_replicas=self.dist.world_size,
            rank=self.dist.rank,
            shuffle=True,
            seed=cfg.seed,
            drop_last=True,
        )
        if len(self.sampler) < cfg.batch_size:
            raise ValueError(
                f"{cfg.data}: {len(self.sampler)} items per process per epoch, fewer than the batch size "
                f"{cfg.batch_size}"
            )
        self.loader_generator = torch.Generator()  # keeps DataLoader seeding off the global RNG

        self.generator = torch.Generator(device=self.device)
        self.step = self.epoch = self.batch_pos = 0
        self.resumed_from: Path | None = None
        checkpoint = latest_checkpoint(self.out) if cfg.resume else None
        if checkpoint is not None:
            self._restore(checkpoint)
        else:
            torch.manual_seed(_stream_seed(cfg.seed, self.dist.rank, 0))
            self.generator.manual_seed(_stream_seed(cfg.seed, self.dist.rank, 1))

    # ------------------------------------------------------------------------------------- state

    def _rng_state(self) -> dict[str, Any]:
        cuda = torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None
        return {"torch": torch.get_rng_state(), "generator": self.generator.get_state(), "cuda": cuda}

    def state_dict(self) -> dict[str, Any]:
        """Everything but the weights needed to continue exactly (tensors and plain containers only)."""
        rng = [self._rng_state()]
        if self.dist.world_size > 1:
            gathered: list[Any] = [None] * self.dist.world_size
            dist.all_gather_object(gathered, rng[0])
            rng = gathered
        return {
            "format": STATE_FORMAT,
            "stage": self.stage.name,
            "step": self.step,
            "epoch": self.epoch,
            "batch_pos": self.batch_pos,
            "seed": self.cfg.seed,
            "world_size": self.dist.world_size,
            "batch_size": self.cfg.batch_size,
            "accumulate": self.cfg.accumulate,
            "total_steps": self.cfg.steps,
            "optimizer": self.optimizer.state_dict(),
            "rng": rng,
        }

    def _restore(self, folder: Path) -> None:
        state = torch.load(folder / "trainer_state.pt", map_location="cpu", weights_only=True)
        if state.get("format") != STATE_FORMAT or state.get("stage") != self.stage.name:
            raise CheckpointError(f"{folder}: a checkpoint of stage {state.get('stage')!r}, not {self.stage.name!r}")
        for key, ours in (
            ("world_size", self.dist.world_size),
            ("batch_size", self.cfg.batch_size),
            ("accumulate", self.cfg.accumulate),
            ("seed", self.cfg.seed),
        ):
            if state[key] != ours:
                raise CheckpointError(f"{folder}: saved with {key}={state[key]}, this run has {ours}")
        config, weights = read_safetensors(folder / "model.safetensors")
        if config != self.config:
            raise CheckpointError(f"{folder}: model config {config.name} differs from this run's {self.config.name}")
        load_state_dict_strict(self.model, weights, str(folder))
        self.optimizer.load_state_dict(state["optimizer"])
        self.step, self.epoch, self.batch_pos = int(state["step"]), int(state["epoch"]), int(state["batch_pos"])
        rng = state["rng"][self.dist.rank]
        torch.set_rng_state(rng["torch"])
        self.generator.set_state(rng["generator"])
        if rng["cuda"] is not None and self.device.type == "cuda":
            torch.cuda.set_rng_state(rng["cuda"], self.device)
        self.resumed_from = folder

    def save_checkpoint(self) -> Path | None:
        """Checkpoint now (collective under DDP; rank 0 writes). Returns the folder on rank 0."""
        state = self.state_dict()
        folder = None
        if self.dist.is_main:
            folder = write_checkpoint(
                self.out, self.step, self.model, self.config, state, keep=self.cfg.keep_checkpoints
            )
        if self.dist.world_size > 1:
            dist.barrier()
        return folder

    # ------------------------------------------------------------------------------------- data

    def _epoch_batches(self, epoch: int) -> list[list[tuple[int, int]]]:
        self.sampler.set_epoch(epoch)
        order = list(self.sampler)
        size = self.cfg.batch_size
        return [[(epoch, i) for i in order[k : k + size]] for k in range(0, len(order) - size + 1, size)]

    def _batches(self) -> Iterator[TrainingBatch]:
        """Endless batches from the current (epoch, batch_pos), advancing them as batches are consumed."""
        while True:
            remaining = self._epoch_batches(self.epoch)[self.batch_pos :]
            if remaining:
                loader = DataLoader(
                    self.dataset,
                    batch_sampler=remaining,
                    collate_fn=self.collate,
                    num_workers=self.cfg.workers,
                    generator=self.loader_generator,
                )
                for batch in loader:
                    self.batch_pos += 1
                    yield batch
            self.epoch += 1
            self.batch_pos = 0

    # ------------------------------------------------------------------------------------- loop

    def _reduce(self, values: dict[str, float]) -> dict[str, float]:
        if self.dist.world_size == 1:
            return values
        vector = torch.tensor([values[k] for k in METRICS], dtype=torch.float64, device=self.device)
        dist.all_reduce(vector)
        return {k: float(v) / self.dist.world_size for k, v in zip(METRICS, vector.tolist(), strict=True)}

    def train_step(self, batches: Iterator[TrainingBatch]) -> dict[str, Any]:
        """One optimizer step over `accumulate` micro-batches; returns its log row."""
        start = time.perf_counter()
        set_learning_rate(self.optimizer, self.stage, self.step, self.cfg.steps)
        self.objective.train()
        self.optimizer.zero_grad(set_to_none=True)
        sums = dict.fromkeys(METRICS, 0.0)
        samples = 0
        accumulate = self.cfg.accumulate
        for micro in range(accumulate):
            batch = next(batches)
            last = micro == accumulate - 1
            sync = contextlib.nullcontext() if last or self.dist.world_size == 1 else self.step_module.no_sync()
            with sync:
                losses = self.step_module(batch, self.generator)
                (losses["loss"] / accumulate).backward()
            for key in METRICS:
                sums[key] += float(losses[key].detach()) / accumulate if key in losses else math.nan
            samples += len(batch)
        self.optimizer.step()
        self.step += 1
        metrics = self._reduce(sums)
        seconds = time.perf_counter() - start
        return {
            "step": self.step,
            "epoch": self.epoch,
            "stage": self.stage.name,
            **metrics,
            "lr": self.optimizer.param_groups[-1]["lr"],
            "samples_per_s": samples * self.dist.world_size / seconds,
            "seconds": seconds,
        }

    def run(self, until: int | None = None) -> list[dict[str, Any]]:
        """Train until `cfg.steps` (or step `until`); checkpoint every `save_every` steps and at the end."""
        cfg, main = self.cfg, self.dist.is_main
        stop = cfg.steps if until is None else min(until, cfg.steps)
        history: list[dict[str, Any]] = []
        if main:
            self.out.mkdir(parents=True, exist_ok=True)
            settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()}
            atomic_write(self.out / "run.json", lambda p: p.write_text(json.dumps(settings, indent=2) + "\n"))
        log = _CsvLog(self.out / "train_log.csv", self.step if cfg.resume else None) if main else None
        board = _tensorboard(self.out / "tensorboard") if main else None
        progress = _Progress(cfg.steps, self.step, f"stage {self.stage.name}", cfg.progress and main)
        batches = self._batches()
        try:
            while self.step < stop:
                row = self.train_step(batches)
                history.append(row)
                if log is not None:
                    log.write(row)
                if board is not None:
                    for key in (*METRICS, "lr", "samples_per_s"):
                        if _finite(row[key]):
                            board.add_scalar(f"{self.stage.name}/{key}", row[key], row["step"])
                progress.update(row)
                if (cfg.save_every > 0 and self.step % cfg.save_every == 0) or self.step == cfg.steps:
                    self.save_checkpoint()
        finally:
            batches.close()
            progress.close()
            if log is not None:
                log.close()
            if board is not None:
                board.close()
        if self.step >= cfg.steps and main:
            save_model_atomic(self.model, self.config, self.out / "model.safetensors")
        return history

    def close(self) -> None:
        """Leave the process group (call once, after the last run)."""
        for handle in self.hooks:
            handle.remove()
        if self.dist.world_size > 1 and dist.is_initialized():
            dist.destroy_process_group()
