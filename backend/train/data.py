"""HumanML3D-layout training data: clips and caption sub-clips, random crops and captions, per-task samples.

Folder layout: `new_joint_vecs/<id>.npy` (T, 263) raw features at 20 fps, `texts/<id>.txt` with lines
`caption#tokens#start#end` (seconds; `0.0#0.0` = the whole clip, anything else a sub-clip with that one caption),
`train.txt` / `val.txt` / `test.txt` (one id a line), `Mean.npy` / `Std.npy`.

Determinism: item `index` of epoch `epoch` draws everything (caption, crop, templates, quoting) from
`numpy.random.default_rng([seed, epoch, index])`, so an item is a pure function of (seed, epoch, index) —
whatever the worker, the process or a resume in the middle of an epoch.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from backend.model.config import EOM_ID, MOTION_TOKEN_START
from backend.model.tokenizer import TokenBatch, load_tokenizer, tokenize_batch

from .prompts import TASK_MOTIONS, Subtask, fill_template, prompt_prefix, training_sequence

FPS = 20.0
MIN_FRAMES = 20  # clips (and sub-clips) shorter than this are dropped (HumanML3D `min_motion_len`)
MAX_FRAMES_EXCLUSIVE = 200  # ... and clips this long or longer (upstream's whole-clip filter bug fixed, §10 #15)
MAX_CROP_FRAMES = 196  # longest clip a sample holds (the model's `max_frames`)
UNIT = 4  # crop lengths are multiples of this in the cropping branch (spec §7.3)
CROP_PROB = 1.0 / 3.0
QUOTE_PROB = 0.5  # a caption in a prompt is wrapped in double quotes with this probability (spec §2.3)
PREDICT_RATIO = 0.2  # prediction: prefix [0, 0.2 L), target [0.2 L, L) (spec §3.3)
INBETWEEN_RATIO = 0.25  # in-betweening: head [0, 0.25 L), tail [0.75 L, L), target the whole clip (spec §3.4)
MAX_PROMPT_TOKENS = 192
IGNORE = -100  # cross-entropy ignore index


@dataclass(frozen=True)
class Clip:
    """One training clip: frames [start, end) of a feature file and the captions that describe them."""

    name: str  # the HumanML3D id, or "<id>#<start>-<end>" for a sub-clip
    path: Path
    start: int
    end: int
    captions: tuple[str, ...]

    @property
    def frames(self) -> int:
        return self.end - self.start


@dataclass(frozen=True)
class Sample:
    """One training item: the full LM sequence and the motions (raw features) that fill its holders."""

    task: str  # subtask key "Group/Name" ("vae" for the VAE stage)
    kind: str  # task class (t2m, m2t, predict, ...)
    clip: str
    caption: str
    frames: int  # length of the cropped clip
    prompt: str  # the filled input template
    answer: str  # the filled output template
    inputs: tuple[np.ndarray, ...]  # motions behind the input holders, in reading order
    outputs: tuple[np.ndarray, ...]  # motions behind the output holders (diffusion targets)

    @property
    def text(self) -> str:
        """The LM training string (empty for VAE samples)."""
        return "" if self.kind == "vae" else training_sequence(self.prompt, self.answer)


def parse_caption_line(line: str) -> tuple[str, float, float] | None:
    """`caption#tokens#start#end` -> (caption, start s, end s); a line without tags is a whole-clip caption.
    NaN tags count as 0 (as HumanML3D's loaders do); empty lines give None."""
    parts = line.strip().split("#")
    caption = parts[0].strip()
    if not caption:
        return None
    if len(parts) < 4:
        return caption, 0.0, 0.0
    try:
        start, end = float(parts[2]), float(parts[3])
    except ValueError:
        return caption, 0.0, 0.0
    return caption, 0.0 if math.isnan(start) else start, 0.0 if math.isnan(end) else end


def _keep(frames: int) -> bool:
    return MIN_FRAMES <= frames < MAX_FRAMES_EXCLUSIVE


def scan_split(root: str | Path, split: str = "train", fps: float = FPS) -> list[Clip]:
    """The clips of a split: whole clips with their untagged captions, then one clip per tagged caption line.

    Frames of a sub-clip are [int(start·fps), int(end·fps)) clipped to the file (HumanML3D's rounding). Both kinds
    are kept iff 20 <= frames < 200. Ids without a feature file or without any caption are skipped.
    """
    root = Path(root)
    split_file = root / f"{split}.txt"
    if not split_file.is_file():
        raise FileNotFoundError(f"{split_file}: no such split file")
    clips: list[Clip] = []
    for name in split_file.read_text(encoding="utf-8").split():
        path = root / "new_joint_vecs" / f"{name}.npy"
        text_path = root / "texts" / f"{name}.txt"
        if not path.is_file() or not text_path.is_file():
            continue
        total = int(np.load(path, mmap_mode="r").shape[0])
        whole: list[str] = []
        subclips: list[Clip] = []
        for line in text_path.read_text(encoding="utf-8").splitlines():
            parsed = parse_caption_line(line)
            if parsed is None:
                continue
            caption, t0, t1 = parsed
            if t0 == 0.0 and t1 == 0.0:
                whole.append(caption)
                continue
            start, end = int(t0 * fps), min(int(t1 * fps), total)
            if _keep(end - start):
                subclips.append(Clip(f"{name}#{start}-{end}", path, start, end, (caption,)))
        if whole and _keep(total):
            clips.append(Clip(name, path, 0, total, tuple(whole)))
        clips.extend(subclips)
    return clips


def crop_window(frames: int, rng: np.random.Generator) -> tuple[int, int]:
    """(offset, length) of the random crop of a clip of `frames` frames (spec §7.3).

    With probability 1/3 the length becomes 4·(⌊L/4⌋ − 1) or 4·⌊L/4⌋ (50/50) at a uniform offset, otherwise the
    clip is kept whole; then anything longer than 196 frames is cut to 196 at a uniform offset.
    Draw order: crop coin, [which multiple, offset], [offset of the 196 cut].
    """
    offset, length = 0, frames
    if rng.random() < CROP_PROB:
        length = UNIT * (frames // UNIT - 1) if rng.random() < 0.5 else UNIT * (frames // UNIT)
        offset = int(rng.integers(0, frames - length + 1))
    if length > MAX_CROP_FRAMES:
        offset += int(rng.integers(0, length - MAX_CROP_FRAMES + 1))
        length = MAX_CROP_FRAMES
    return offset, length


def task_motions(kind: str, clip: np.ndarray) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
    """(input motions, output motions) of a task class for a cropped clip (spec §3.3-3.4)."""
    n = len(clip)
    if kind in ("t2m", "n2m"):
        return (), (clip,)
    if kind == "m2t":
        return (clip,), ()
    if kind == "predict":
        h = int(PREDICT_RATIO * n)
        return (clip[:h],), (clip[h:],)
    if kind == "inbetween":
        a, b = int(INBETWEEN_RATIO * n), int((1.0 - INBETWEEN_RATIO) * n)
        return (clip[:a], clip[b:]), (clip,)
    if kind in ("t2t", "n2t", "vae"):
        return (), ((clip,) if kind == "vae" else ())
    raise ValueError(f"unknown task class {kind!r}")


class MotionTextDataset(torch.utils.data.Dataset):
    """Items `clip × subtask` (every clip meets every subtask once per epoch; spec §2.4), or clips alone for the
    VAE stage (`subtasks=None`). Index with `(epoch, index)` (or a plain index, which uses `self.epoch`)."""

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        subtasks: Sequence[Subtask] | None = None,
        seed: int = 0,
        holders: int = 4,
        quote_prob: float = QUOTE_PROB,
        cache: bool = False,
    ) -> None:
        self.root = Path(root)
        self.clips = scan_split(self.root, split)
        if not self.clips:
            raise ValueError(f"{self.root}: split {split!r} has no usable clips (20 <= frames < 200 with captions)")
        self.subtasks = tuple(subtasks) if subtasks is not None else None
        self.seed = int(seed)
        self.holders = holders
        self.quote_prob = quote_prob
        self.epoch = 0
        self._cache: dict[Path, np.ndarray] | None = {} if cache else None
        self.mean, self.std = self._stats()

    def _stats(self) -> tuple[np.ndarray | None, np.ndarray | None]:
        mean_path, std_path = self.root / "Mean.npy", self.root / "Std.npy"
        if not (mean_path.is_file() and std_path.is_file()):
            return None, None
        return np.load(mean_path).astype(np.float32), np.load(std_path).astype(np.float32)

    def check_stats(self, mean: np.ndarray, std: np.ndarray, atol: float = 1e-4) -> bool:
        """Warn (and return False) when the folder's Mean/Std differ from the statistics the model normalises
        with: the model always uses its own (the inference code does too), so a different set means a
        dataset in another feature space."""
        if self.mean is None:
            return True
        same = np.allclose(self.mean, mean, atol=atol) and np.allclose(self.std, std, atol=atol)
        if not same:
            warnings.warn(
                f"{self.root}: Mean.npy/Std.npy differ from the model's HumanML3D statistics; training normalises "
                "with the model's statistics (as inference does)",
                stacklevel=2,
            )
        return same

    @property
    def tasks_per_clip(self) -> int:
        return 1 if self.subtasks is None else len(self.subtasks)

    def __len__(self) -> int:
        return len(self.clips) * self.tasks_per_clip

    def __getitem__(self, key: int | tuple[int, int]) -> Sample:
        epoch, index = key if isinstance(key, tuple) else (self.epoch, key)
        return self.sample(int(index), int(epoch))

    def features(self, clip: Clip) -> np.ndarray:
        """Raw (frames, 263) float32 features of a clip."""
        if self._cache is not None and clip.path in self._cache:
            data = self._cache[clip.path]
        else:
            data = np.load(clip.path).astype(np.float32)
            if self._cache is not None:
                self._cache[clip.path] = data
        return data[clip.start : clip.end]

    def sample(self, index: int, epoch: int) -> Sample:
        """Item `index` of `epoch`: clip index // tasks, subtask index % tasks.

        Draw order from rng([seed, epoch, index]): caption, crop (see `crop_window`), input template, output
        template, caption quoting.
        """
        if not 0 <= index < len(self):
            raise IndexError(f"item {index} out of range 0..{len(self) - 1}")
        clip = self.clips[index // self.tasks_per_clip]
        rng = np.random.default_rng([self.seed, epoch, index])
        caption = clip.captions[int(rng.integers(len(clip.captions)))]
        offset, length = crop_window(clip.frames, rng)
        motion = self.features(clip)[offset : offset + length]
        if self.subtasks is None:
            return Sample("vae", "vae", clip.name, caption, length, "", "", (), (motion,))
        subtask = self.subtasks[index % self.tasks_per_clip]
        inputs, outputs = task_motions(subtask.kind, motion)
        input_template = subtask.inputs[int(rng.integers(len(subtask.inputs)))]
        output_template = subtask.outputs[int(rng.integers(len(subtask.outputs)))]
        quote = rng.random() < self.quote_prob and '"' not in caption
        quoted = f'"{caption}"' if quote else caption
        fill = {"frames": length, "fps": FPS, "holders": self.holders}
        prompt = fill_template(input_template, caption=quoted, side="input", **fill)
        # Output captions are never quoted: the model should not learn to emit quotes (upstream quotes both).
        answer = fill_template(output_template, caption=caption, side="output", **fill)
        expected = TASK_MOTIONS[subtask.kind]
        if (len(inputs), len(outputs)) != expected:  # guarded by the template checks; kept as an invariant
            raise AssertionError(f"{subtask.key}: motions {len(inputs)}/{len(outputs)}, expected {expected}")
        return Sample(subtask.key, subtask.kind, clip.name, caption, length, prompt, answer, inputs, outputs)


# ----------------------------------------------------------------------------------------------- batches


@dataclass
class TrainingBatch:
    """A collated batch. Motions stay raw numpy (normalised and encoded on the model's device by the step)."""

    samples: list[Sample]
    tokens: TokenBatch | None  # right-padded to the longest sequence (<= 192); None for VAE batches
    labels: torch.Tensor | None  # [B, S] next-token targets, IGNORE where no text loss applies
    input_motions: list[tuple[np.ndarray, ...]]  # per sample, in holder reading order
    output_motions: list[tuple[np.ndarray, ...]]  # per sample

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def flat_inputs(self) -> list[np.ndarray]:
        return [m for motions in self.input_motions for m in motions]

    @property
    def flat_outputs(self) -> list[np.ndarray]:
        return [m for motions in self.output_motions for m in motions]


def text_labels(
    ids: torch.Tensor, attention_mask: torch.Tensor, prompt_lengths: torch.Tensor | None = None
) -> torch.Tensor:
    """Labels [B, S] for the shifted text loss: the ids, with IGNORE at <end_of_motion>, at every motion-branch
    token (holders, masked span), at padding and, when `prompt_lengths` [B] is given, at the first
    prompt_lengths[b] positions of each row. The loss at position j-1 predicts labels[j] (spec §7.2)."""
    labels = ids.clone()
    labels[ids == EOM_ID] = IGNORE
    labels[ids >= MOTION_TOKEN_START] = IGNORE
    labels[attention_mask == 0] = IGNORE
    if prompt_lengths is not None:
        positions = torch.arange(ids.shape[1], device=ids.device)[None, :]
        labels[positions < prompt_lengths.to(ids.device)[:, None]] = IGNORE
    return labels


def _prompt_lengths(samples: list[Sample], tokens: TokenBatch) -> torch.Tensor:
    """Tokens of prompt + " \\n" in each row; 0 (nothing masked) where they are not a prefix of the sequence."""
    tokenizer = load_tokenizer()
    lengths = []
    for row, sample in enumerate(samples):
        prefix = tokenizer(prompt_prefix(sample.prompt), add_special_tokens=False)["input_ids"]
        same = tokens.ids[row, : len(prefix)].tolist() == prefix
        lengths.append(len(prefix) if same else 0)
    return torch.tensor(lengths, dtype=torch.long)


class Collate:
    """Samples -> TrainingBatch: tokenise right-padded (an over-long sequence is an error naming it), build the
    text labels (padding always masked; prompt tokens masked only if `mask_prompt`)."""

    def __init__(self, max_tokens: int = MAX_PROMPT_TOKENS, mask_prompt: bool = False) -> None:
        self.max_tokens = max_tokens
        self.mask_prompt = mask_prompt

    def __call__(self, samples: list[Sample]) -> TrainingBatch:
        tokens = labels = None
        if any(s.kind != "vae" for s in samples):
            tokens = tokenize_batch([s.text for s in samples], self.max_tokens, padding_side="right")
            prompt_lengths = _prompt_lengths(samples, tokens) if self.mask_prompt else None
            labels = text_labels(tokens.ids, tokens.attention_mask, prompt_lengths)
        return TrainingBatch(
            samples=list(samples),
            tokens=tokens,
            labels=labels,
            input_motions=[s.inputs for s in samples],
            output_motions=[s.outputs for s in samples],
        )
