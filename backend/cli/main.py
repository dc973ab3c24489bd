"""The `motiongpt3` command line: encode BVH to 263-dim features, decode features to BVH/joints, benchmarks."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from backend.eval.evaluate import add_eval_command
from backend.train.cli import add_train_command
from backend.train.demo import add_train_demo_command
from shared.motion.bone_map import BoneMapError
from shared.motion.bvh import BvhError, read_bvh, write_bvh
from shared.motion.bvh_mapping import bone_map_json, bvh_joints_metres, draft_bone_map, parse_unit
from shared.motion.humanml3d import FPS, MotionShapeError
from shared.motion.normalization import suspicious_blocks, zscore_summary
from shared.motion.pipeline import decode_features, encode_joints
from shared.motion.resample import FrameRateError

from .eval_suite import add_eval_suite_command
from .motion_io import load_npy, motion_suffix
from .server import add_server_commands
from .tasks import add_map_options, add_task_commands

USER_ERRORS = (OSError, BvhError, BoneMapError, MotionShapeError, FrameRateError, ValueError)


class UsageError(ValueError):
    """A command-line argument that cannot work (wrong extension, etc.)."""


def cmd_encode(args: argparse.Namespace) -> None:
    """BVH -> SMPL-22 joints (FK, metres, Y-up) -> 20 fps -> (T-1, 263) features."""
    if not args.input.is_file():
        raise FileNotFoundError(f"{args.input}: no such file")
    if motion_suffix(args.input) not in (".bvh", ".bvh.gz"):
        raise UsageError(f"{args.input}: encode reads a .bvh (or .bvh.gz) file")
    clip = read_bvh(args.input)
    joints, bone_map, metres_per_unit = bvh_joints_metres(clip, args.map, parse_unit(args.unit))
    fps = clip.fps
    features = encode_joints(joints, fps)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    np.save(args.output, features)
    print(f"read {args.input}: {clip.num_frames} frames at {fps:.3f} fps ({(clip.num_frames - 1) / fps:.2f} s)")
    print(f"bone map: {bone_map.name}, {metres_per_unit:g} m per file unit")
    print(f"wrote {args.output}: {features.shape[0]} feature rows x {features.shape[1]} at {FPS:g} fps")
    print("z-scores vs HumanML3D Mean/Std (block: mean / std):")
    summary = zscore_summary(features)
    for block in summary:
        print(f"  {block.name:<22} {block.z_mean:+7.2f} / {block.z_std:5.2f}")
    forward = float(features[:, 2].mean())
    print(f"mean forward root velocity: {forward * FPS:+.3f} m/s")
    for warning in suspicious_blocks(summary):
        print(f"warning: {warning}")


def cmd_bonemap(args: argparse.Namespace) -> int:
    """A draft bone map for a BVH skeleton (joint names + hierarchy), unmatched SMPL joints left null."""
    if not args.input.is_file():
        raise FileNotFoundError(f"{args.input}: no such file")
    clip = read_bvh(args.input)
    name = args.output.stem if args.output is not None else "draft"
    data, unmatched = draft_bone_map(clip, name)
    text = bone_map_json(data)
    if args.output is None:
        sys.stdout.write(text)
    else:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text, encoding="utf-8")
        print(f"wrote {args.output}: {22 - len(unmatched)} of 22 SMPL joints mapped ({data['description']})")
    if unmatched:
        print(
            f"unmatched (null in the map; set each to one of the skeleton's joints, listed under bvh_joints): "
            f"{', '.join(unmatched)}",
            file=sys.stderr,
        )
        return 1
    return 0


def cmd_decode(args: argparse.Namespace) -> None:
    """(N, 263) features -> joints -> rotations -> BVH (or joints .npy), at --fps."""
    suffix = args.output.suffix.lower()
    if suffix not in (".bvh", ".npy"):
        raise UsageError(f"{args.output}: output must end in .bvh or .npy")
    features = load_npy(args.input)
    decoded = decode_features(features, fps=args.fps)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".npy":
        np.save(args.output, decoded.joints.astype(np.float32))
    else:
        write_bvh(args.output, decoded.local_rotations, decoded.root_positions, decoded.rest_offsets, fps=args.fps)
    travel = np.linalg.norm(decoded.joints[-1, 0, [0, 2]] - decoded.joints[0, 0, [0, 2]])
    print(f"read {args.input}: {features.shape[0]} feature rows at {FPS:g} fps")
    print(f"wrote {args.output}: {len(decoded.joints)} frames at {args.fps:g} fps, root travelled {travel:.2f} m")


def cmd_bench(args: argparse.Namespace) -> None:
    from backend.bench.model import run_model_benchmark
    from backend.bench.motion import run_motion_benchmark
    from backend.bench.server import run_server_benchmark

    if args.suite == "shot":
        from backend.bench.shot import run_shot_benchmark
        from backend.model.cpu_threads import configure_threads

        configure_threads(args.threads)
        seeds = [int(s) for s in args.seeds.split(",") if s]
        scenarios = [s for s in args.scenarios.split(",") if s]
        run_shot_benchmark(args.checkpoint, args.device, seeds, scenarios, args.json)
        return
    if args.suite == "train":
        from backend.bench.train import run_train_benchmark
        from backend.model.cpu_threads import configure_threads

        configure_threads(args.threads)
        run_train_benchmark(args.checkpoint, min(args.repeats, 30), args.json)
        return
    if args.suite == "motion":
        run_motion_benchmark(frames=args.frames, repeats=args.repeats)
    elif args.suite == "server":
        run_server_benchmark(args.checkpoint, args.device, frames=args.frames, soak=args.soak, clients=args.clients)
    else:
        from backend.model.cpu_threads import configure_threads

        configure_threads(args.threads)
        presets = ["official", "demo"] if args.preset == "all" else args.preset.split(",")
        run_model_benchmark(
            presets,
            args.device,
            args.json,
            frames=args.frames,
            repeats=min(args.repeats, 5),
            batches=[int(b) for b in args.batches.split(",") if b],
            caption_tokens=args.caption_tokens,
            baseline=not args.no_baseline,
            checkpoint=None if args.checkpoint is None else str(args.checkpoint),
            int8=args.int8,
        )


def _positive_fps(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--fps: expected a number, got {text!r}") from None
    if not np.isfinite(value) or not 1.0 <= value <= 1000.0:
        raise argparse.ArgumentTypeError(f"--fps: must be between 1 and 1000, got {value:g}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="motiongpt3", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    encode = commands.add_parser("encode", help="BVH -> (T-1, 263) HumanML3D features (.npy)")
    encode.add_argument("input", type=Path, help="BVH file of a mapped skeleton")
    encode.add_argument("-o", "--output", type=Path, required=True, help="features .npy to write")
    add_map_options(encode)
    encode.set_defaults(run=cmd_encode)

    bonemap = commands.add_parser("bonemap", help="draft a bone map (JSON) for a BVH skeleton no preset fits")
    bonemap.add_argument("input", type=Path, help="BVH file")
    bonemap.add_argument("-o", "--output", type=Path, default=None, help="map .json to write (default: stdout)")
    bonemap.set_defaults(run=cmd_bonemap)

    decode = commands.add_parser("decode", help="(N, 263) features -> BVH or joints .npy")
    decode.add_argument("input", type=Path, help="features .npy (un-normalised, 20 fps)")
    decode.add_argument("-o", "--output", type=Path, required=True, help=".bvh (rotations) or .npy (joints)")
    decode.add_argument("--fps", type=_positive_fps, default=FPS, help="output frame rate (default 20)")
    decode.set_defaults(run=cmd_decode)

    add_task_commands(commands)
    add_server_commands(commands)
    add_eval_command(commands)
    add_eval_suite_command(commands)
    add_train_command(commands)
    add_train_demo_command(commands)

    bench = commands.add_parser("bench", help="benchmarks (prints numbers)")
    bench.add_argument("suite", choices=["motion", "model", "server", "shot", "train"], help="which benchmark")
    bench.add_argument(
        "--preset", default="official", help="`bench model`: preset(s), comma-separated (official, demo, tiny) or all"
    )
    bench.add_argument("--device", default="auto", help="device for `bench model`")
    bench.add_argument("--frames", type=int, default=196)
    bench.add_argument(
        "--repeats",
        type=int,
        default=200,
        help="runs to take the median of (model: at most 5; train: timed steps per stage, at most 30)",
    )
    bench.add_argument(
        "--checkpoint", type=Path, default=None, help="model weights (default: random weights; server: demo model)"
    )
    bench.add_argument("--batches", default="1,8,64", help="`bench model`: batch sizes for the throughput runs")
    bench.add_argument("--caption-tokens", type=int, default=40, help="`bench model`: new tokens per caption")
    bench.add_argument("--no-baseline", action="store_true", help="`bench model`: skip the straightforward path")
    bench.add_argument("--int8", action="store_true", help="`bench model`: int8 dynamic quantisation (CPU, opt-in)")
    bench.add_argument(
        "--threads", type=int, default=0, help="`bench model`: torch CPU threads (0: 1 on machines with <= 2 cores)"
    )
    bench.add_argument("--json", type=Path, default=None, help="`bench model` / `bench shot`: also write JSON")
    bench.add_argument("--seeds", default="0,1,2,3,4", help="`bench shot`: seeds, comma-separated")
    bench.add_argument(
        "--scenarios",
        default="waypoints,path,reach,readme,suite",
        help="`bench shot`: scenarios (waypoints adds natural; suite: the paraphrase suite's prompts in sequence)",
    )
    bench.add_argument("--clients", type=int, default=8, help="`bench server`: concurrent clients")
    bench.add_argument("--soak", type=int, default=1000, help="`bench server`: requests in the memory soak")
    bench.set_defaults(run=cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        status = args.run(args)
    except USER_ERRORS as error:
        print(f"motiongpt3 {args.command}: error: {error}", file=sys.stderr)
        return 2
    return int(status or 0)
