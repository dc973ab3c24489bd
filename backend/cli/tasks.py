"""`motiongpt3 generate | caption | predict | inbetween | shot`: the model's tasks on the command line."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

from .motion_io import MOTION_SUFFIXES, motion_files_in, read_motion_file, write_motion_outputs

CAPTION_BATCH = 16  # clips captioned per model call


def _model(args: argparse.Namespace):
    from backend import load_model
    from backend.model.cpu_threads import configure_threads

    configure_threads(getattr(args, "threads", 0))
    return load_model(args.checkpoint, args.device)


def _control():
    from backend.tasks.inference import TaskControl

    def progress(stage: str, done: int, total: int) -> None:
        if done == total or done % max(1, total // 10) == 0:
            print(f"\r  {stage}: {done}/{total}", end="\n" if done == total else "", file=sys.stderr, flush=True)

    return TaskControl(progress=progress)


def _generation_options_of(args: argparse.Namespace) -> dict:
    """The sampling options every generating task takes, from the shared command-line flags."""
    return {
        "seed": args.seed,
        "candidates": args.candidates,
        "guidance": args.guidance,
        "steps": args.steps,
        "control": _control(),
    }


def _output_stems(output: Path, count: int) -> list[Path]:
    stem = output.with_suffix("") if output.suffix.lower() in (".npy", ".bvh") else output
    return [stem] if count == 1 else [stem.with_name(f"{stem.name}_{k + 1}") for k in range(count)]


def _write_all(output: Path, motions: list[np.ndarray], fps: float) -> None:
    for stem, features in zip(_output_stems(output, len(motions)), motions, strict=True):
        paths = write_motion_outputs(stem, features, fps)
        print(f"wrote {', '.join(str(p) for p in paths)} ({len(features)} frames at 20 fps)")


def cmd_generate(args: argparse.Namespace) -> None:
    """Text -> motion(s) of exactly --frames frames."""
    from backend.tasks.inference import text_to_motion

    frames = round(args.seconds * 20) if args.seconds is not None else args.frames
    model = _model(args)
    (motions,) = text_to_motion(model, [args.text], frames, **_generation_options_of(args))
    _write_all(args.output, motions, args.fps)


def _refusal(path: Path, features: np.ndarray, error: Exception) -> ValueError:
    """A task's refusal naming the file and its length (the message names the limit)."""
    return ValueError(f"{path} ({len(features)} frames, {len(features) / 20:g} s at 20 fps): {error}")


def cmd_predict(args: argparse.Namespace) -> None:
    """Continue a clip by --frames frames (a clip longer than the model's window continues from its last window)."""
    from backend.tasks.inference import TaskError
    from backend.tasks.long_clips import predict_long

    features = read_motion_file(args.input, args.map, args.unit)
    model = _model(args)
    try:
        motions = predict_long(model, features, args.frames, **_generation_options_of(args))
    except TaskError as error:
        raise _refusal(args.input, features, error) from None
    _write_all(args.output, motions, args.fps)


def parse_frame_spec(spec: str, frames: int) -> np.ndarray:
    """'0:20,35,60:' -> boolean mask over `frames` (ranges are end-exclusive, negative indices allowed)."""
    mask = np.zeros(frames, dtype=bool)
    for part in (p.strip() for p in spec.split(",") if p.strip()):
        try:
            if ":" in part:
                start, _, end = part.partition(":")
                mask[slice(int(start) if start else None, int(end) if end else None)] = True
            else:
                mask[int(part)] = True
        except (ValueError, IndexError):
            raise argparse.ArgumentTypeError(
                f"--known: bad frame or range {part!r} for a {frames}-frame clip"
            ) from None
    return mask


def cmd_inbetween(args: argparse.Namespace) -> None:
    """Fill the unknown frames of a clip (default: keep the first and last quarter, as upstream)."""
    from backend.tasks.inference import TaskError
    from backend.tasks.long_clips import inbetween_long

    features = read_motion_file(args.input, args.map, args.unit)
    if args.known is None:
        known = np.zeros(len(features), dtype=bool)
        known[: int(0.25 * len(features))] = True
        known[int(0.75 * len(features)) :] = True
    else:
        known = parse_frame_spec(args.known, len(features))
    model = _model(args)
    try:
        motions = inbetween_long(model, features, known, **_generation_options_of(args), text=args.text)
    except TaskError as error:
        raise _refusal(args.input, features, error) from None
    print(f"kept {int(known.sum())} known frames of {len(features)}")
    _write_all(args.output, motions, args.fps)


def read_shot_file(path: Path) -> dict:
    """The JSON object of a shot file (its validation is `shared.shot.shot_request_from_dict`)."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: not a JSON file ({error})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a shot file holds one JSON object, got {type(data).__name__}")
    return data


def cmd_shot(args: argparse.Namespace) -> None:
    """A shot file (segments, waypoints, paths, targets) -> one continuous motion per candidate, and a report."""
    from backend.tasks.shot import shot_to_motion
    from shared.motion.shot_math import constraint_errors
    from shared.shot import ShotError, shot_request_from_dict

    data = read_shot_file(args.input)
    for name in ("seed", "candidates", "guidance", "steps"):  # flags given on the command line win
        if getattr(args, name) is not None:
            data[name] = getattr(args, name)
    try:
        request = shot_request_from_dict(data)
    except ShotError as error:
        raise ValueError(f"{args.input}: {error}") from None
    shot = request.shot
    print(
        f"{len(shot.segments)} segments, {shot.seconds:g} s ({shot.frames} frames at 20 fps); "
        f"{len(shot.waypoints)} waypoints, {len(shot.paths)} paths, {len(shot.targets)} targets"
    )
    model = _model(args)
    motions = shot_to_motion(
        model,
        shot,
        seed=request.seed,
        candidates=request.candidates,
        guidance=request.guidance,
        steps=request.steps,
        control=_control(),
    )
    _write_all(args.output, motions, args.fps)
    report = []
    for stem, motion in zip(_output_stems(args.output, len(motions)), motions, strict=True):
        errors = constraint_errors(motion, shot).to_dict()
        report.append({"motion": str(stem.with_name(stem.name + ".npy")), **errors})
        parts = [f"{key} {', '.join(f'{v:.3f}' for v in values)}" for key, values in errors.items() if values]
        if parts:
            print(f"{stem.name}: " + "; ".join(parts))
    stem = _output_stems(args.output, 1)[0]
    path = stem.with_name(stem.name + "_report.json")
    path.write_text(json.dumps({"shot": shot.to_dict(), "seed": request.seed, "candidates": report}, indent=1) + "\n")
    print(f"wrote {path}")


def cmd_caption(args: argparse.Namespace) -> int:
    """Caption every clip of the inputs (files or folders, any length) as time-stamped segments: one row per segment,
    an error row for a file that cannot be captioned (the others go on), resumable, with a progress bar."""
    from .library import RowSink, caption_library
    from .progress import ProgressBar

    sink = RowSink(args.output, fresh=args.fresh)
    try:
        files = [str(p) for p in motion_files_in(args.inputs)]
        if not files:
            raise ValueError(f"no {' or '.join(MOTION_SUFFIXES)} files in {', '.join(map(str, args.inputs))}")
        todo = sum(1 for f in files if f not in sink.done)
        jobs = args.jobs if args.jobs >= 0 else max(1, (os.cpu_count() or 2) - 1)
        jobs = jobs if todo >= 4 else 0  # a few files: parse them here rather than start processes
        progress = ProgressBar(todo, "files")
        if args.ray is not None:
            from .ray_caption import caption_library_on_ray

            stats = caption_library_on_ray(args.ray, files, sink, args, progress)
        else:
            model = _model(args)
            plan, caption = _window_captioner(model, args.batch)
            stats = caption_library(files, sink, plan, caption, args.map, jobs, args.batch, progress, args.unit)
        progress.close()
    finally:
        sink.close()
    where = args.output if args.output is not None else "standard output"
    print(f"wrote {where}: {stats.summary(jobs if args.ray is None else 0)}", file=sys.stderr)
    for file in stats.failed[:10]:
        print(f"  failed: {file}", file=sys.stderr)
    return 1 if stats.errors else 0


def _window_captioner(model, batch: int):
    """(plan_windows, caption) for `caption_library`: the model's windows of a clip, and batched greedy captions."""
    from backend.tasks.long_clips import caption_window_clips, clip_windows

    def plan(features: np.ndarray) -> list[tuple[int, int]]:
        return [(w.start, w.end) for w in clip_windows(model, features)]

    def caption(pieces: list[np.ndarray]) -> list[str]:
        return caption_window_clips(model, pieces, batch)

    return plan, caption


def add_map_options(parser: argparse.ArgumentParser) -> None:
    """--map and --unit for commands that read BVH files."""
    parser.add_argument(
        "--map", default="auto", help="bone map for BVH input: auto, a bundled name (cmu, cgspeed_daz, ...) or a .json"
    )
    parser.add_argument(
        "--unit",
        default="map",
        help="length unit of BVH input: map (the bone map's unit_to_metres), auto (from the skeleton's size), "
        "m, cm, mm, in, ft, cmu or metres per unit; a skeleton not human-sized in it is refused",
    )


def _model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--checkpoint",
        type=Path,
        default=None,
        help="official .ckpt or our .safetensors (default: embedded demo model)",
    )
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:1 ...")
    parser.add_argument(
        "--threads", type=int, default=0, help="torch CPU threads (0: 1 on machines with <= 2 cores, else torch's)"
    )


def _generation_options(parser: argparse.ArgumentParser) -> None:
    _model_options(parser)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--candidates", type=int, default=1, help="how many different motions to make")
    parser.add_argument(
        "--guidance",
        type=float,
        default=None,
        help="classifier-free guidance scale (default: the model's own; 3.0 demo model, 7.5 official)",
    )
    parser.add_argument("--steps", type=int, default=None, help="diffusion steps (default 100)")
    parser.add_argument("--fps", type=float, default=20.0, help="frame rate of the written joints and BVH")
    parser.add_argument("-o", "--output", type=Path, required=True, help="output stem: writes .npy, _joints.npy, .bvh")


def add_task_commands(commands: argparse._SubParsersAction) -> None:
    """Register the model task subcommands on the `motiongpt3` parser."""
    generate = commands.add_parser("generate", help="text -> motion (.npy features + joints, .bvh)")
    generate.add_argument("text")
    length = generate.add_mutually_exclusive_group()
    length.add_argument("--frames", type=int, default=120, help="exact length in frames at 20 fps (1-196)")
    length.add_argument("--seconds", type=float, default=None, help="length in seconds (x 20 frames)")
    _generation_options(generate)
    generate.set_defaults(run=cmd_generate)

    predict = commands.add_parser("predict", help="continue a motion clip")
    predict.add_argument("input", type=Path, help=".bvh or .npy clip")
    predict.add_argument("--frames", type=int, default=60, help="frames to add (1-196)")
    add_map_options(predict)
    _generation_options(predict)
    predict.set_defaults(run=cmd_predict)

    inbetween = commands.add_parser("inbetween", help="fill the unknown frames of a clip")
    inbetween.add_argument("input", type=Path, help=".bvh or .npy clip")
    inbetween.add_argument(
        "--known", default=None, help="known frames, e.g. '0:20,35,60:' (default: first and last quarter)"
    )
    inbetween.add_argument(
        "--text", default=None, help="what should happen in the filled frames, e.g. 'a person jumps up' (optional)"
    )
    add_map_options(inbetween)
    _generation_options(inbetween)
    inbetween.set_defaults(run=cmd_inbetween)

    shot = commands.add_parser("shot", help="a shot file (prompt segments, waypoints, paths, targets) -> one motion")
    shot.add_argument("input", type=Path, help="shot .json (see README: Shots)")
    _generation_options(shot)
    for action in shot._actions:  # the file's seed / candidates apply unless given here
        if action.dest in ("seed", "candidates"):
            action.default = None
    shot.set_defaults(run=cmd_shot)

    caption = commands.add_parser(
        "caption", help="motion -> text for clips of any length, files or whole folders (resumable)"
    )
    caption.add_argument("inputs", type=Path, nargs="+", help=".bvh / .bvh.gz / .npy files or folders")
    caption.add_argument(
        "-o",
        "--output",
        type=Path,
        default=None,
        help="captions .csv, .jsonl or .json (rows file, start_s, end_s, caption, error); default: CSV on stdout. "
        "An existing table is resumed: its files are skipped",
    )
    caption.add_argument("--fresh", action="store_true", help="start the output table over instead of resuming it")
    add_map_options(caption)
    caption.add_argument(
        "--jobs", type=int, default=-1, help="processes parsing files (default: CPU cores - 1; 0: parse here)"
    )
    caption.add_argument("--batch", type=int, default=CAPTION_BATCH, help="windows captioned per model call")
    caption.add_argument(
        "--ray", default=None, metavar="ADDRESS", help="run on a Ray cluster ('auto', 'local' or ray://host:10001)"
    )
    _model_options(caption)
    caption.set_defaults(run=cmd_caption)
