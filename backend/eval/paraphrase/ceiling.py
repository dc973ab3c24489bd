"""The VAE's ceiling on the paraphrase suite: single-family prompts' checks on the synthetic generator's own clips of
that family, as made and after one VAE round trip (encode, decode); no language model on that VAE can do better."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from shared.motion.humanml3d import features_to_joints

from .checks import evaluate_checks
from .suite import Suite, SuitePrompt

RoundTrip = Callable[[np.ndarray], np.ndarray]  # features (T, 263) -> the VAE's reconstruction (T, 263)
# Prompt families judged on another family's clips (the generator plans jogs and sprints as one family).
PLAN_ALIASES = {"jog": "jog_sprint", "sprint": "jog_sprint"}


def _passes_on_any(prompt: SuitePrompt, joints_list: Sequence[np.ndarray], fps: float) -> bool:
    """Whether one of the clips passes all the prompt's checks (the family's clips differ in side and direction)."""
    return any(all(r.passed for r in evaluate_checks(list(prompt.checks), joints, fps)) for joints in joints_list)


def run_vae_ceiling(
    roundtrip: RoundTrip, suite: Suite, clips_by_family: Mapping[str, Sequence[np.ndarray]], split: str = "all"
) -> dict:
    """Per family: single-family prompts with generator clips, how many pass on the clips, how many after the round
    trip, and the prompts the round trip loses. Prompts of several families or of a family without clips are left
    out (counted in `skipped`)."""
    made = {family: [features_to_joints(f) for f in clips] for family, clips in clips_by_family.items()}
    decoded = {family: [features_to_joints(roundtrip(f)) for f in clips] for family, clips in clips_by_family.items()}
    families: dict[str, dict] = {}
    lost: list[dict] = []
    skipped = 0
    for prompt in suite.select(split):
        family = PLAN_ALIASES.get(prompt.families[0], prompt.families[0])
        if len(prompt.families) != 1 or family not in made:
            skipped += 1
            continue
        before = _passes_on_any(prompt, made[family], suite.fps)
        after = _passes_on_any(prompt, decoded[family], suite.fps)
        row = families.setdefault(family, {"prompts": 0, "clips_pass": 0, "round_trip_pass": 0})
        row["prompts"] += 1
        row["clips_pass"] += int(before)
        row["round_trip_pass"] += int(after)
        if before and not after:
            lost.append({"id": prompt.id, "prompt": prompt.prompt, "family": family})
    total = {key: sum(row[key] for row in families.values()) for key in ("prompts", "clips_pass", "round_trip_pass")}
    table = dict(sorted(families.items()))
    return {"split": split, "families": table, "total": total, "lost": lost, "skipped": skipped}


def format_ceiling(report: dict) -> str:
    """The ceiling as a table: family, prompts, passing on the generator's clips, passing after the round trip."""
    lines = [f"VAE ceiling ({report['split']} split): suite checks on the generator's clips, before / after the VAE"]
    lines.append(f"  {'family':<14} {'prompts':>7} {'clips':>6} {'VAE':>5}")
    rows = [*report["families"].items(), ("all", report["total"])]
    for family, row in rows:
        lines.append(f"  {family:<14} {row['prompts']:>7} {row['clips_pass']:>6} {row['round_trip_pass']:>5}")
    if report["lost"]:
        lines.append("  lost by the VAE: " + ", ".join(f"{item['id']} ({item['family']})" for item in report["lost"]))
    lines.append(f"  ({report['skipped']} prompts of several families or without generator clips left out)")
    return "\n".join(lines)
