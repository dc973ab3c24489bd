"""Prompt templates for training: loading and checking our JSON files, and filling their placeholders.

File structure (MOTIONGPT3_SPEC.md §2.4): `{TaskGroup: {SubTask: {"class": str, "input": [...], "output": [...]}}}`.
One input and one output template are drawn per sample. A training sequence is
`INPUT + " \\n " + OUTPUT + "<|endoftext|>"` (§2.3), the same format the inference code builds.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from backend.model.tokenizer import EOS, masked_motion_span, motion_input_sequence, motion_output_sequence
from backend.tasks.inference import ANSWER_SEPARATOR, CAPTION_SEPARATOR

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"

CAPTION = "<Caption_Placeholder>"
MOTION = "<Motion_Placeholder>"
MOTION_S1 = "<Motion_Placeholder_s1>"
MOTION_S2 = "<Motion_Placeholder_s2>"
MOTION_MASKED = "<Motion_Placeholder_Masked>"
FRAMES = "<Frame_Placeholder>"
SECONDS = "<Second_Placeholder>"
PLACEHOLDERS = (CAPTION, MOTION, MOTION_S1, MOTION_S2, MOTION_MASKED, FRAMES, SECONDS)
_PLACEHOLDER_RE = re.compile(r"<[A-Z][A-Za-z_0-9]*>")  # placeholders are capitalised; special tokens are not

# Task class -> (input motions, output motions) a sample of that class carries (spec §3).
TASK_MOTIONS: dict[str, tuple[int, int]] = {
    "t2m": (0, 1),  # caption -> the clip
    "n2m": (0, 1),  # no condition -> the clip
    "m2t": (1, 0),  # the clip -> caption
    "predict": (1, 1),  # first 20 % -> the rest
    "inbetween": (2, 1),  # first 25 % and last 25 % -> the whole clip
    "t2t": (0, 0),  # text about the clip (caption, length) -> text
    "n2t": (0, 0),  # no condition -> a caption
}


class TemplateError(ValueError):
    """A template file that does not have the expected structure or placeholders."""


@dataclass(frozen=True)
class Subtask:
    """One subtask of a template file: its class and its input / output template strings."""

    group: str
    name: str
    kind: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]

    @property
    def key(self) -> str:
        return f"{self.group}/{self.name}"


def motion_count(template: str) -> int:
    """How many motions a template holds once filled (the masked form holds two: head and tail)."""
    singles = template.count(MOTION) + template.count(MOTION_S1) + template.count(MOTION_S2)
    return singles + 2 * template.count(MOTION_MASKED)


def _check_template(template: str, expected_motions: int, where: str) -> None:
    if not isinstance(template, str) or not template.strip():
        raise TemplateError(f"{where}: templates must be non-empty strings")
    for found in _PLACEHOLDER_RE.findall(template):
        if found not in PLACEHOLDERS:
            raise TemplateError(f"{where}: unknown placeholder {found} in {template!r}")
    if motion_count(template) != expected_motions:
        raise TemplateError(
            f"{where}: {template!r} holds {motion_count(template)} motions, its class needs {expected_motions}"
        )


def load_templates(paths: list[str | Path]) -> list[Subtask]:
    """Subtasks of one or more template files (bare names are looked up in `templates/`), checked.

    The same group/subtask in two files is an error: every subtask is one item per clip and epoch.
    """
    subtasks: list[Subtask] = []
    seen: set[str] = set()
    for path in paths:
        path = Path(path)
        if not path.is_absolute() and not path.exists():
            path = TEMPLATE_DIR / path
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as error:
            raise TemplateError(f"{path}: cannot read template file ({error})") from None
        if not isinstance(data, dict):
            raise TemplateError(f"{path}: expected {{TaskGroup: {{SubTask: ...}}}}")
        for group, tasks in data.items():
            if not isinstance(tasks, dict):
                raise TemplateError(f"{path}: group {group!r} must map subtask names to entries")
            for name, entry in tasks.items():
                where = f"{path.name}:{group}/{name}"
                if not isinstance(entry, dict) or set(entry) != {"class", "input", "output"}:
                    raise TemplateError(f"{where}: an entry has exactly the keys class, input, output")
                kind = entry["class"]
                if kind not in TASK_MOTIONS:
                    raise TemplateError(f"{where}: unknown class {kind!r} (known: {', '.join(TASK_MOTIONS)})")
                n_in, n_out = TASK_MOTIONS[kind]
                for side, count in (("input", n_in), ("output", n_out)):
                    if not isinstance(entry[side], list) or not entry[side]:
                        raise TemplateError(f"{where}: {side} must be a non-empty list")
                    for template in entry[side]:
                        _check_template(template, count, f"{where} {side}")
                subtask = Subtask(group, name, kind, tuple(entry["input"]), tuple(entry["output"]))
                if subtask.key in seen:
                    raise TemplateError(f"{where}: subtask {subtask.key} is defined twice")
                seen.add(subtask.key)
                subtasks.append(subtask)
    if not subtasks:
        raise TemplateError(f"no subtasks in {', '.join(str(p) for p in paths)}")
    return subtasks


def seconds_text(frames: int, fps: float) -> str:
    """The `<Second_Placeholder>` value: the clip's duration to one decimal (upstream floors to whole seconds,
    "5.0"; we keep the tenths since our model is trained with them)."""
    return f"{frames / fps:.1f}"


def fill_template(template: str, *, caption: str, frames: int, fps: float, side: str, holders: int) -> str:
    """Replace every placeholder. Motions become input sequences on the input side and output sequences on
    the output side (`_s1` / `_s2` follow the same rule); the masked form is input + masked span + input."""
    if side not in ("input", "output"):
        raise ValueError(f"side must be 'input' or 'output', got {side!r}")
    motion = motion_input_sequence(holders) if side == "input" else motion_output_sequence(holders)
    masked = motion_input_sequence(holders) + masked_motion_span(holders) + motion_input_sequence(holders)
    text = template.replace(MOTION_MASKED, masked)
    for placeholder in (MOTION_S1, MOTION_S2, MOTION):
        text = text.replace(placeholder, motion)
    text = text.replace(FRAMES, str(int(frames))).replace(SECONDS, seconds_text(frames, fps))
    text = text.replace(CAPTION, caption)
    if leftover := _PLACEHOLDER_RE.findall(text.replace(caption, "")):
        raise TemplateError(f"unfilled placeholder {leftover[0]} in {template!r}")
    return text


def training_sequence(prompt: str, answer: str) -> str:
    """The string the LM is trained on: prompt, the answer separator, the answer, end of text (spec §2.3)."""
    return prompt + ANSWER_SEPARATOR + answer + EOS


def prompt_prefix(prompt: str) -> str:
    """The part of a training sequence counted as prompt when prompt tokens are masked: prompt + " \\n"."""
    return prompt + CAPTION_SEPARATOR
