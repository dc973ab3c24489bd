"""`motiongpt3 eval`: the MotionGPT3 evaluation protocol on a HumanML3D-layout folder, written as a JSON report.

Protocol (MOTIONGPT3_SPEC.md §9.1, HUMANML3D.md §7): items are built like MDM's Text2MotionDatasetV2 (whole clips
of 40-199 frames with their whole-clip captions, plus one item per timed sub-segment caption); every
replication draws one caption per item and crops the ground truth to a multiple of 4 frames (one unit shorter
with probability 1/3) at a random start, generates with the ground-truth length, embeds with the chosen
evaluator and computes the metrics; the report gives mean ± 1.96·std/√replications. Captions are greedy, hence
generated once; their BLEU/ROUGE/CIDEr are single values, their R-precision is replicated like the rest.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from .caption_metrics import bertscore_f1, caption_scores
from .metrics import (
    R_PRECISION_GROUP,
    ade_fde,
    diversity,
    fid,
    inbetween_frames,
    matching_score,
    mean_and_interval,
    multimodality,
    prediction_frames,
    r_precision,
)

FPS = 20
MIN_FRAMES, MAX_FRAMES = 40, 200  # MDM keeps clips with 40 <= T < 200
UNIT_LENGTH = 4
MAX_REFERENCES = 3  # references per clip for the caption metrics
TASKS = ("t2m", "m2t", "pred", "inbetween")


# --- data ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EvalItem:
    """One evaluation item: raw 263-d features at 20 fps and its captions with their `word/POS` tokens."""

    name: str
    features: np.ndarray
    captions: tuple[str, ...]
    tokens: tuple[tuple[str, ...], ...]


def parse_caption_line(line: str) -> tuple[str, tuple[str, ...], float, float] | None:
    """'caption#word/POS …#start#end' -> (caption, tokens, start s, end s); NaN times read as 0; None if empty."""
    parts = line.strip().split("#")
    if not parts[0].strip():
        return None
    tokens = tuple(parts[1].split()) if len(parts) > 1 else ()

    def seconds(index: int) -> float:
        try:
            value = float(parts[index]) if len(parts) > index else 0.0
        except ValueError:
            return 0.0
        return 0.0 if np.isnan(value) else value

    return parts[0].strip(), tokens, seconds(2), seconds(3)


def read_split_ids(folder: Path, split: str) -> list[str]:
    path = folder / f"{split}.txt"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no split file (expected {split}.txt in the dataset folder)")
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def load_humanml3d_items(folder: str | Path, split: str = "test") -> list[EvalItem]:
    """Items of a HumanML3D-layout folder: <split>.txt, new_joint_vecs/<id>.npy, texts/<id>.txt."""
    folder = Path(folder)
    items: list[EvalItem] = []
    missing = 0
    for clip_id in read_split_ids(folder, split):
        motion_path, text_path = folder / "new_joint_vecs" / f"{clip_id}.npy", folder / "texts" / f"{clip_id}.txt"
        if not motion_path.is_file() or not text_path.is_file():
            missing += 1
            continue
        motion = np.load(motion_path).astype(np.float32)
        if motion.ndim != 2 or motion.shape[1] != 263 or not MIN_FRAMES <= len(motion) < MAX_FRAMES:
            continue
        whole: list[tuple[str, tuple[str, ...]]] = []
        for line in text_path.read_text(encoding="utf-8").splitlines():
            parsed = parse_caption_line(line)
            if parsed is None:
                continue
            caption, tokens, start, end = parsed
            if start == 0.0 and end == 0.0:
                whole.append((caption, tokens))
                continue
            segment = motion[int(start * FPS) : int(end * FPS)]
            if MIN_FRAMES <= len(segment) < MAX_FRAMES:
                items.append(EvalItem(f"{clip_id}#{start:g}-{end:g}", segment, (caption,), (tokens,)))
        if whole:
            items.append(EvalItem(clip_id, motion, tuple(c for c, _ in whole), tuple(t for _, t in whole)))
    if not items:
        raise ValueError(f"{folder}: no usable {split} items ({missing} ids without both motion and text files)")
    return items


def crop_to_units(length: int, rng: np.random.Generator) -> int:
    """MDM's evaluation crop: a multiple of 4 frames, one unit shorter with probability 1/3."""
    units = length // UNIT_LENGTH - (1 if rng.choice(["single", "single", "double"]) == "double" else 0)
    return max(units, 1) * UNIT_LENGTH


# --- interfaces ---------------------------------------------------------------------------------------------------


class Embedder(Protocol):
    """A text–motion evaluator: raw clips / captions -> embeddings in input order."""

    name: str

    def embed_motions(self, clips: Sequence[np.ndarray]) -> np.ndarray: ...

    def embed_texts(self, texts: Sequence[str], tokens: Sequence[Sequence[str] | None] | None = None) -> np.ndarray: ...


class Tasks(Protocol):
    """The model's four tasks over raw features (see ModelTasks)."""

    def text_to_motion(self, texts: list[str], frames: list[int], seeds: list[int], candidates: int = 1): ...

    def motion_to_text(self, clips: list[np.ndarray]) -> list[str]: ...

    def predict(self, prefix: np.ndarray, frames: int, seed: int) -> np.ndarray: ...

    def inbetween(self, clip: np.ndarray, known: np.ndarray, seed: int) -> np.ndarray: ...


@dataclass
class ModelTasks:
    """backend.tasks.inference bound to one model (batched text-to-motion and captioning)."""

    model: object
    guidance: float | None = None
    steps: int | None = None
    batch_size: int = 32

    def text_to_motion(self, texts, frames, seeds, candidates=1) -> list[list[np.ndarray]]:
        from backend.tasks.inference import text_to_motion

        out: list[list[np.ndarray]] = []
        step = max(1, self.batch_size // candidates)  # rows per model call = texts x candidates
        for s in range(0, len(texts), step):
            part = slice(s, s + step)
            out += text_to_motion(
                self.model, texts[part], frames[part], seeds[part], candidates, self.guidance, self.steps
            )
        return out

    def motion_to_text(self, clips) -> list[str]:
        from backend.tasks.inference import motion_to_text

        return [
            c
            for s in range(0, len(clips), self.batch_size)
            for c in motion_to_text(self.model, clips[s : s + self.batch_size])
        ]

    def predict(self, prefix, frames, seed) -> np.ndarray:
        from backend.tasks.inference import predict

        return predict(self.model, prefix, frames, seed=seed, guidance=self.guidance, steps=self.steps)[0]

    def inbetween(self, clip, known, seed) -> np.ndarray:
        from backend.tasks.inference import inbetween

        return inbetween(self.model, clip, known, seed=seed, guidance=self.guidance, steps=self.steps)[0]


# --- protocol -----------------------------------------------------------------------------------------------------


@dataclass
class EvalOptions:
    """Protocol knobs (defaults = the published protocol)."""

    tasks: tuple[str, ...] = TASKS
    replications: int = 20
    seed: int = 1234
    diversity_times: int = 300
    mm_texts: int = 100
    mm_repeats: int = 30
    mm_times: int = 10
    notes: list[str] = field(default_factory=list)


def _seed(*parts: int) -> int:
    return int(np.random.SeedSequence([int(p) & 0xFFFFFFFF for p in parts]).generate_state(1)[0] & 0x7FFFFFFF)


def _to_joints(features: np.ndarray) -> np.ndarray:
    from shared.motion.humanml3d import features_to_joints

    return features_to_joints(np.asarray(features, dtype=np.float32))


@dataclass
class _Draw:
    """One replication's random choices: a caption per item, the cropped ground truth and generation seeds."""

    texts: list[str]
    tokens: list[tuple[str, ...] | None]
    gt: list[np.ndarray]
    seeds: list[int]

    @property
    def lengths(self) -> list[int]:
        return [len(g) for g in self.gt]


def draw_replication(items: Sequence[EvalItem], seed: int, replication: int, rng: np.random.Generator) -> _Draw:
    """Caption choice and MDM's ground-truth crop (multiple of 4 frames, random start) for every item."""
    choice = [int(rng.integers(len(item.captions))) for item in items]
    gt = []
    for item in items:
        length = crop_to_units(len(item.features), rng)
        start = int(rng.integers(0, len(item.features) - length + 1))
        gt.append(item.features[start : start + length])
    return _Draw(
        texts=[item.captions[c] for item, c in zip(items, choice, strict=True)],
        tokens=[item.tokens[c] or None for item, c in zip(items, choice, strict=True)],
        gt=gt,
        seeds=[_seed(seed, replication, i) for i in range(len(items))],
    )


class _Scores:
    """Metric values of one replication, keyed 'task/metric'."""

    def __init__(self, options: EvalOptions, rng: np.random.Generator):
        self.options, self.rng = options, rng
        self.values: dict[str, float] = {}

    def child_rng(self) -> np.random.Generator:
        return np.random.default_rng(int(self.rng.integers(2**31)))

    def matching(self, task: str, text_emb: np.ndarray, motion_emb: np.ndarray) -> None:
        """R-precision top-1..3 and MM-Dist over the same shuffled groups of 32."""
        if len(text_emb) < R_PRECISION_GROUP:
            return
        seed = int(self.rng.integers(2**31))
        recall = r_precision(text_emb, motion_emb, 3, R_PRECISION_GROUP, np.random.default_rng(seed))
        for k, value in enumerate(recall, start=1):
            self.values[f"{task}/r_precision_top{k}"] = float(value)
        group_rng = np.random.default_rng(seed)
        self.values[f"{task}/mm_dist"] = matching_score(text_emb, motion_emb, R_PRECISION_GROUP, group_rng)

    def spread(self, task: str, motion_emb: np.ndarray, gt_emb: np.ndarray | None = None) -> None:
        """Diversity, and FID against the ground truth's embeddings when given."""
        times = min(self.options.diversity_times, len(motion_emb))
        if times >= 2:
            self.values[f"{task}/diversity"] = diversity(motion_emb, times, self.child_rng())
        if gt_emb is not None and len(motion_emb) >= 2:
            self.values[f"{task}/fid"] = fid(gt_emb, motion_emb)


def _text_to_motion_scores(tasks: Tasks, draw: _Draw, embedder: Embedder, embeddings, scores: _Scores) -> None:
    text_emb, gt_emb = embeddings
    generated = [m[0] for m in tasks.text_to_motion(draw.texts, draw.lengths, draw.seeds)]
    gen_emb = embedder.embed_motions(generated)
    scores.matching("t2m", text_emb, gen_emb)
    scores.spread("t2m", gen_emb, gt_emb)
    options = scores.options
    count = min(options.mm_texts, len(draw.texts))
    if options.mm_repeats < 2 or count < 1:
        return
    chosen = scores.rng.choice(len(draw.texts), count, replace=False)
    groups = tasks.text_to_motion(
        [draw.texts[i] for i in chosen],
        [draw.lengths[i] for i in chosen],
        [draw.seeds[i] + 1 for i in chosen],
        candidates=options.mm_repeats,
    )
    mm_emb = np.stack([embedder.embed_motions(group) for group in groups])
    times = min(options.mm_times, options.mm_repeats)
    scores.values["t2m/multimodality"] = multimodality(mm_emb, times, scores.child_rng())


def _joint_task_scores(task: str, tasks: Tasks, draw: _Draw, embedder, gt_emb, scores: _Scores) -> None:
    """Prediction (first 20 % given) or in-betweening (first and last quarter given): ADE/FDE in metres on the
    generated frames, FID/Diversity of the outputs."""
    outputs, ades, fdes = [], [], []
    for clip, seed in zip(draw.gt, draw.seeds, strict=True):
        if task == "pred":
            frames = prediction_frames(len(clip))
            output = tasks.predict(clip[: frames.start], len(clip) - frames.start, seed)
        else:
            frames = inbetween_frames(len(clip))
            known = np.ones(len(clip), dtype=bool)
            known[frames] = False
            output = tasks.inbetween(clip, known, seed)
        ade, fde = ade_fde(_to_joints(output), _to_joints(clip), frames)
        outputs.append(output)
        ades.append(float(ade))
        fdes.append(float(fde))
    scores.values[f"{task}/ade"], scores.values[f"{task}/fde"] = float(np.mean(ades)), float(np.mean(fdes))
    if embedder is not None:
        scores.spread(task, embedder.embed_motions(outputs), gt_emb)


def run_replication(
    tasks: Tasks,
    items: Sequence[EvalItem],
    embedder: Embedder | None,
    options: EvalOptions,
    replication: int,
    caption_emb: np.ndarray | None = None,
) -> dict[str, float]:
    """All metrics of one replication ('task/metric' -> value); 'gt' rows score the real motions."""
    rng = np.random.default_rng([options.seed, replication])
    draw = draw_replication(items, options.seed, replication, rng)
    scores = _Scores(options, rng)
    text_emb = gt_emb = None
    if embedder is not None:
        gt_emb, text_emb = embedder.embed_motions(draw.gt), embedder.embed_texts(draw.texts, draw.tokens)
        scores.matching("gt", text_emb, gt_emb)
        scores.spread("gt", gt_emb)
        if "t2m" in options.tasks:
            _text_to_motion_scores(tasks, draw, embedder, (text_emb, gt_emb), scores)
        if caption_emb is not None:
            scores.matching("m2t", caption_emb, gt_emb)
    for task in ("pred", "inbetween"):
        if task in options.tasks:
            _joint_task_scores(task, tasks, draw, embedder, gt_emb, scores)
    return scores.values


def _caption_report(tasks: Tasks, items: Sequence[EvalItem], embedder, notes: list[str]):
    """Greedy captions of the full clips, their text metrics against up to 3 references, and their embeddings."""
    captions = tasks.motion_to_text([item.features for item in items])
    references = [list(item.captions[:MAX_REFERENCES]) for item in items]
    text_scores: dict[str, float | None] = dict(caption_scores(captions, references))
    text_scores["bertscore_f1"], why = bertscore_f1(captions, references)
    notes.append(why)
    caption_emb = None
    if embedder is not None:
        try:
            caption_emb = embedder.embed_texts(captions)
        except RuntimeError as error:  # the T2M text encoder needs spaCy for free text
            notes.append(f"m2t R-precision not computed: {error}")
    return captions, text_scores, caption_emb


def evaluate(
    tasks: Tasks,
    items: Sequence[EvalItem],
    embedder: Embedder | None,
    options: EvalOptions | None = None,
    log: Callable[[str], None] = lambda message: print(message, file=sys.stderr),
) -> dict:
    """Run the protocol; returns the report: {task: {metric: {mean, interval}}}, 'm2t_text', 'protocol',
    'notes' and the generated 'captions'."""
    options = options or EvalOptions()
    unknown = set(options.tasks) - set(TASKS)
    if unknown:
        raise ValueError(f"unknown tasks {sorted(unknown)} (choose from {', '.join(TASKS)})")
    if options.replications < 1:
        raise ValueError(f"replications: must be >= 1, got {options.replications}")
    notes = list(options.notes)
    if embedder is None:
        notes.append(
            "no evaluator given: only caption text metrics and ADE/FDE are computed (no motion is generated from text)"
        )
    if len(items) < R_PRECISION_GROUP:
        notes.append(f"fewer than {R_PRECISION_GROUP} items: R-precision and MM-Dist are not computed")
    if len(items) < options.diversity_times:
        notes.append(f"diversity over {len(items)} pairs instead of {options.diversity_times} (few items)")
    report: dict = {}
    captions, caption_emb = [], None
    if "m2t" in options.tasks:
        log(f"captioning {len(items)} clips")
        captions, report["m2t_text"], caption_emb = _caption_report(tasks, items, embedder, notes)

    replications = []
    for r in range(options.replications):
        log(f"replication {r + 1}/{options.replications}")
        replications.append(run_replication(tasks, items, embedder, options, r, caption_emb))
    for key in sorted({k for values in replications for k in values}):
        task, metric = key.split("/")
        mean, interval = mean_and_interval(np.array([values[key] for values in replications if key in values]))
        report.setdefault(task, {})[metric] = {"mean": mean, "interval": interval}
    report["protocol"] = {
        "items": len(items),
        "evaluator": None if embedder is None else embedder.name,
        **{k: v for k, v in asdict(options).items() if k != "notes"},
    }
    report["notes"] = notes
    if captions:
        report["captions"] = [{"name": item.name, "caption": c} for item, c in zip(items, captions, strict=True)]
    return report


# --- command line -------------------------------------------------------------------------------------------------


def _load_embedder(args: argparse.Namespace) -> Embedder | None:
    from backend.model.loading import resolve_device

    if args.t2m_evaluator is not None:
        from .t2m_evaluator import load_t2m_embedder

        return load_t2m_embedder(args.t2m_evaluator, str(resolve_device(args.device)))
    if args.evaluator is not None:
        from .contrastive import load_contrastive

        return load_contrastive(args.evaluator, str(resolve_device(args.device)))
    return None


def _choose(items: list[EvalItem], samples: int | None, seed: int) -> list[EvalItem]:
    if samples is None or samples >= len(items):
        return items
    if samples < 1:
        raise ValueError(f"--samples: must be >= 1, got {samples}")
    chosen = np.sort(np.random.default_rng(seed).choice(len(items), samples, replace=False))
    return [items[i] for i in chosen]


def cmd_eval(args: argparse.Namespace) -> None:
    """Evaluate a model on a HumanML3D-layout folder and write report.json."""
    from backend import load_model

    items = _choose(load_humanml3d_items(args.data, args.split), args.samples, args.seed)
    embedder = _load_embedder(args)
    tasks = tuple(t.strip() for t in args.tasks.split(",") if t.strip())
    options = EvalOptions(tasks=tasks, replications=args.replications, seed=args.seed, mm_repeats=args.mm_repeats)
    model = load_model(args.checkpoint, args.device)
    report = evaluate(ModelTasks(model, args.guidance, args.steps), items, embedder, options)
    checkpoint = None if args.checkpoint is None else str(args.checkpoint)
    report["protocol"].update({"data": str(args.data), "split": args.split, "checkpoint": checkpoint})
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.output}")
    for task in ("gt", *TASKS):
        for metric, value in report.get(task, {}).items():
            print(f"  {task:<9} {metric:<20} {value['mean']:.4f} ± {value['interval']:.4f}")
    for metric, value in report.get("m2t_text", {}).items():
        print(f"  m2t       {metric:<20} {'n/a' if value is None else f'{value:.4f}'}")


def cmd_train_evaluator(args: argparse.Namespace) -> None:
    """Train the contrastive evaluator on a HumanML3D-layout split and save it as safetensors."""
    from .contrastive import save_contrastive, train_contrastive

    items = load_humanml3d_items(args.data, args.split)
    pairs = [(caption, item.features) for item in items for caption in item.captions]
    print(f"training on {len(pairs)} caption-motion pairs from {len(items)} items", file=sys.stderr)

    def progress(step: int, steps: int, loss: float) -> None:
        if step == steps or step % max(1, steps // 20) == 0:
            print(f"  step {step}/{steps}  loss {loss:.4f}", file=sys.stderr)

    model = train_contrastive(pairs, steps=args.steps, seed=args.seed, device=args.device, progress=progress)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    save_contrastive(model.cpu(), args.output)
    print(f"wrote {args.output}")


def add_eval_command(commands: argparse._SubParsersAction) -> None:
    """Register `eval` and `train-evaluator` on the `motiongpt3` parser."""
    run = commands.add_parser("eval", help="evaluate a model on a HumanML3D-layout folder (JSON report)")
    run.add_argument("--data", type=Path, required=True, help="folder with new_joint_vecs/, texts/ and <split>.txt")
    run.add_argument("--split", default="test")
    run.add_argument("--checkpoint", type=Path, default=None, help="model (default: embedded demo model)")
    run.add_argument("--device", default="auto")
    which = run.add_mutually_exclusive_group()
    which.add_argument("--evaluator", type=Path, default=None, help="our contrastive evaluator (.safetensors)")
    which.add_argument("--t2m-evaluator", type=Path, default=None, help="folder with Guo et al. finest.tar + glove/")
    run.add_argument("--replications", type=int, default=20)
    run.add_argument("--samples", type=int, default=None, help="evaluate a random subset of N items")
    run.add_argument("--tasks", default=",".join(TASKS), help="comma-separated subset of " + ",".join(TASKS))
    run.add_argument("--mm-repeats", type=int, default=30, help="generations per text for MultiModality (0: skip)")
    run.add_argument("--seed", type=int, default=1234)
    run.add_argument("--guidance", type=float, default=None)
    run.add_argument("--steps", type=int, default=None, help="diffusion steps")
    run.add_argument("-o", "--output", type=Path, required=True, help="report .json")
    run.set_defaults(run=cmd_eval)

    train = commands.add_parser("train-evaluator", help="train the contrastive text-motion evaluator")
    train.add_argument("--data", type=Path, required=True, help="folder with new_joint_vecs/, texts/ and <split>.txt")
    train.add_argument("--split", default="train")
    train.add_argument("--steps", type=int, default=2000)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--device", default="cpu")
    train.add_argument("-o", "--output", type=Path, required=True, help="evaluator .safetensors")
    train.set_defaults(run=cmd_train_evaluator)
