"""Run the paraphrase suite on a model: text-to-motion checks (seeds, majority vote) and caption families, as a report
dict with per-family and overall pass rates, the failing prompts and clips, and a printable summary."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from shared.motion.humanml3d import features_to_joints, joints_to_features

from .caption_family import caption_families, caption_names_family
from .checks import analyse, evaluate_body
from .real_clips import LabelledClip
from .suite import Suite, SuitePrompt

# (texts, frames, seeds) -> one (frames, 263) feature array per text; (list of (T, 263) features) -> captions
GenerateFn = Callable[[list[str], list[int], list[int]], list[np.ndarray]]
CaptionFn = Callable[[list[np.ndarray]], list[str]]


@dataclass(frozen=True)
class ModelSuiteTasks:
    """The two tasks the suite needs, bound to a loaded model (backend.tasks.inference), in batches."""

    model: object
    batch_size: int = 32
    guidance: float | None = None
    steps: int | None = None

    def generate(self, texts: list[str], frames: list[int], seeds: list[int]) -> list[np.ndarray]:
        from backend.tasks.inference import text_to_motion

        out: list[np.ndarray] = []
        for s in range(0, len(texts), self.batch_size):
            part = slice(s, s + self.batch_size)
            motions = text_to_motion(self.model, texts[part], frames[part], seeds[part], 1, self.guidance, self.steps)
            out += [m[0] for m in motions]
        return out

    def caption(self, features: list[np.ndarray]) -> list[str]:
        from backend.tasks.inference import motion_to_text

        return [
            c
            for s in range(0, len(features), self.batch_size)
            for c in motion_to_text(self.model, features[s : s + self.batch_size])
        ]


def _rate(passed: int, total: int) -> float | None:
    return None if total == 0 else passed / total


def _family_table(items: list[tuple[Sequence[str], bool]]) -> dict[str, dict]:
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for families, passed in items:
        for family in families:
            counts[family][0] += int(passed)
            counts[family][1] += 1
    return {f: {"passed": p, "total": t, "rate": _rate(p, t)} for f, (p, t) in sorted(counts.items())}


def judge_prompt(prompt: SuitePrompt, joints_per_seed: list[np.ndarray], seeds: Sequence[int], fps: float) -> dict:
    """Every check of `prompt` on each seed's joints; the prompt passes when a majority of seeds pass all checks."""
    runs = []
    for seed, joints in zip(seeds, joints_per_seed, strict=True):
        body = analyse(joints, fps)
        results = [evaluate_body(spec, body) for spec in prompt.checks]
        runs.append(
            {
                "seed": seed,
                "passed": all(r.passed for r in results),
                "checks": [
                    {
                        "type": spec["type"],
                        "passed": r.passed,
                        "value": None if np.isnan(r.value) else round(r.value, 3),
                        "unit": r.unit,
                        "detail": r.detail,
                    }
                    for spec, r in zip(prompt.checks, results, strict=True)
                ],
            }
        )
    wins = sum(r["passed"] for r in runs)
    return {
        "id": prompt.id,
        "prompt": prompt.prompt,
        "families": list(prompt.families),
        "split": prompt.split,
        "frames": prompt.frames,
        "seeds_passed": wins,
        "passed": wins * 2 > len(runs),
        "runs": runs,
    }


def run_text_to_motion(
    generate: GenerateFn,
    suite: Suite,
    split: str = "all",
    seeds: Sequence[int] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Generate every prompt of `split` with each seed and judge it; the report's "prompts" lists each prompt."""
    prompts = suite.select(split)
    seeds = list(suite.seeds if seeds is None else seeds)
    joints: list[list[np.ndarray]] = [[] for _ in prompts]
    for k, seed in enumerate(seeds):
        features = generate([p.prompt for p in prompts], [p.frames for p in prompts], [seed] * len(prompts))
        for i, f in enumerate(features):
            joints[i].append(features_to_joints(np.asarray(f, dtype=np.float32)))
        if progress is not None:
            progress(k + 1, len(seeds))
    judged = [judge_prompt(p, j, seeds, suite.fps) for p, j in zip(prompts, joints, strict=True)]
    passed = sum(r["passed"] for r in judged)
    return {
        "split": split,
        "seeds": seeds,
        "overall": {"passed": passed, "total": len(judged), "rate": _rate(passed, len(judged))},
        "families": _family_table([(r["families"], r["passed"]) for r in judged]),
        "failing": [
            {"id": r["id"], "prompt": r["prompt"], "seeds_passed": r["seeds_passed"]} for r in judged if not r["passed"]
        ],
        "prompts": judged,
    }


def run_captions(caption: CaptionFn, clips: Sequence[LabelledClip]) -> dict:
    """Caption every clip and score whether the caption names the clip's family (walk vs run by speed included);
    reported per source ("real", "synthetic") and family, with the number of distinct captions."""
    captions = caption([joints_to_features(c.joints) for c in clips]) if clips else []
    rows = []
    for clip, text in zip(clips, captions, strict=True):
        rows.append(
            {
                "clip": clip.name,
                "source": clip.source,
                "family": clip.family,
                "speed": round(clip.speed, 2),
                "caption": text,
                "named_families": caption_families(text),
                "passed": caption_names_family(text, clip.family),
            }
        )
    report: dict = {"distinct_captions": len({r["caption"] for r in rows}), "clips": rows}
    for source in ("synthetic", "real"):
        part = [r for r in rows if r["source"] == source]
        passed = sum(r["passed"] for r in part)
        report[source] = {
            "overall": {"passed": passed, "total": len(part), "rate": _rate(passed, len(part))},
            "families": _family_table([([r["family"]], r["passed"]) for r in part]),
            "distinct_captions": len({r["caption"] for r in part}),
            "failing": [{k: r[k] for k in ("clip", "family", "speed", "caption")} for r in part if not r["passed"]],
        }
    return report


def _percent(entry: dict) -> str:
    rate = entry["rate"]
    return f"{entry['passed']:>3}/{entry['total']:<3} {'  n/a' if rate is None else f'{100 * rate:5.1f}'} %"


def format_report(report: dict) -> str:
    """The human-readable summary: per-family and overall pass rates, then the failing prompts and clips."""
    lines = []
    t2m = report.get("text_to_motion")
    if t2m:
        lines.append(f"text-to-motion ({t2m['split']} split, seeds {t2m['seeds']}, majority vote):")
        for family, entry in t2m["families"].items():
            lines.append(f"  {family:<14} {_percent(entry)}")
        lines.append(f"  {'overall':<14} {_percent(t2m['overall'])}")
        if t2m["failing"]:
            lines.append(f"failing prompts ({len(t2m['failing'])}):")
            lines += [f"  {f['id']} [{f['seeds_passed']}/{len(t2m['seeds'])}] {f['prompt']}" for f in t2m["failing"]]
    captions = report.get("captions")
    if captions:
        for source in ("synthetic", "real"):
            part = captions[source]
            if not part["overall"]["total"]:
                continue
            lines.append(f"captions, {source} clips ({part['distinct_captions']} distinct captions):")
            for family, entry in part["families"].items():
                lines.append(f"  {family:<14} {_percent(entry)}")
            lines.append(f"  {'overall':<14} {_percent(part['overall'])}")
            for f in part["failing"]:
                lines.append(f"  failing: {f['clip']} ({f['family']}, {f['speed']:.2f} m/s): {f['caption']!r}")
        lines.append(f"distinct captions over all clips: {captions['distinct_captions']}")
    return "\n".join(lines)
