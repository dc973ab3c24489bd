"""`motiongpt3 caption` over a library: clips of any length as segments, error rows that never stop the batch, resume
after an interrupt without writing anything twice, standard output when no -o is given (tiny random-weight model)."""

from __future__ import annotations

import csv
import io
import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from reference import CMU_CLIPS, text_of

from backend.cli import main
from backend.cli.library import COLUMNS, RowSink, caption_library

LONG_TAKE_S = 300.0


def looped_take(source: Path, seconds: float) -> str:
    """A CMU clip (20 fps) looped to `seconds`: its hierarchy, then its frame lines repeated."""
    lines = text_of(source).splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("Frame Time"))
    frames = [line for line in lines[at + 1 :] if line.strip()]
    count = int(seconds * 20) + 1
    looped = [frames[k % len(frames)] for k in range(count)]
    header = [f"Frames: {count}" if line.startswith("Frames:") else line for line in lines[: at + 1]]
    return "\n".join(header + looped) + "\n"


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory, cmu_walk) -> Path:
    """50 files: 10 CMU BVH clips (20-43 s), 36 feature clips (2-8 s), a 300 s take, and three that cannot be
    captioned: a truncated BVH, a skeleton no bone map fits, a BVH of a single frame."""
    folder = tmp_path_factory.mktemp("library")
    for path in CMU_CLIPS[::4][:10]:
        (folder / path.name).write_bytes(path.read_bytes())
    features = cmu_walk[0]
    for k in range(36):
        start = (7 * k) % 100
        np.save(folder / f"walk_{k:02d}.npy", features[start : start + 40 + 3 * k])
    (folder / "long_take.bvh").write_text(looped_take(CMU_CLIPS[-1], LONG_TAKE_S))
    text = text_of(CMU_CLIPS[0])
    (folder / "broken.bvh").write_text(text[: len(text) // 2])
    (folder / "unmappable.bvh").write_text(
        "HIERARCHY\nROOT base\n{\n OFFSET 0 0 0\n CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation "
        "Yrotation\n"
        " JOINT arm\n {\n  OFFSET 0 1 0\n  CHANNELS 3 Zrotation Xrotation Yrotation\n  End Site\n  {\n   OFFSET 0 1 0\n"
        "  }\n }\n}\nMOTION\nFrames: 2\nFrame Time: 0.05\n0 0 0 0 0 0 0 0 0\n0 0 0 0 0 0 0 0 0\n"
    )
    lines = text.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("Frame Time"))
    single = [("Frames: 1" if line.startswith("Frames:") else line) for line in lines[: at + 2]]
    (folder / "single_frame.bvh").write_text("\n".join(single) + "\n")
    assert len(list(folder.iterdir())) == 50
    return folder


def rows_of(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def library_run(library, tiny_checkpoint, tmp_path_factory) -> tuple[int, list[dict[str, str]]]:
    out = tmp_path_factory.mktemp("out") / "captions.csv"
    status = main(["caption", str(library), "--checkpoint", str(tiny_checkpoint), "-o", str(out), "--jobs", "1"])
    return status, rows_of(out)


def test_a_library_with_bad_files_gives_a_complete_table(library, library_run):
    status, rows = library_run
    assert status == 1  # some files failed, the batch went on
    files = sorted(str(p) for p in library.iterdir())
    assert list(dict.fromkeys(r["file"] for r in rows)) == files  # every file, in order, none twice
    errors = {Path(r["file"]).name: r["error"] for r in rows if r["error"]}
    assert set(errors) == {"broken.bvh", "unmappable.bvh", "single_frame.bvh"}
    assert "frame lines" in errors["broken.bvh"]  # 'Frames: N' but fewer frame lines: a truncated file
    assert "bone map" in errors["unmappable.bvh"]
    assert "frames" in errors["single_frame.bvh"]
    assert all(not r["caption"] and not r["start_s"] for r in rows if r["error"])
    assert all(r["caption"] and not r["error"] for r in rows if Path(r["file"]).name not in errors)


def test_long_take_is_captioned_in_overlapping_windows_covering_it(library_run):
    _, rows = library_run
    segments = [(float(r["start_s"]), float(r["end_s"])) for r in rows if Path(r["file"]).name == "long_take.bvh"]
    assert len(segments) >= LONG_TAKE_S / 9.8
    assert segments[0][0] == 0.0 and segments[-1][1] == pytest.approx(LONG_TAKE_S, abs=0.06)
    for (a0, a1), (b0, b1) in itertools.pairwise(segments):
        assert a0 < b0 <= a1 < b1  # consecutive windows overlap or meet, and move on
    assert all(0 < b - a <= 9.8 + 1e-9 for a, b in segments)  # each fits the model's window (196 frames)
    short = [r for r in rows if Path(r["file"]).name.startswith("walk_")]
    assert len(short) == 36 and all(float(r["start_s"]) == 0.0 for r in short)  # one segment each


class InterruptError(Exception):
    pass


def test_resume_after_an_interrupt_writes_nothing_twice(library, library_run, tiny_checkpoint, tmp_path):
    from backend import load_model
    from backend.cli.tasks import _window_captioner

    model = load_model(tiny_checkpoint, "cpu")
    plan, caption = _window_captioner(model, 16)
    files = sorted(str(p) for p in library.iterdir())
    calls = {"n": 0}

    def flaky(pieces):
        calls["n"] += 1
        if calls["n"] == 4:
            raise InterruptError  # like Ctrl-C in the middle of the model's fourth batch
        return caption(pieces)

    out = tmp_path / "captions.csv"
    sink = RowSink(out)
    with pytest.raises(InterruptError):
        caption_library(files, sink, plan, flaky, jobs=0)
    sink.close()
    partial = rows_of(out)
    assert 0 < len({r["file"] for r in partial}) < len(files)
    text = out.read_text(encoding="utf-8")
    out.write_text(text[: len(text) - 25], encoding="utf-8")  # and the last row cut off in the middle
    sink = RowSink(out)
    assert len(sink.done) == len({r["file"] for r in partial}) - 1  # the file of the cut row is done again
    stats = caption_library(files, sink, plan, caption, jobs=0)
    sink.close()
    assert stats.skipped == len(sink.done) and stats.files == len(files) - len(sink.done)
    assert rows_of(out) == library_run[1]  # the same table as one uninterrupted run: each row once, in order


def test_resume_refuses_a_table_of_other_columns(tmp_path):
    out = tmp_path / "other.csv"
    out.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match=r"cannot resume.*--fresh"):
        RowSink(out)
    assert RowSink(out, fresh=True).done == set()


def test_caption_without_output_prints_rows(tiny_checkpoint, cmu_walk, tmp_path, capsys):
    clip = tmp_path / "walk.npy"
    np.save(clip, cmu_walk[0][:100])
    assert main(["caption", str(clip), "--checkpoint", str(tiny_checkpoint)]) == 0
    captured = capsys.readouterr()
    rows = list(csv.DictReader(io.StringIO(captured.out)))
    assert tuple(rows[0]) == COLUMNS and len(rows) == 1
    assert rows[0]["file"] == str(clip) and rows[0]["start_s"] == "0.00" and rows[0]["end_s"] == "5.00"
    assert rows[0]["caption"] and "clips/s" in captured.err


def test_json_and_jsonl_tables_hold_the_same_rows(tiny_checkpoint, cmu_walk, tmp_path):
    for k in range(2):
        np.save(tmp_path / f"c{k}.npy", cmu_walk[0][k * 50 : k * 50 + 60])
    inputs = [str(tmp_path / "c0.npy"), str(tmp_path / "c1.npy"), "--checkpoint", str(tiny_checkpoint)]
    assert main(["caption", *inputs, "-o", str(tmp_path / "t.json")]) == 0
    assert main(["caption", *inputs, "-o", str(tmp_path / "t.jsonl")]) == 0
    table = json.loads((tmp_path / "t.json").read_text())
    lines = [json.loads(line) for line in (tmp_path / "t.jsonl").read_text().splitlines()]
    assert table == lines and [r["end_s"] for r in table] == [3.0, 3.0]
    assert main(["caption", *inputs, "-o", str(tmp_path / "t.json")]) == 0  # resumed: nothing to add
    assert json.loads((tmp_path / "t.json").read_text()) == table
