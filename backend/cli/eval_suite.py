"""`motiongpt3 eval-suite`: the paraphrase suite (text-to-motion checks) and the caption-family checks on held-out
synthetic clips (made here with the synthetic generator, at seeds the training set does not use) and real clips."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

# Held-out synthetic clips for the caption checks: one planned action per clip, several variants per family.
# make_clip draws from its own random stream ([seed, 1_000_003]), apart from the training set's ([seed, index]).
SYNTHETIC_SEED = 17_017
_HOPS = (("left", "in_place"), ("right", "forward"), ("right", "in_place"))  # (side, direction)
SYNTHETIC_PLANS: dict[str, list[tuple[str, dict]]] = {
    "walk": [("walk", {"direction": "forward", "pace": p}) for p in ("slow", "normal", "fast")],
    "walk_backward": [("walk", {"direction": "backward"})] * 3,
    "sidestep": [("walk", {"direction": d}) for d in ("left", "right", "left")],
    "run": [("run", {})] * 3,
    "turn": [("turn", {"direction": d, "degrees": a}) for d, a in (("left", 90), ("right", 90), ("left", 180))],
    "spin": [("spin", {"direction": d}) for d in ("left", "right", "right")],
    "curve_walk": [("curve_walk", {"direction": d}) for d in ("left", "right", "left")],
    "crouch_walk": [("crouch_walk", {})] * 3,
    "idle": [("idle", {})] * 3,
    "wave": [("wave", {"hand": h}) for h in ("left", "right", "right")],
    "raise_arms": [("raise_arms", {"hand": h, "style": "up"}) for h in ("left", "right", "both")],
    "kick": [("kick", {"side": s}) for s in ("left", "right", "left")],
    "squat": [("squat", {})] * 3,
    "sit": [("sit_down", {})] * 3,
    "jump": [("jump", {"direction": d}) for d in ("in_place", "forward", "in_place")],
    # The families the generator learned later (not in the first training set; the embedded model's data has them:
    # `families=ALL_FAMILIES`). Appended after the first ones, so the clips above keep their seeds.
    "bow": [("bow", {"depth": d}) for d in ("slight", "deep", None)],
    "punch": [("punch", {"hand": h}) for h in ("left", "right", "both")],
    "throw": [("throw", {"hand": h, "step": s}) for h, s in (("right", False), ("left", True), ("right", True))],
    "hop": [("hop", {"side": s, "direction": d}) for s, d in _HOPS],
    "crawl": [("crawl", {})] * 3,
    "climb": [("climb", {})] * 3,
    "jog_sprint": [("jog", {}), ("sprint", {}), ("jog", {})],
}
# Plan families whose clips a caption names as another family (a jog or a sprint is running, 1.8 m/s and up).
CAPTION_FAMILY_OF_PLAN = {"jog_sprint": "run"}


def _generator_clips(per_family: int) -> list:
    """(family, action, kwargs, SyntheticClip) for up to `per_family` plans of each SYNTHETIC_PLANS family."""
    from backend.train.synthetic import make_clip

    clips = []
    for family, plans in SYNTHETIC_PLANS.items():
        for k, (action, kwargs) in enumerate(plans[:per_family]):
            name = f"syn_{family}_{k}"
            clip = make_clip(SYNTHETIC_SEED + 97 * len(clips), [(action, kwargs)], name=name, captions_per_clip=1)
            clips.append((family, action, kwargs, clip))
    return clips


def heldout_synthetic_clips(per_family: int = 3) -> list:
    """LabelledClips made with the synthetic generator from SYNTHETIC_PLANS (up to `per_family` per family)."""
    from backend.eval.paraphrase.real_clips import LabelledClip

    return [
        LabelledClip(
            clip.name, CAPTION_FAMILY_OF_PLAN.get(family, family), clip.joints, "synthetic", f"{action} {kwargs}"
        )
        for family, action, kwargs, clip in _generator_clips(per_family)
    ]


def generator_features_by_family(per_family: int = 3) -> dict[str, list]:
    """The same held-out generator clips as features (T, 263), grouped by family (for the VAE ceiling)."""
    grouped: dict[str, list] = {}
    for family, _, _, clip in _generator_clips(per_family):
        grouped.setdefault(family, []).append(clip.features)
    return grouped


def cmd_eval_suite(args: argparse.Namespace) -> None:
    """Run the suite on a model; print per-family and overall pass rates and the failures (and --json)."""
    from backend import load_model
    from backend.eval.paraphrase.real_clips import load_real_clips
    from backend.eval.paraphrase.run import ModelSuiteTasks, format_report, run_captions, run_text_to_motion
    from backend.eval.paraphrase.suite import load_suite
    from backend.model.cpu_threads import configure_threads

    configure_threads(args.threads)
    suite = load_suite(args.suite)
    seeds = None if args.seeds is None else [int(s) for s in args.seeds.split(",") if s.strip()]
    tasks = ModelSuiteTasks(load_model(args.checkpoint, args.device), guidance=args.guidance, steps=args.steps)
    report: dict = {"checkpoint": None if args.checkpoint is None else str(args.checkpoint)}
    if not args.no_text_to_motion:

        def progress(done: int, total: int) -> None:
            print(f"  text-to-motion: seed {done}/{total}", file=sys.stderr, flush=True)

        report["text_to_motion"] = run_text_to_motion(tasks.generate, suite, args.split, seeds, progress)
    if not args.no_captions:
        clips = heldout_synthetic_clips(args.synthetic_per_family) + load_real_clips()
        report["captions"] = run_captions(tasks.caption, clips)
    print(format_report(report))
    if args.vae_ceiling:
        import numpy as np

        from backend.eval.paraphrase.ceiling import format_ceiling, run_vae_ceiling

        model = tasks.model

        def roundtrip(features: np.ndarray) -> np.ndarray:
            return model.decode_motion(model.encode_motion(features), len(features))

        clips_by_family = generator_features_by_family(args.synthetic_per_family)
        report["vae_ceiling"] = run_vae_ceiling(roundtrip, suite, clips_by_family, args.split)
        print(format_ceiling(report["vae_ceiling"]))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {args.json}")


def _seed_list(text: str) -> str:
    try:
        values = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--seeds: expected comma-separated integers, got {text!r}") from None
    if not values or any(v < 0 for v in values):
        raise argparse.ArgumentTypeError(f"--seeds: expected non-negative integers, got {text!r}")
    return text


def add_eval_suite_command(commands: argparse._SubParsersAction) -> None:
    """Register `eval-suite` on the `motiongpt3` parser."""
    run = commands.add_parser(
        "eval-suite", help="paraphrase suite: text-to-motion checks per family, caption families on held-out clips"
    )
    run.add_argument("--checkpoint", type=Path, default=None, help="model (default: the embedded demo model)")
    run.add_argument("--device", default="auto")
    run.add_argument("--suite", type=Path, default=None, help="suite JSON (default: the bundled suite.json)")
    run.add_argument("--split", choices=["all", "dev", "heldout"], default="all", help="which prompts to run")
    run.add_argument("--seeds", type=_seed_list, default=None, help="generation seeds (default: the suite's, 0,1,2)")
    run.add_argument("--guidance", type=float, default=None)
    run.add_argument("--steps", type=int, default=None, help="diffusion steps (default: the model's)")
    run.add_argument("--synthetic-per-family", type=int, default=3, help="held-out synthetic clips per family")
    run.add_argument("--no-text-to-motion", action="store_true", help="skip the text-to-motion prompts")
    run.add_argument("--no-captions", action="store_true", help="skip the caption checks")
    run.add_argument(
        "--vae-ceiling",
        action="store_true",
        help="also run the single-family prompts' checks on generator clips before and after a VAE round trip",
    )
    run.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: 1 on machines with <= 2 cores)")
    run.add_argument("--json", type=Path, default=None, help="also write the full report (every check's value)")
    run.set_defaults(run=cmd_eval_suite)
