"""`motiongpt3 caption --ray ADDRESS`: the library captioning of `library.py` on Ray Data (optional extra `[ray]`):
Ray tasks parse the files and plan their windows, model actors caption the windows in batches, and the rows come back
in file order to the same output table (same rows as one machine, same resume rules)."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .library import LibraryStats, RowSink, error_row, parse_clip, segment_row
from .progress import ProgressBar

ROOT = Path(__file__).resolve().parents[2]  # the folder holding `backend` and `shared`
FEATURE_DIM = 263


def parse_windows(row: dict[str, Any], bone_map: str, unit: str, window: int) -> list[dict[str, Any]]:
    """One file -> a row per caption window (its features as float32 bytes), or one error row (k = -1)."""
    from shared.motion.windows import action_boundaries, caption_windows

    parsed = parse_clip(row["file"], bone_map, unit)
    base = {"index": row["index"], "file": row["file"], "error": parsed.error}
    if parsed.features is None:
        return [base | {"k": -1, "count": 0, "start": 0, "end": 0, "piece": b""}]
    features = parsed.features
    boundaries = action_boundaries(features) if len(features) > window else []
    windows = caption_windows(len(features), window, boundaries)
    return [
        base | {"k": k, "count": len(windows), "start": w.start, "end": w.end,
                "piece": np.ascontiguousarray(features[w.start : w.end], dtype=np.float32).tobytes()}
        for k, w in enumerate(windows)
    ]  # fmt: skip


class WindowCaptioner:
    """A Ray actor holding one model: captions a batch of window rows (error rows pass through)."""

    def __init__(self, checkpoint: str | None, device: str, threads: int, batch: int) -> None:
        from backend import load_model
        from backend.model.cpu_threads import configure_threads

        configure_threads(threads)
        self.model = load_model(checkpoint, device)
        self.batch = batch

    def __call__(self, rows: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from backend.tasks.long_clips import caption_window_clips

        count = len(rows["index"])
        captions = np.array([""] * count, dtype=object)
        errors = np.array([str(e) for e in rows["error"]], dtype=object)
        todo = [i for i in range(count) if int(rows["k"][i]) >= 0]
        pieces = [np.frombuffer(rows["piece"][i], dtype=np.float32).reshape(-1, FEATURE_DIM) for i in todo]
        try:
            texts = caption_window_clips(self.model, pieces, self.batch)
        except (ValueError, RuntimeError):  # one bad window must not cost the others
            texts = []
            for i, piece in zip(todo, pieces, strict=True):
                try:
                    texts += caption_window_clips(self.model, [piece], 1)
                except (ValueError, RuntimeError) as error:
                    errors[i] = f"captioning failed: {error}"
                    texts.append("")
        for i, text in zip(todo, texts, strict=True):
            captions[i] = text
        out = {key: rows[key] for key in ("index", "file", "k", "count", "start", "end")}
        return out | {"caption": captions, "error": errors}


def _file_rows(rows: Iterator[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    """Window rows in file order -> each file's table rows once all its windows are in."""
    current: list[dict[str, Any]] = []
    for row in rows:
        if current and row["index"] != current[0]["index"]:
            yield _table_rows(current)
            current = []
        current.append(row)
    if current:
        yield _table_rows(current)


def _table_rows(windows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    file = str(windows[0]["file"])
    errors = [str(w["error"]) for w in windows if str(w["error"])]
    if errors:
        return [error_row(file, errors[0])]
    windows = sorted(windows, key=lambda w: int(w["k"]))
    if len(windows) != int(windows[0]["count"]):
        return [error_row(file, f"{len(windows)} of {windows[0]['count']} windows came back from Ray")]
    return [segment_row(file, int(w["start"]) / 20.0, int(w["end"]) / 20.0, str(w["caption"])) for w in windows]


def caption_library_on_ray(
    address: str, files: list[str], sink: RowSink, args: argparse.Namespace, progress: ProgressBar | None = None
) -> LibraryStats:
    """Caption the files not in `sink` on the Ray cluster at `address` ('local' starts one here) and write the rows
    in file order. Every actor loads the model (`args.checkpoint`, `args.device`, `args.threads`)."""
    import time

    try:
        import ray
    except ImportError:
        raise ValueError("--ray needs Ray Data: pip install 'motiongpt3-blender[ray]' (or 'ray[data]')") from None
    from backend.model.config import MotionGPT3Config

    stats = LibraryStats(skipped=sum(1 for f in files if f in sink.done), engine=f"on Ray ({address})")
    todo = [f for f in files if f not in sink.done]
    if not todo:
        return stats
    start = time.perf_counter()
    local = address == "local"
    if not ray.is_initialized():
        runtime = {"env_vars": {"PYTHONPATH": str(ROOT)}} if local else None
        ray.init(address=None if local else address, runtime_env=runtime, include_dashboard=False,
                 log_to_driver=False, configure_logging=False)  # fmt: skip
    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True
    context.enable_progress_bars = False
    actors = max(1, args.jobs) if args.jobs > 0 else 1
    window = MotionGPT3Config().max_frames
    dataset = ray.data.from_items([{"index": i, "file": f} for i, f in enumerate(todo)])
    windows = dataset.flat_map(parse_windows, fn_kwargs={"bone_map": args.map, "unit": args.unit, "window": window})
    captioned = windows.map_batches(
        WindowCaptioner,
        fn_constructor_kwargs={"checkpoint": None if args.checkpoint is None else str(args.checkpoint),
                               "device": args.device, "threads": max(1, args.threads), "batch": args.batch},
        batch_size=args.batch,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=actors),
    )  # fmt: skip
    if progress is not None:
        progress.restart()
    for rows in _file_rows(captioned.iter_rows()):
        sink.write(rows)
        stats.files += 1
        failed = bool(rows[0]["error"])
        stats.errors += failed
        stats.segments += 0 if failed else len(rows)
        if failed:
            stats.failed.append(str(rows[0]["file"]))
        if progress is not None:
            progress.update(stats.files, f"{stats.errors} errors" if stats.errors else "")
    stats.seconds = time.perf_counter() - start
    return stats
