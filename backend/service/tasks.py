"""Run one micro-batch of validated protocol requests through the model tasks of `backend.tasks.inference`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from backend.model.motiongpt3 import MotionGPT3
from backend.model.tokenizer import PromptTooLongError
from backend.tasks import inference, long_clips, shot
from shared.motion.shot_math import constraint_errors
from shared.protocol import SHOT_FIELDS, Limits, Message
from shared.shot import ShotError, shot_from_dict

Output = tuple[dict[str, Any], dict[str, np.ndarray]]  # result fields, result arrays
TaskRunner = Callable[[MotionGPT3, Sequence[Message], inference.TaskControl], list[Output]]


def model_limits(model: MotionGPT3) -> Limits:
    """The protocol limits this model can serve (lengths at 20 fps, diffusion steps)."""
    config = model.config
    return Limits(
        max_frames=config.max_frames,
        max_clip_frames=config.max_frames,
        max_steps=config.diffusion.num_timesteps,
    )


def _motions(candidates: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
    return {"motions": np.stack(candidates).astype(np.float32)}


def _sampling(fields: dict[str, Any]) -> dict[str, Any]:
    return {key: fields[key] for key in ("seed", "candidates", "guidance", "steps")}


def run_generate(model: MotionGPT3, requests: Sequence[Message], control: inference.TaskControl) -> list[Output]:
    """Any number of prompts with equal candidates / guidance / steps in one call."""
    first = requests[0].fields
    outputs = inference.text_to_motion(
        model,
        [r.fields["text"] for r in requests],
        [r.fields["frames"] for r in requests],
        [r.fields["seed"] for r in requests],
        candidates=first["candidates"],
        guidance=first["guidance"],
        steps=first["steps"],
        control=control,
    )
    return [({}, _motions(candidates)) for candidates in outputs]


def run_caption(model: MotionGPT3, requests: Sequence[Message], control: inference.TaskControl) -> list[Output]:
    """Greedy captions for any number of clips in one call; a request with `segments` gets its clip's windows as
    time-stamped segments (`backend/tasks/long_clips.py`) and their captions joined as `caption`."""
    clips = [r.arrays["features"] for r in requests]
    outputs: list[Output] = []
    for request, segments in zip(requests, long_clips.caption_segments(model, clips, control=control), strict=True):
        if request.fields.get("segments"):
            rows = [{"start_s": s.start_s, "end_s": s.end_s, "caption": s.caption} for s in segments]
            outputs.append(({"caption": long_clips.joined_caption(segments), "segments": rows}, {}))
        else:
            outputs.append(({"caption": segments[0].caption}, {}))
    return outputs


def run_predict(model: MotionGPT3, requests: Sequence[Message], control: inference.TaskControl) -> list[Output]:
    (request,) = requests
    motions = inference.predict(
        model, request.arrays["features"], request.fields["frames"], **_sampling(request.fields), control=control
    )
    return [({}, _motions(motions))]


def run_inbetween(model: MotionGPT3, requests: Sequence[Message], control: inference.TaskControl) -> list[Output]:
    (request,) = requests
    arrays = request.arrays
    motions = inference.inbetween(
        model,
        arrays["features"],
        arrays["known"],
        **_sampling(request.fields),
        control=control,
        text=request.fields.get("text"),
    )
    return [({}, _motions(motions))]


def run_shot(model: MotionGPT3, requests: Sequence[Message], control: inference.TaskControl) -> list[Output]:
    """A shot (validated by the protocol) -> its candidates, with each candidate's constraint errors (metres)."""
    (request,) = requests
    spec = shot_from_dict({name: request.fields[name] for name in SHOT_FIELDS})
    motions = shot.shot_to_motion(model, spec, **_sampling(request.fields), control=control)
    errors = [constraint_errors(m, spec).to_dict() for m in motions] if spec.constrained else []
    return [({"constraint_errors": errors}, _motions(motions))]


TASK_RUNNERS: dict[str, TaskRunner] = {
    "generate": run_generate,
    "caption": run_caption,
    "predict": run_predict,
    "inbetween": run_inbetween,
    "shot": run_shot,
}


def request_error(error: Exception) -> tuple[str, str | None] | None:
    """(message, field) when the model refused the request itself (a bad request); None for a crash."""
    if isinstance(error, PromptTooLongError):
        return str(error), "text"
    if isinstance(error, ShotError):
        return error.message, error.field
    if isinstance(error, inference.TaskError):
        name = str(error).split(":", 1)[0].split("[", 1)[0].split(" ", 1)[0]
        return str(error), name if name.isidentifier() else None
    return None
