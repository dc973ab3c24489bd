"""What the server and the broker do with every client message before anything is acknowledged: one validation
path (`shared.protocol.decode_request` with the model's limits and its token counter) and the answers either side
gives at once (hello, heartbeat, echo), so that a broker answers every message exactly as a server would."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from backend.model.config import MotionGPT3Config
from backend.model.tokenizer import count_text_tokens
from backend.tasks.inference import text_token_budget
from shared.protocol import Limits, Message, Pending, TextTokens, decode_request

# Fields of an `info` reply, server and broker alike (shared/protocol.md, "Replies").
INFO_FIELDS = (
    "server",
    "version",
    "protocol",
    "name",
    "model",
    "parameters",
    "device",
    "tasks",
    "fps",
    "limits",
    "heartbeat_s",
    "queue_size",
    "max_batch",
    "workers",
    "stats",
)


def model_limits(config: MotionGPT3Config) -> Limits:
    """The protocol limits a model can serve: lengths at 20 fps, diffusion steps, and the tokens its prompt
    leaves for a text."""
    return Limits(
        max_text_tokens=text_token_budget(config),
        max_frames=config.max_frames,
        max_clip_frames=config.max_frames,
        max_steps=config.diffusion.num_timesteps,
    )


@dataclass(frozen=True)
class Admission:
    """The checks a request passes before it is answered or queued."""

    limits: Limits
    text_tokens: TextTokens | None = None  # a text's length in model tokens (None: not checked)

    @classmethod
    def for_model(cls, config: MotionGPT3Config, limits: Limits | None = None) -> Admission:
        """The model's limits (or `limits`) with its tokenizer counting texts."""
        return cls(limits or model_limits(config), count_text_tokens)

    def decode(self, body: Sequence[bytes], pending: Pending) -> Message:
        """The validated request, or ProtocolError (its `request_id` is the id the error reply may carry)."""
        return decode_request(body, self.limits, text_tokens=self.text_tokens, pending=pending)


def immediate_reply(request: Message, info: Callable[[], dict[str, Any]]) -> Message | None:
    """The answer to hello, heartbeat or echo (given at once, never queued); None for other requests."""
    if request.type == "hello":
        return Message("info", request.id, info())
    if request.type == "heartbeat":
        return Message("heartbeat", request.id)
    if request.type == "echo":
        return Message("echo", request.id, request.fields, request.arrays)
    return None
