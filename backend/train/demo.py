"""`motiongpt3 train-demo`: build the demo data (synthetic set + CMU windows), train the `demo` preset through
the pipeline's stages, and install the result as the embedded model. One command reproduces the shipped model."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .trainer import TrainConfig

# Heavy imports (torch, the generators) happen inside the functions: `motiongpt3 --help` must stay fast.


@dataclass(frozen=True)
class DemoStage:
    """One run of the trainer in the recipe."""

    stage: str
    steps: int
    folder: str
    lr_scale: float = 1.0
    kl_weight: float | None = None
    posterior_noise: float | None = None
    joints_weight: float | None = None
    root_weight: float | None = None
    limb_weight: float | None = None


# The shipped model's stages (`train-demo`, the default recipe).
SHIPPED_STAGES: tuple[DemoStage, ...] = (
    # VAE: a short run must still make latents that carry the whole clip, including brief or small movements (a
    # jump, a wave). Measured on this data: with MLD's posterior noise the learned σ stays near 1 and drowns all but
    # a few latent dims, so only walking distance and squats survive the round trip; with 10x the stage lr, a tenth
    # of the noise, a 100x smaller KL weight and 6x the weight on joint positions, waves come through by ~1200 steps.
    DemoStage("vae", 3000, "stage_vae", lr_scale=10.0, kl_weight=1e-6, posterior_noise=0.1, joints_weight=3.0),
    # The root's turn rate, steps and height are 4 of 263 dims of the feature loss, so a VAE drops a sidestep's
    # sideways travel or a spin's turn almost for free; weighing them (dims 0..3, x5) in a second cycle won back
    # sidesteps, spins and turns on the paraphrase suite's VAE ceiling (70 -> 79 of 124 prompts).
    DemoStage(
        "vae",
        1000,
        "stage_vae_root",
        lr_scale=10.0,
        kl_weight=1e-6,
        posterior_noise=0.1,
        joints_weight=3.0,
        root_weight=5.0,
    ),
    # Text -> motion only, in three cosine cycles: 1,500 steps alone were badly under-trained (31 of the suite's
    # 146 prompts); +1,000 gave 51, +2,000 more 56.
    DemoStage("1", 1500, "stage_1"),
    DemoStage("1", 1000, "stage_1_more"),
    DemoStage("1", 2000, "stage_1_long"),
    # Then all four tasks on the plain prompts, two cycles: the captioning head starts untrained here (text loss
    # 10.9) and the first cycle ends with clipped captions ("a person is"); the second one firms them up.
    DemoStage("2", 1000, "stage_2"),
    DemoStage("2", 1000, "stage_2_more"),
    # Then text -> motion and captions alternating, the loss on the caption tokens only (not the instruction), two
    # cycles: paraphrase suite 49 -> 56 -> 53 of 146 prompts, captions 16 -> 39 -> 45 of 66 synthetic clips and 7 -> 11
    # -> 14 of 28 real ones. Captions alone (stage 2c) reached 41 / 13 but took text -> motion down to 28.
    DemoStage("2d", 1000, "stage_2d"),
    DemoStage("2d", 1000, "stage_2d_more"),
    # Last, one text -> motion cycle (53 -> 60 of 146, captions 45 -> 40; figures on the first families) and one
    # cycle of all four tasks with the instruction masked (2e): no stage after stage 2 trained prediction or
    # in-betweening. On every family, 2e against a 2d cycle there: prediction ADE 1.441 -> 0.747 m, FID 0.444 ->
    # 0.120; in-betweening ADE 0.438 -> 0.326 m; suite 78 -> 73 of 146, captions 50 -> 51 / 66, 17 / 28 both.
    DemoStage("1", 1000, "stage_1_again"),
    DemoStage("2e", 1000, "stage_2e_last"),
)


@dataclass(frozen=True)
class DemoRecipe:
    """Everything that determines the demo model."""

    seed: int = 2026
    synthetic_clips: int = 3000
    stages: tuple[DemoStage, ...] = SHIPPED_STAGES
    # Which synthetic action families the data holds: "all" (`backend.train.synthetic.actions.ALL_FAMILIES`: bow,
    # punch, throw, hop, crawl, climb, jog and sprint besides the first set) or "default" (the first set only, what
    # the models installed before 2026-12-05's third install were trained on). On the paraphrase suite, same stages:
    # text -> motion 60 -> 73 of 146 prompts, captions 45 -> 54 of 66 synthetic clips and 15 -> 17 of 28 real ones.
    families: str = "all"
    batch_size: int = 32
    # Sampling CFG scale stored in the model's config. Measured on this model: at the paper's 7.5 the small model
    # over-saturates and jumps vanish (pelvis lift 1-6 cm for "a person jumps"); at 3.0 they come through.
    guidance_scale: float = 3.0
    # Default ancestral sampling steps stored in the model's config. Measured on this model (300 test clips): 25 steps
    # score as well as 100 (T2M R-precision top 3 0.802 vs 0.764, FID 0.153 vs 0.144; the semantic checks pass on
    # seeds 7, 1, 2 at 20-100 steps) in a quarter of the diffusion time: ~40 ms instead of ~110 ms end to end on CPU.
    sampling_steps: int = 25


def build_demo_data(folder: Path, cmu_folder: Path, recipe: DemoRecipe) -> Path:
    """Synthetic clips (train/val/test) plus the CMU windows (train only) in the HumanML3D layout."""
    from .cmu import cmu_windows
    from .synthetic import ALL_FAMILIES, DEFAULT_FAMILIES, generate_synthetic_set, write_humanml3d_layout
    from .synthetic.captions import tokens

    families = {"default": DEFAULT_FAMILIES, "all": ALL_FAMILIES}.get(recipe.families)
    if families is None:
        raise ValueError(f"DemoRecipe.families: {recipe.families!r} is not 'default' or 'all'")
    clips = generate_synthetic_set(recipe.seed, recipe.synthetic_clips, families=families)
    write_humanml3d_layout(clips, folder, seed=recipe.seed)
    windows = cmu_windows(cmu_folder, seed=recipe.seed)
    for window in windows:
        np.save(folder / "new_joint_vecs" / f"{window.name}.npy", window.features.astype(np.float32))
        lines = [f"{c}#{tokens(c)}#0.0#0.0" for c in window.captions]
        (folder / "texts" / f"{window.name}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    with (folder / "train.txt").open("a", encoding="utf-8") as handle:
        handle.write("".join(f"{w.name}\n" for w in windows))
    (folder / DATA_RECIPE).write_text(json.dumps(_data_identity(recipe)) + "\n", encoding="utf-8")
    return folder


DATA_RECIPE = "recipe.json"  # what a built data folder was made from (seed, clip count, families)


def _data_identity(recipe: DemoRecipe) -> dict:
    return {"seed": recipe.seed, "synthetic_clips": recipe.synthetic_clips, "families": recipe.families}


def check_demo_data(folder: Path, recipe: DemoRecipe) -> None:
    """Refuse to train on a data folder built for another recipe (a folder from before the record counts as the
    default families)."""
    record = folder / DATA_RECIPE
    found = json.loads(record.read_text()) if record.is_file() else {**_data_identity(recipe), "families": "default"}
    if found != _data_identity(recipe):
        raise ValueError(
            f"{folder}: data built for {found}, this recipe needs {_data_identity(recipe)}; use another --out"
        )


def _latent_scale(model_path: Path, data: Path, clips: int = 256) -> float:
    """1 / std of the trained VAE's posterior means over training clips (the role of upstream's 0.8457)."""
    import torch

    from backend.model.loading import load_model

    model = load_model(model_path, device="cpu")
    names = (data / "train.txt").read_text().split()[:clips]
    features = [np.load(data / "new_joint_vecs" / f"{n}.npy")[:196] for n in names]
    with torch.no_grad():
        batch, lengths = model.pad_features(features)
        latents = model.encode_latents(batch, lengths)
    return float(1.0 / latents.std())


def _set_config_value(model_path: Path, part: str, key: str, value: float | int) -> None:
    """Set `config[part][key]` in the JSON config beside a model file."""
    config_path = model_path.with_suffix(".json")
    config = json.loads(config_path.read_text())
    config[part][key] = value
    config_path.write_text(json.dumps(config, indent=2) + "\n")


def stage_train_config(
    recipe: DemoRecipe, item: DemoStage, data: Path, out: Path, init: Path | None, **options: Any
) -> TrainConfig:
    """The trainer's settings for one stage of the recipe (`options`: resume, progress), from `init` or, without
    one, from a fresh `demo` preset."""
    from .trainer import TrainConfig

    return TrainConfig(
        stage=item.stage,
        data=data,
        out=out,
        preset="demo" if init is None else None,
        init=init,
        steps=item.steps,
        batch_size=recipe.batch_size,
        seed=recipe.seed,
        save_every=max(item.steps // 4, 1),
        lr_scale=item.lr_scale,
        kl_weight=item.kl_weight,
        posterior_noise=item.posterior_noise,
        joints_weight=item.joints_weight,
        root_weight=item.root_weight,
        limb_weight=item.limb_weight,
        train_text=True,  # the demo preset has no pretrained GPT-2: its text branch learns from our captions
        posterior_mean_latents=True,  # the briefly trained VAE's posterior is wide: its mean carries the clip
        **options,
    )


def train_demo(out: Path, cmu_folder: Path, recipe: DemoRecipe, install: bool = True) -> Path:
    """Run the whole recipe; returns the final model path (and copies it over the embedded model)."""
    from backend.model.loading import EMBEDDED_MODEL

    from .trainer import Trainer

    started = time.time()
    data = out / "data"
    if not (data / "train.txt").is_file():
        print(f"building demo data in {data}", file=sys.stderr)
        build_demo_data(data, cmu_folder, recipe)
    check_demo_data(data, recipe)
    previous: Path | None = None
    for item in recipe.stages:
        stage, stage_out = item.stage, out / item.folder
        config = stage_train_config(
            recipe, item, data, stage_out, previous, resume=(stage_out / "checkpoints" / "LATEST").is_file()
        )
        trainer = Trainer(config)
        try:
            trainer.run()
        finally:
            trainer.close()
        previous = stage_out / "model.safetensors"
        if stage == "vae":
            scale = _latent_scale(previous, data)
            _set_config_value(previous, "vae", "latent_scale", round(scale, 6))
            print(f"latent scale set to {scale:.4f}", file=sys.stderr)
        print(f"stage {stage} done after {(time.time() - started) / 60:.1f} min", file=sys.stderr)
    _set_config_value(previous, "diffusion", "guidance_scale", recipe.guidance_scale)
    _set_config_value(previous, "diffusion", "sampling_steps", recipe.sampling_steps)
    if install:
        install_embedded_model(previous, EMBEDDED_MODEL)
    return previous


def install_embedded_model(source: Path, target: Path) -> None:
    """Copy a trained model to the embedded location with float16 storage (half the size; loading casts back)."""
    from safetensors.torch import load_file, save_file

    tensors = {k: v.half() if v.is_floating_point() else v for k, v in load_file(str(source)).items()}
    target.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(target), metadata={"format": "motiongpt3-blender", "preset": "demo", "storage": "float16"})
    shutil.copyfile(source.with_suffix(".json"), target.with_suffix(".json"))
    print(f"installed {target} ({target.stat().st_size / 1e6:.1f} MB)", file=sys.stderr)


def cmd_train_demo(args: argparse.Namespace) -> int:
    from .cmu import BUNDLED_CMU

    cmu_folder = args.cmu if args.cmu is not None else BUNDLED_CMU
    if not (cmu_folder / "descriptions.tsv").is_file():
        raise FileNotFoundError(f"{cmu_folder}: no descriptions.tsv (expected a CMU clip folder with bvh20/)")
    recipe = DemoRecipe(seed=args.seed)
    print(f"recipe: {json.dumps(asdict(recipe))}", file=sys.stderr)
    train_demo(args.out, cmu_folder, recipe, install=not args.no_install)
    return 0


def add_train_demo_command(commands: argparse._SubParsersAction) -> None:
    """Register `train-demo` on the `motiongpt3` parser."""
    parser = commands.add_parser("train-demo", help="reproduce the embedded demo model (synthetic + CMU data, CPU)")
    parser.add_argument(
        "--cmu",
        type=Path,
        default=None,
        help="a CMU clip folder (descriptions.tsv, bvh20/); default: the clips bundled with the repository",
    )
    parser.add_argument("--out", type=Path, default=Path("runs") / "demo", help="working folder (data, stages)")
    parser.add_argument("--seed", type=int, default=DemoRecipe.seed)
    parser.add_argument("--no-install", action="store_true", help="do not copy the result over the embedded model")
    parser.set_defaults(run=cmd_train_demo)
