"""`motiongpt3 train`: run one training stage on a HumanML3D-layout folder."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def cmd_train(args: argparse.Namespace) -> int:
    from .trainer import TrainConfig, Trainer

    cfg = TrainConfig(
        stage=args.stage,
        data=args.data,
        out=args.out if args.out is not None else Path("runs") / f"stage_{args.stage}",
        preset=args.preset,
        init=args.init,
        gpt2=args.gpt2,
        steps=args.steps,
        batch_size=args.batch_size,
        accumulate=args.accumulate,
        seed=args.seed,
        save_every=args.save_every,
        workers=args.workers,
        device=args.device,
        resume=args.resume,
        lr_scale=args.lr_scale,
        train_text=args.train_text,
        posterior_mean_latents=args.posterior_mean,
        kl_weight=args.kl_weight,
        posterior_noise=args.posterior_noise,
        joints_weight=args.joints_weight,
        root_weight=args.root_weight,
        limb_weight=args.limb_weight,
        progress=not args.no_progress,
    )
    trainer = Trainer(cfg)
    try:
        if trainer.dist.is_main:
            start = f"resuming {trainer.resumed_from} at step {trainer.step}" if trainer.resumed_from else "starting"
            print(
                f"stage {trainer.stage.name} ({trainer.stage.description}); preset {trainer.config.name}; "
                f"{len(trainer.dataset.clips)} clips, {len(trainer.dataset)} items per epoch; {start}",
                file=sys.stderr,
            )
        trainer.run()
    finally:
        trainer.close()
    if trainer.dist.is_main:
        print(f"wrote {cfg.out / 'model.safetensors'} (next stage: --init {cfg.out / 'model.safetensors'})")
    return 0


def add_train_command(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register `train` on the `motiongpt3` sub-command parser."""
    train = commands.add_parser(
        "train",
        help="train one stage (vae, 1, 2, 2b, 3) on HumanML3D-layout data",
        description=(
            "Train one MotionGPT3 stage. Chain: vae -> 1 -> 2 -> [2b] -> 3, each started with "
            "--init PREVIOUS_OUT/model.safetensors. Multi-GPU: torchrun --nproc_per_node N -m backend.cli train ..."
        ),
    )
    # Stage names are checked by `stages.get_stage` (importing it here would load torch for every command).
    stages_help = "which stage to train: vae, 1, 2, 2b, 2c (captions), 2d (text -> motion + captions) or 3"
    train.add_argument("--stage", required=True, help=stages_help)
    train.add_argument("--data", type=Path, required=True, help="HumanML3D-layout folder (new_joint_vecs, texts, ...)")
    train.add_argument("--preset", choices=["demo", "official", "tiny"], default=None, help="model size (default demo)")
    train.add_argument(
        "--init", type=Path, default=None, help="start from this .safetensors (strict) or official .ckpt"
    )
    train.add_argument("--gpt2", type=Path, default=None, help="GPT-2 weights (transformers) for the text branch")
    train.add_argument("--out", type=Path, default=None, help="output folder (default runs/stage_STAGE)")
    train.add_argument("--steps", type=_positive, default=1000, help="optimizer steps (default 1000)")
    train.add_argument("--batch-size", type=_positive, default=32, help="clips per process and micro-batch")
    train.add_argument("--accumulate", type=_positive, default=1, help="micro-batches per optimizer step")
    train.add_argument("--seed", type=int, default=1234)
    train.add_argument("--save-every", type=_positive, default=500, help="steps between checkpoints")
    train.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")
    train.add_argument("--device", default="auto", help="auto, cpu, cuda")
    train.add_argument("--lr-scale", type=float, default=1.0, help="multiply every learning rate")
    train.add_argument("--train-text", action="store_true", help="also train the text branch in stages 1/2")
    train.add_argument(
        "--posterior-mean", action="store_true", help="LM stages: VAE posterior means as latents (default: samples)"
    )
    train.add_argument("--kl-weight", type=float, default=None, help="VAE stage: KL weight (default 1e-4)")
    train.add_argument(
        "--posterior-noise",
        type=float,
        default=None,
        help="VAE stage: scale of the posterior noise, z = mu + scale*sigma*eps (default 1; 0 = the mean)",
    )
    train.add_argument(
        "--joints-weight", type=float, default=None, help="VAE stage: weight of the joint-position loss (default 0.5)"
    )
    train.add_argument(
        "--root-weight", type=float, default=None, help="VAE stage: weight of the root-motion loss (default 0)"
    )
    train.add_argument(
        "--limb-weight",
        type=float,
        default=None,
        help="VAE stage: weight of the loss on the knees', ankles', feet's, elbows' and wrists' positions and "
        "velocities (default 0)",
    )
    train.add_argument("--resume", action="store_true", help="continue exactly from OUT's latest checkpoint")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.set_defaults(run=cmd_train)
    return train
