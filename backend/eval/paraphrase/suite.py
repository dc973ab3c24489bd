"""The paraphrase suite file (suite.json): load and validate prompts, their families, frame counts, split and checks."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .checks import CheckSpecError, validate_check

SUITE_PATH = Path(__file__).with_name("suite.json")
MAX_FRAMES = 196  # 9.8 s at 20 fps, the model's longest motion
SPLITS = ("dev", "heldout")
# Text-to-motion families of the suite (a prompt may carry several, e.g. a sequence).
PROMPT_FAMILIES = (
    "idle", "walk", "walk_backward", "sidestep", "run", "jog", "sprint", "turn", "spin", "curve_walk",
    "crouch_walk", "crawl", "wave", "raise_arms", "kick", "punch", "throw", "bow", "squat", "sit", "stand_up",
    "jump", "hop", "climb", "sequence",
)  # fmt: skip


class SuiteError(ValueError):
    """A suite file that cannot be read or holds a malformed prompt (the message names the field)."""


@dataclass(frozen=True)
class SuitePrompt:
    """One prompt: the text, its action families, the frames to generate (20 fps), its split and its checks."""

    id: str
    prompt: str
    families: tuple[str, ...]
    frames: int
    split: str
    checks: tuple[dict, ...]


@dataclass(frozen=True)
class Suite:
    """The whole suite: the prompts and the generation seeds a prompt is judged on (majority vote)."""

    prompts: tuple[SuitePrompt, ...]
    seeds: tuple[int, ...]
    fps: float

    def select(self, split: str = "all") -> list[SuitePrompt]:
        """The prompts of one split ("dev", "heldout") or all of them."""
        if split not in (*SPLITS, "all"):
            raise SuiteError(f"split: {split!r} is not one of dev, heldout, all")
        return [p for p in self.prompts if split in ("all", p.split)]


def _prompt(item: object, index: int) -> SuitePrompt:
    where = f"prompts[{index}]"
    if not isinstance(item, dict):
        raise SuiteError(f"{where}: expected an object")
    for key in ("id", "prompt", "families", "frames", "split", "checks"):
        if key not in item:
            raise SuiteError(f"{where}: missing {key!r}")
    where = f"prompts[{index}] ({item['id']})"
    if not isinstance(item["prompt"], str) or not item["prompt"].strip():
        raise SuiteError(f"{where}.prompt: expected a non-empty string")
    families = item["families"]
    if not isinstance(families, list) or not families or any(f not in PROMPT_FAMILIES for f in families):
        raise SuiteError(f"{where}.families: expected a non-empty list of {', '.join(PROMPT_FAMILIES)}")
    frames = item["frames"]
    if not isinstance(frames, int) or isinstance(frames, bool) or not 20 <= frames <= MAX_FRAMES:
        raise SuiteError(f"{where}.frames: expected an integer in [20, {MAX_FRAMES}], got {frames!r}")
    if item["split"] not in SPLITS:
        raise SuiteError(f"{where}.split: {item['split']!r} is not one of {', '.join(SPLITS)}")
    checks = item["checks"]
    if not isinstance(checks, list) or not checks:
        raise SuiteError(f"{where}.checks: expected a non-empty list")
    for i, check in enumerate(checks):
        try:
            validate_check(check, f"{where}.checks[{i}]")
        except CheckSpecError as error:
            raise SuiteError(str(error)) from None
    return SuitePrompt(str(item["id"]), item["prompt"].strip(), tuple(families), frames, item["split"], tuple(checks))


def parse_suite(data: object) -> Suite:
    """A suite from its JSON object; raises SuiteError naming the first malformed field."""
    if not isinstance(data, dict) or not isinstance(data.get("prompts"), list):
        raise SuiteError("suite: expected an object with a 'prompts' list")
    seeds = data.get("seeds", [0, 1, 2])
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) and s >= 0 for s in seeds):
        raise SuiteError(f"seeds: expected a non-empty list of non-negative integers, got {seeds!r}")
    prompts = tuple(_prompt(item, i) for i, item in enumerate(data["prompts"]))
    for kind, values in (("id", [p.id for p in prompts]), ("prompt", [p.prompt.lower() for p in prompts])):
        seen: set[str] = set()
        for value in values:
            if value in seen:
                raise SuiteError(f"prompts: duplicate {kind} {value!r}")
            seen.add(value)
    return Suite(prompts, tuple(seeds), float(data.get("fps", 20)))


def load_suite(path: str | Path | None = None) -> Suite:
    """The suite at `path` (default: the bundled suite.json)."""
    path = Path(path) if path is not None else SUITE_PATH
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise SuiteError(f"cannot read suite {path}: {error}") from None
    return parse_suite(data)
