"""`motiongpt3 caption` over clips and whole libraries: files parsed in parallel processes, the windows of all
clips captioned in model batches, one row per segment written as each file completes (resumable), a progress bar."""

from __future__ import annotations

import csv
import io
import json
import multiprocessing
import os
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from .motion_io import read_motion_file
from .progress import ProgressBar

COLUMNS = ("file", "start_s", "end_s", "caption", "error")
OUTPUT_SUFFIXES = (".csv", ".json", ".jsonl")
JSON_SAVE_EVERY_S = 5.0  # a .json table is rewritten whole (atomically) at most this often, and at the end


class OutputError(ValueError):
    """An output table that cannot be written or resumed."""


# ----------------------------------------------------------------------------------------------- parsing


@dataclass(frozen=True)
class ParsedClip:
    """A motion file read as (T, 263) features at 20 fps, or the reason it could not be."""

    file: str
    features: np.ndarray | None
    error: str = ""
    seconds: float = 0.0  # parsing time


def parse_clip(file: str, bone_map: str = "auto", unit: str = "map") -> ParsedClip:
    """Read one motion file for captioning (runs in a worker process; never raises for a bad file)."""
    start = time.perf_counter()
    try:
        features = read_motion_file(Path(file), bone_map, unit)
    except (OSError, ValueError, MemoryError) as error:
        return ParsedClip(file, None, str(error) or type(error).__name__, time.perf_counter() - start)
    return ParsedClip(file, features, "", time.perf_counter() - start)


def parsed_clips(files: Sequence[str], bone_map: str, jobs: int, unit: str = "map") -> Iterator[ParsedClip]:
    """Every file parsed, in order: by `jobs` worker processes (a bounded number in flight), or here when jobs is 0."""
    if jobs <= 0:
        yield from (parse_clip(f, bone_map, unit) for f in files)
        return
    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        in_flight: deque[Future[ParsedClip]] = deque()
        pending = iter(files)
        for file in pending:
            in_flight.append(pool.submit(parse_clip, file, bone_map, unit))
            if len(in_flight) >= 4 * jobs:
                break
        while in_flight:
            yield in_flight.popleft().result()
            for file in pending:
                in_flight.append(pool.submit(parse_clip, file, bone_map, unit))
                break


# ----------------------------------------------------------------------------------------------- rows


def segment_row(file: str, start_s: float, end_s: float, caption: str) -> dict[str, Any]:
    return {"file": file, "start_s": round(start_s, 3), "end_s": round(end_s, 3), "caption": caption, "error": ""}


def error_row(file: str, error: str) -> dict[str, Any]:
    return {"file": file, "start_s": None, "end_s": None, "caption": "", "error": " ".join(error.split())}


def _cell(value: Any) -> str:
    """A CSV cell: seconds with two decimals (feature rows are 0.05 s apart), None as empty."""
    if value is None:
        return ""
    return f"{value:.2f}" if isinstance(value, float | int) and not isinstance(value, bool) else str(value)


def _csv_text(rows: Iterable[dict[str, Any]], header: bool = False) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    if header:
        writer.writeheader()
    writer.writerows({k: _cell(row[k]) for k in COLUMNS} for row in rows)
    return buffer.getvalue()


def _jsonl_text(rows: Iterable[dict[str, Any]]) -> str:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


class RowSink:
    """Where rows go: a .csv / .jsonl table (appended as files complete), a .json table (rewritten atomically), or
    standard output as CSV. An existing table is resumed: its files are `done` and are not captioned again."""

    def __init__(self, path: Path | None, fresh: bool = False, stdout: TextIO | None = None) -> None:
        self.path = path
        self.stdout = stdout if stdout is not None else sys.stdout
        self.kind = "stdout" if path is None else path.suffix.lower()
        if self.kind not in ("stdout", *OUTPUT_SUFFIXES):
            raise OutputError(f"{path}: output must end in .csv, .json or .jsonl")
        self.rows: list[dict[str, Any]] = []  # a .json table's rows
        self.done: set[str] = set()
        self.resumed = 0
        self.handle: TextIO | None = None
        self.saved = time.perf_counter()
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            if path.exists() and not fresh:
                self._resume(path)
            elif path.exists():
                path.unlink()
        if self.kind == "stdout":
            self.stdout.write(_csv_text([], header=True))
        elif self.kind in (".csv", ".jsonl"):
            assert path is not None
            new = not path.exists() or path.stat().st_size == 0
            self.handle = path.open("a", encoding="utf-8", newline="")
            if new and self.kind == ".csv":
                self.handle.write(_csv_text([], header=True))
                self.handle.flush()

    def _resume(self, path: Path) -> None:
        text = path.read_text(encoding="utf-8")
        complete = text if self.kind == ".json" else text[: text.rfind("\n") + 1]
        rows = self._parse(path, complete)
        if complete != text:
            # Interrupted in the middle of a row: drop it and every row of the last file before it (which may be
            # incomplete too); those files are captioned again, nothing is written twice.
            last = rows[-1]["file"] if rows else None
            rows = [r for r in rows if r["file"] != last]
            kept = _csv_text(rows, header=True) if self.kind == ".csv" else _jsonl_text(rows)
            path.write_text(kept, encoding="utf-8")
        self.done = {str(r["file"]) for r in rows}
        self.resumed = len(self.done)
        if self.kind == ".json":
            self.rows = rows

    def _parse(self, path: Path, text: str) -> list[dict[str, Any]]:
        try:
            if self.kind == ".csv":
                reader = csv.DictReader(io.StringIO(text))
                if text and tuple(reader.fieldnames or ()) != COLUMNS:
                    raise OutputError(f"columns {reader.fieldnames}")
                return list(reader)
            if self.kind == ".jsonl":
                return [json.loads(line) for line in text.splitlines() if line.strip()]
            rows = json.loads(text) if text.strip() else []
            if not isinstance(rows, list) or not all(isinstance(r, dict) and "file" in r for r in rows):
                raise OutputError("not a list of rows")
            return rows
        except (ValueError, KeyError) as error:
            raise OutputError(
                f"{path}: cannot resume, not a caption table of this command ({error}); remove it or pass --fresh"
            ) from None

    def write(self, rows: list[dict[str, Any]]) -> None:
        """The rows of one file (written together)."""
        if self.kind == "stdout":
            self.stdout.write(_csv_text(rows))
            self.stdout.flush()
        elif self.kind == ".json":
            self.rows += rows
            if time.perf_counter() - self.saved >= JSON_SAVE_EVERY_S:
                self._save_json()
        else:
            assert self.handle is not None
            self.handle.write(_csv_text(rows) if self.kind == ".csv" else _jsonl_text(rows))
            self.handle.flush()

    def _save_json(self) -> None:
        assert self.path is not None
        temporary = self.path.with_name(self.path.name + ".partial")
        temporary.write_text(json.dumps(self.rows, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        os.replace(temporary, self.path)
        self.saved = time.perf_counter()

    def close(self) -> None:
        if self.kind == ".json":
            self._save_json()
        if self.handle is not None:
            self.handle.close()
            self.handle = None


# ----------------------------------------------------------------------------------------------- captioning


@dataclass
class _Open:
    """A file whose windows are being captioned."""

    file: str
    windows: list[tuple[int, int]]
    captions: list[str | None]
    error: str = ""

    def rows(self) -> list[dict[str, Any]]:
        if self.error:
            return [error_row(self.file, self.error)]
        return [segment_row(self.file, a / 20.0, b / 20.0, c or "") for (a, b), c in zip(self.windows, self.captions,
                                                                                          strict=True)]  # fmt: skip


@dataclass
class LibraryStats:
    files: int = 0
    segments: int = 0
    errors: int = 0
    skipped: int = 0
    seconds: float = 0.0
    parse_seconds: float = 0.0
    model_seconds: float = 0.0
    failed: list[str] = field(default_factory=list)
    engine: str = ""  # where it ran, when not in this process and its workers

    def summary(self, workers: int) -> str:
        per_second = 1.0 / self.seconds if self.seconds > 0 else 0.0
        where = f"in {workers} processes" if workers else "in this process"
        skipped = f"; {self.skipped} files already in the output skipped" if self.skipped else ""
        detail = f"parsing {self.parse_seconds:.1f} s of CPU {where}, model {self.model_seconds:.1f} s"
        return (
            f"{self.files} files ({self.segments} segments, {self.errors} errors) in {self.seconds:.1f} s: "
            f"{self.files * per_second:.2f} clips/s, {self.segments * per_second:.2f} windows/s "
            f"({self.engine or detail}){skipped}"
        )


WindowPlanner = Callable[[np.ndarray], list[tuple[int, int]]]
Captioner = Callable[[list[np.ndarray]], list[str]]


def caption_library(
    files: Sequence[str],
    sink: RowSink,
    plan_windows: WindowPlanner,
    caption: Captioner,
    bone_map: str = "auto",
    jobs: int = 1,
    batch: int = 16,
    progress: ProgressBar | None = None,
    unit: str = "map",
) -> LibraryStats:
    """Caption every file not already in `sink` and write its rows there, in file order, as soon as it is complete.

    `plan_windows(features)` gives a clip's windows (feature rows [start, end)); `caption(pieces)` captions up to
    `batch` windows at once. A file that cannot be read, or whose windows the model refuses, becomes one error row."""
    stats = LibraryStats(skipped=sum(1 for f in files if f in sink.done))
    todo = [f for f in files if f not in sink.done]
    start = time.perf_counter()
    if progress is not None:
        progress.restart()
    order: deque[_Open] = deque()  # files in input order whose rows are not written yet
    pending: list[tuple[_Open, int, np.ndarray]] = []  # windows waiting for the model

    def run_model() -> None:
        chunk, pending[:] = pending[:batch], pending[batch:]
        began = time.perf_counter()
        try:
            captions = caption([piece for _, _, piece in chunk])
        except (ValueError, RuntimeError):  # one bad window must not cost the others: one at a time
            captions = []
            for item, _, piece in chunk:
                try:
                    captions += caption([piece])
                except (ValueError, RuntimeError) as error:
                    item.error = item.error or f"captioning failed: {error}"
                    captions.append("")
        stats.model_seconds += time.perf_counter() - began
        for (item, k, _), text in zip(chunk, captions, strict=True):
            item.captions[k] = text

    def flush_complete() -> None:
        while order and (order[0].error or all(c is not None for c in order[0].captions)):
            item = order.popleft()
            if item.error and any(w is item for w, _, _ in pending):
                pending[:] = [p for p in pending if p[0] is not item]
            rows = item.rows()
            sink.write(rows)
            stats.files += 1
            stats.errors += bool(item.error)
            stats.segments += 0 if item.error else len(rows)
            if item.error:
                stats.failed.append(item.file)
            if progress is not None:
                progress.update(stats.files, f"{stats.errors} errors" if stats.errors else "")

    for parsed in parsed_clips(todo, bone_map, jobs, unit):
        stats.parse_seconds += parsed.seconds
        if parsed.features is None:
            order.append(_Open(parsed.file, [], [], parsed.error))
        else:
            try:
                windows = plan_windows(parsed.features)
            except ValueError as error:
                order.append(_Open(parsed.file, [], [], str(error)))
            else:
                item = _Open(parsed.file, windows, [None] * len(windows))
                order.append(item)
                pending += [(item, k, parsed.features[a:b]) for k, (a, b) in enumerate(windows)]
        while len(pending) >= batch:
            run_model()
        flush_complete()
    while pending:
        run_model()
    flush_complete()
    stats.seconds = time.perf_counter() - start
    return stats
