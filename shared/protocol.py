"""The MotionGPT3 wire protocol, version 1: a JSON header frame, raw little-endian array frames, limits.

Every message is one ZeroMQ multipart message:

    frame 0        UTF-8 JSON header {"protocol": 1, "type": ..., "id": ..., "fields": {...},
                                     "arrays": [{"name": ..., "dtype": "<f4", "shape": [T, 263]}, ...]}
    frames 1..n    the raw bytes of each declared array, in declaration order (C order, little-endian)

Nothing is ever pickled; the only array types are float32 ("<f4"), uint8 ("|u1") and bool ("|b1"). `decode_request`
is what a server (and a broker) runs on untrusted input: it checks the framing, the header and every field of the
request's type against explicit `Limits` (and, given a token counter, the text's length in model tokens) and raises
`ProtocolError` (a stable code, a message naming the limit, the offending field, and the id the error may carry)
for anything else. shared/protocol.md is the human-readable contract; tests keep the two in step.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from shared.motion.humanml3d import FEATURE_DIM, FPS
from shared.shot import DEFAULT_SHOT_LIMITS, ShotError, ShotLimits, shot_from_dict

PROTOCOL_VERSION = 1
DEFAULT_ADDRESS = "tcp://127.0.0.1:5555"  # servers bind loopback unless given CURVE keys

# Client -> server. `cancel`'s id is the id of the request to cancel.
JOB_TYPES = ("generate", "caption", "predict", "inbetween", "shot")
REQUEST_TYPES = ("hello", "heartbeat", "echo", "cancel", *JOB_TYPES)
# Server -> client. Every request gets exactly one final reply (heartbeat's reply is a heartbeat);
# a job gets `progress` events before it.
REPLY_TYPES = ("info", "heartbeat", "echo", "progress", "result", "cancelled", "error")
FINAL_REPLY_TYPES = ("info", "echo", "result", "cancelled", "error")

ERROR_CODES = {
    "bad_request": "the message is malformed, or a field is missing, of the wrong type or outside its limit",
    "unknown_type": "the message type is not one this protocol version knows",
    "unsupported_version": "the header's protocol version is not one the server speaks",
    "too_large": "the message, or an array declared in it, is larger than the limit",
    "busy": "the job queue is full; nothing was queued, try again later",
    "unavailable": "no worker is ready to take the job (broker without workers)",
    "internal": "the job failed inside the server; other jobs are unaffected",
    "shutting_down": "the server is stopping; the job was not finished",
    "disconnected": "(raised by the client) the server stopped answering; the job's outcome is unknown",
}

DTYPES = {"<f4": np.dtype("<f4"), "|u1": np.dtype("|u1"), "|b1": np.dtype("|b1")}
REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
TextTokens = Callable[[str], int]  # a text's length in model tokens (ValueError: a text the model cannot take)
Pending = Callable[[str], bool]  # whether the sender has a pending job with this request id
ARRAY_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,31}")
HEADER_KEYS = ("protocol", "type", "id", "fields", "arrays")  # every header has exactly these, in any order
BYTE_ORDER_MARK = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class Limits:
    """What a server accepts. Servers publish theirs in `info`; the frame limits follow the model (20 fps)."""

    max_text_chars: int = 1000  # characters (Unicode code points) of a text, after trimming white space
    max_text_tokens: int = 182  # model tokens of a text (the model's prompt length minus its prompt template)
    max_client_chars: int = 200  # characters of hello's `client`
    min_frames: int = 1  # generated / predicted frames
    max_frames: int = 196  # 9.8 s at 20 fps, the model's longest motion
    min_clip_frames: int = 2  # input clips (caption, predict, inbetween)
    max_clip_frames: int = 196
    max_caption_frames: int = 12_000  # a `caption` clip with `segments` (10 min at 20 fps), captioned in windows
    max_candidates: int = 8
    min_steps: int = 2
    max_steps: int = 1000  # diffusion steps (the model's default is 100)
    max_guidance: float = 20.0
    max_seed: int = 2**32 - 1
    max_header_bytes: int = 65_536
    max_message_bytes: int = 16_777_216  # all frames together (a 12,000-frame clip is 12.6 MB)
    max_arrays: int = 4
    max_array_dims: int = 4
    max_json_depth: int = 16  # nesting of the header's JSON (the header object itself is level 1)
    # Shots (`shot` requests): the fields of `shared.shot.ShotLimits`, under the same names and with its defaults.
    max_shot_seconds: float = DEFAULT_SHOT_LIMITS.max_shot_seconds
    min_segment_seconds: float = DEFAULT_SHOT_LIMITS.min_segment_seconds
    max_segments: int = DEFAULT_SHOT_LIMITS.max_segments
    max_waypoints: int = DEFAULT_SHOT_LIMITS.max_waypoints
    max_paths: int = DEFAULT_SHOT_LIMITS.max_paths
    max_path_points: int = DEFAULT_SHOT_LIMITS.max_path_points
    max_targets: int = DEFAULT_SHOT_LIMITS.max_targets
    max_extent_m: float = DEFAULT_SHOT_LIMITS.max_extent_m
    max_target_height_m: float = DEFAULT_SHOT_LIMITS.max_target_height_m
    max_speed_m_s: float = DEFAULT_SHOT_LIMITS.max_speed_m_s

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def shot_limits(self) -> ShotLimits:
        """The shot part as `ShotLimits`."""
        return ShotLimits(**{name: getattr(self, name) for name in ShotLimits.__dataclass_fields__})

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Limits:
        known = {key: value for key, value in data.items() if key in cls.__dataclass_fields__}
        return cls(**known)


DEFAULT_LIMITS = Limits()
# What a client accepts from a server: results are up to 8 candidates x 1200 frames (a 60 s shot) x 263 float32
# (10.1 MB).
REPLY_LIMITS = Limits(max_header_bytes=1_048_576, max_message_bytes=64 * 1_048_576, max_arrays=16)


@dataclass(frozen=True)
class Message:
    """One protocol message: type, request id, JSON fields and named arrays."""

    type: str
    id: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)


class ProtocolError(ValueError):
    """A message that breaks the protocol; becomes an `error` reply with `code`, `message` and `field`."""

    def __init__(self, code: str, message: str, field: str | None = None, request_id: str | None = None) -> None:
        super().__init__(message)
        if code not in ERROR_CODES:
            raise ValueError(f"unknown error code {code!r}")
        self.code = code
        self.message = message
        self.field = field
        self.request_id = request_id

    def to_message(self) -> Message:
        return error_message(self.code, self.message, self.field, self.request_id)


def error_message(code: str, message: str, field: str | None = None, request_id: str | None = None) -> Message:
    """The `error` reply (code from ERROR_CODES)."""
    if code not in ERROR_CODES:
        raise ValueError(f"unknown error code {code!r}")
    return Message("error", request_id, {"code": code, "message": message, "field": field})


# ----------------------------------------------------------------------------------------------- encoding


def wire_array(array: np.ndarray, name: str = "array") -> np.ndarray:
    """`array` as a C-contiguous little-endian array of a protocol dtype (values unchanged), or ValueError."""
    array = np.asarray(array)
    little = array.astype(array.dtype.newbyteorder("<"), copy=False)
    if little.dtype.str not in DTYPES:
        raise ValueError(f"arrays[{name!r}]: dtype {array.dtype} is not a protocol type (float32, uint8, bool)")
    return np.ascontiguousarray(little)


def encode(message: Message) -> list[bytes]:
    """Message -> [header, array bytes ...]; ValueError for what the protocol cannot carry (NaN in fields ...)."""
    if message.type not in REQUEST_TYPES and message.type not in REPLY_TYPES:
        raise ValueError(f"unknown message type {message.type!r}")
    if message.id is not None and not REQUEST_ID.fullmatch(message.id):
        raise ValueError(f"request id {message.id!r}: 1-64 characters of A-Z a-z 0-9 . _ : -")
    arrays = [(name, wire_array(array, name)) for name, array in message.arrays.items()]
    for name, _ in arrays:
        if not isinstance(name, str) or not ARRAY_NAME.fullmatch(name):
            raise ValueError(f"array name {name!r}: a letter or _, then up to 31 letters, digits or _")
    header = {
        "protocol": PROTOCOL_VERSION,
        "type": message.type,
        "id": message.id,
        "fields": message.fields,
        "arrays": [{"name": name, "dtype": array.dtype.str, "shape": list(array.shape)} for name, array in arrays],
    }
    text = json.dumps(header, allow_nan=False, ensure_ascii=False, separators=(",", ":"))
    return [text.encode("utf-8"), *(array.tobytes() for _, array in arrays)]


# ----------------------------------------------------------------------------------------------- decoding


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:20]} is out of range")
    return value


class _DuplicateKeyError(ValueError):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object's pairs -> dict; a key that appears twice is an error (not "the last one wins")."""
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        duplicate = next(key for key, _ in pairs if key in seen or seen.add(key))
        raise _DuplicateKeyError(duplicate)
    return result


def _check_json_tree(header: dict[str, Any], max_depth: int) -> None:
    """Nesting depth (the header is level 1) and text that UTF-8 can carry (no lone surrogates from \\ud800-style
    escapes, which JSON's grammar allows), over every key and string of the parsed header."""
    stack: list[tuple[Any, int]] = [(header, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict | list):
            if depth > max_depth:
                raise ProtocolError(
                    "bad_request", f"header: JSON nested deeper than {max_depth} levels (max_json_depth)", "header"
                )
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, item in items:
                if isinstance(key, str):
                    _check_unicode(key)
                stack.append((item, depth + 1))
        elif isinstance(value, str):
            _check_unicode(value)


def _check_unicode(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ProtocolError(
            "bad_request", "header: a \\u escape makes a lone surrogate, which is not a Unicode character", "header"
        ) from None


def parse_header(frame: bytes, limits: Limits = DEFAULT_LIMITS) -> dict[str, Any]:
    """The header frame as a JSON object: strict JSON (no NaN / Infinity, no overflowing numbers, no repeated
    keys, no lone surrogates, no byte order mark) nested at most `max_json_depth` levels."""
    header = _parse_json(frame, limits)
    _check_json_tree(header, limits.max_json_depth)
    return header


def _parse_json(frame: bytes, limits: Limits) -> dict[str, Any]:
    """The header frame as a JSON object, strictly parsed (`parse_header` without the checks of the parsed tree)."""
    if len(frame) > limits.max_header_bytes:
        raise ProtocolError(
            "too_large", f"header is {len(frame)} bytes; the limit is {limits.max_header_bytes}", "header"
        )
    if bytes(frame[:3]) == BYTE_ORDER_MARK:
        raise ProtocolError("bad_request", "header: starts with a byte order mark; send UTF-8 without one", "header")
    try:
        text = bytes(frame).decode("utf-8")
        header = json.loads(
            text, parse_constant=_reject_constant, parse_float=_finite_float, object_pairs_hook=_unique_keys
        )
    except UnicodeDecodeError:
        raise ProtocolError("bad_request", "header: not UTF-8 text", "header") from None
    except _DuplicateKeyError as error:
        message = f"header: key {str(error)[:40]!r} appears twice in one object"
        raise ProtocolError("bad_request", message, "header") from None
    except RecursionError:
        message = f"header: JSON nested deeper than {limits.max_json_depth} levels (max_json_depth)"
        raise ProtocolError("bad_request", message, "header") from None
    except ValueError as error:
        raise ProtocolError("bad_request", f"header: invalid JSON ({str(error)[:80]})", "header") from None
    if not isinstance(header, dict):
        raise ProtocolError("bad_request", "header: must be a JSON object", "header")
    return header


def header_id(header: dict[str, Any]) -> str | None:
    """The header's request id when it is a valid one (so that an error can still name its request)."""
    value = header.get("id")
    return value if isinstance(value, str) and REQUEST_ID.fullmatch(value) else None


def reply_id(header: dict[str, Any] | None, pending: Pending | None = None) -> str | None:
    """The id an error about this request carries: the request's own id when it can be read, but never a
    cancel's (it names the job to cancel) nor an id that one of the sender's pending jobs holds (the error would
    read as that job's final reply)."""
    request_id = None if header is None else header_id(header)
    if request_id is None or header.get("type") == "cancel" or (pending is not None and pending(request_id)):
        return None
    return request_id


def _check_envelope(
    header: dict[str, Any], known_types: Sequence[str], other_types: Sequence[str], pending: Pending | None
) -> None:
    """Version, header keys, id (unique among the sender's pending jobs), type, and the fields / arrays containers,
    in that order (the first problem found is the answer)."""
    version = header.get("protocol")
    if type(version) is not int or version != PROTOCOL_VERSION:  # 1.0 and true are not 1
        raise ProtocolError(
            "unsupported_version",
            f"protocol: this side speaks version {PROTOCOL_VERSION}, the message says {str(version)[:20]}",
            "protocol",
        )
    if missing := [key for key in HEADER_KEYS if key not in header]:
        raise ProtocolError("bad_request", f"{missing[0]}: missing; a header has exactly {HEADER_KEYS}", missing[0])
    if unknown := sorted(set(header) - set(HEADER_KEYS)):
        raise ProtocolError("bad_request", f"header: unknown key {unknown[0][:40]!r}", unknown[0][:40])
    raw_id, kind = header["id"], header["type"]
    if raw_id is not None and header_id(header) is None:
        raise ProtocolError("bad_request", "id: 1-64 characters of A-Z a-z 0-9 . _ : -", "id")
    if raw_id is not None and kind != "cancel" and pending is not None and pending(raw_id):
        message = f"id: {raw_id!r} is the id of one of this client's pending requests; pending ids must be unique"
        raise ProtocolError("bad_request", message, "id")
    if kind not in known_types:
        if isinstance(kind, str) and kind in other_types:
            raise ProtocolError("bad_request", f"type: {kind!r} is not sent in this direction", "type")
        raise ProtocolError("unknown_type", f"type: {str(kind)[:40]!r} is not a message type", "type")
    if not isinstance(header["fields"], dict):
        raise ProtocolError("bad_request", "fields: must be a JSON object", "fields")
    if not isinstance(header["arrays"], list):
        raise ProtocolError("bad_request", "arrays: must be a list of {name, dtype, shape}", "arrays")


def _array_declarations(header: dict[str, Any], limits: Limits) -> list[tuple[str, np.dtype, tuple[int, ...]]]:
    declared = header["arrays"]
    if len(declared) > limits.max_arrays:
        raise ProtocolError(
            "bad_request", f"arrays: {len(declared)} declared; the limit is {limits.max_arrays}", "arrays"
        )
    result: list[tuple[str, np.dtype, tuple[int, ...]]] = []
    for index, item in enumerate(declared):
        if not isinstance(item, dict) or set(item) != {"name", "dtype", "shape"}:
            raise ProtocolError("bad_request", f"arrays[{index}]: must have exactly name, dtype and shape", "arrays")
        name, dtype, shape = item["name"], item["dtype"], item["shape"]
        if not isinstance(name, str) or not ARRAY_NAME.fullmatch(name) or name in (r[0] for r in result):
            raise ProtocolError("bad_request", f"arrays[{index}].name: missing, invalid or repeated", "arrays")
        if not isinstance(dtype, str) or dtype not in DTYPES:
            raise ProtocolError("bad_request", f"{name}: dtype {str(dtype)[:20]!r} is not one of {list(DTYPES)}", name)
        if (
            not isinstance(shape, list)
            or not 1 <= len(shape) <= limits.max_array_dims
            or any(not isinstance(n, int) or isinstance(n, bool) or n < 0 for n in shape)
        ):
            raise ProtocolError(
                "bad_request", f"{name}: shape must be 1-{limits.max_array_dims} non-negative integers", name
            )
        if biggest := max((n for n in shape if n > limits.max_message_bytes), default=0):
            raise ProtocolError(
                "too_large",
                f"{name}: dimension {str(biggest)[:24]} is over the limit of {limits.max_message_bytes} "
                "(max_message_bytes)",
                name,
            )
        nbytes = math.prod(shape) * DTYPES[dtype].itemsize  # Python ints: no overflow
        if nbytes > limits.max_message_bytes:
            raise ProtocolError(
                "too_large",
                f"{name}: shape {shape} is {nbytes} bytes; the limit is {limits.max_message_bytes}",
                name,
            )
        result.append((name, DTYPES[dtype], tuple(shape)))
    return result


def _arrays(frames: Sequence[bytes], declared: list[tuple[str, np.dtype, tuple[int, ...]]]) -> dict[str, np.ndarray]:
    if len(frames) != len(declared):
        raise ProtocolError(
            "bad_request", f"arrays: {len(declared)} declared but {len(frames)} array frames sent", "arrays"
        )
    arrays = {}
    for (name, dtype, shape), frame in zip(declared, frames, strict=True):
        expected = math.prod(shape) * dtype.itemsize
        if len(frame) != expected:
            raise ProtocolError(
                "bad_request", f"{name}: frame is {len(frame)} bytes, dtype and shape declare {expected}", name
            )
        if dtype.kind == "b" and len(frame) and np.frombuffer(frame, np.uint8).max() > 1:
            raise ProtocolError("bad_request", f"{name}: bool bytes must be 0 or 1", name)
        arrays[name] = np.frombuffer(frame, dtype).reshape(shape).copy()  # owned and writable
    return arrays


def _read_header(frames: Sequence[bytes], limits: Limits) -> dict[str, Any]:
    """Framing and size, then the header frame (errors here cannot name a request)."""
    if not frames:
        raise ProtocolError("bad_request", "message: no frames", "header")
    size = sum(len(frame) for frame in frames)
    if size > limits.max_message_bytes:
        raise ProtocolError("too_large", f"message is {size} bytes; the limit is {limits.max_message_bytes}")
    return _parse_json(frames[0], limits)


def _decode(
    frames: Sequence[bytes],
    header: dict[str, Any],
    limits: Limits,
    known_types: Sequence[str],
    other_types: Sequence[str],
    pending: Pending | None = None,
) -> Message:
    """The parsed tree, the envelope and the array frames (not the fields)."""
    _check_json_tree(header, limits.max_json_depth)
    _check_envelope(header, known_types, other_types, pending)
    arrays = _arrays(frames[1:], _array_declarations(header, limits))
    return Message(header["type"], header["id"], header["fields"], arrays)


def decode_request(
    frames: Sequence[bytes],
    limits: Limits = DEFAULT_LIMITS,
    *,
    text_tokens: TextTokens | None = None,
    pending: Pending | None = None,
) -> Message:
    """Frames from a client -> a validated request (fields normalised: `seconds` becomes `frames`, defaults filled,
    `known` becomes bool); ProtocolError for anything else, carrying the id its error reply may name (`reply_id`).

    `text_tokens` counts a text's model tokens (ValueError for a text the model cannot take); without it the
    `max_text_tokens` limit is not checked. `pending(id)` says whether the sender has a pending job with that id;
    any other request reusing it is refused."""
    header = None
    try:
        header = _read_header(frames, limits)
        message = _decode(frames, header, limits, REQUEST_TYPES, REPLY_TYPES, pending)
        if message.type != "heartbeat" and message.id is None:
            raise ProtocolError("bad_request", f"id: a {message.type} request needs an id", "id")
        validate = REQUEST_VALIDATORS[message.type]
        fields, arrays = validate(_Fields(message.fields, limits, text_tokens), message.arrays, limits)
    except ProtocolError as error:
        error.request_id = reply_id(header, pending)
        raise
    except Exception as error:  # a bug in validation must still give one typed answer, never silence
        message = f"validating the request failed: {type(error).__name__}: {str(error)[:200]}"
        raise ProtocolError("internal", message, None, reply_id(header, pending)) from error
    return Message(message.type, message.id, fields, arrays)


def decode_reply(frames: Sequence[bytes], limits: Limits = REPLY_LIMITS) -> Message:
    """Frames from a server -> a reply (framing checked; `progress` and `error` fields checked)."""
    header = _read_header(frames, limits)
    try:
        message = _decode(frames, header, limits, REPLY_TYPES, REQUEST_TYPES)
    except ProtocolError as error:
        error.request_id = header_id(header)
        raise
    checker = REPLY_CHECKERS.get(message.type)
    if checker is not None:
        checker(_Fields(message.fields, limits))
    return message


# --------------------------------------------------------------------------------------- field validation

_REQUIRED = object()
_MISSING = object()


def _shown(value: Any) -> str:
    """A value as an error message quotes it (bounded: a 4000-digit integer is not repeated in full)."""
    text = f"{value:g}" if isinstance(value, float) else str(value)
    return text if len(text) <= 24 else text[:20] + "..."


class _Fields:
    """Typed access to a request's `fields`; every problem is a bad_request naming the field. A null field counts
    as absent."""

    def __init__(self, fields: dict[str, Any], limits: Limits, text_tokens: TextTokens | None = None) -> None:
        self.fields = fields
        self.limits = limits
        self.text_tokens = text_tokens
        self.read: set[str] = set()

    def _get(self, name: str, default: Any) -> Any:
        """The value, or _MISSING when absent or null and optional; required and absent is an error."""
        self.read.add(name)
        if self.fields.get(name) is None:
            if default is _REQUIRED:
                raise ProtocolError("bad_request", f"{name}: required", name)
            return _MISSING
        return self.fields[name]

    def has(self, name: str) -> bool:
        return self.fields.get(name) is not None

    def integer(self, name: str, low: int, high: int, default: Any = _REQUIRED) -> int | None:
        value = self._get(name, default)
        if value is _MISSING:
            return default
        if not isinstance(value, int) or isinstance(value, bool):
            raise ProtocolError("bad_request", f"{name}: must be an integer, got {type(value).__name__}", name)
        if not low <= value <= high:
            raise ProtocolError("bad_request", f"{name}: {_shown(value)} is outside {low}..{high}", name)
        return value

    def number(self, name: str, low: float, high: float, default: Any = _REQUIRED) -> float | None:
        value = self._get(name, default)
        if value is _MISSING:
            return default
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise ProtocolError("bad_request", f"{name}: must be a number, got {type(value).__name__}", name)
        if not low <= value <= high:
            raise ProtocolError("bad_request", f"{name}: {_shown(value)} is outside {low:g}..{high:g}", name)
        return float(value)

    def boolean(self, name: str, default: Any = _REQUIRED) -> bool | None:
        value = self._get(name, default)
        if value is _MISSING:
            return default
        if not isinstance(value, bool):
            raise ProtocolError("bad_request", f"{name}: must be true or false, got {type(value).__name__}", name)
        return value

    def text(self, name: str, max_chars: int, default: Any = _REQUIRED, blank_is_absent: bool = False) -> str | None:
        """A string, trimmed of white space, of 1..max_chars characters (blank: absent when `blank_is_absent`)."""
        value = self._get(name, default)
        if value is _MISSING:
            return default
        if not isinstance(value, str):
            raise ProtocolError("bad_request", f"{name}: must be a string, got {type(value).__name__}", name)
        value = value.strip()
        if not value:
            if blank_is_absent:
                return default
            message = f"{name}: empty after trimming white space; it must have 1..{max_chars} characters"
            raise ProtocolError("bad_request", message, name)
        if len(value) > max_chars:
            raise ProtocolError("bad_request", f"{name}: {len(value)} characters; the limit is {max_chars}", name)
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ProtocolError("bad_request", f"{name}: contains unpaired surrogates", name) from None
        return value

    def prompt(self, name: str, default: Any = _REQUIRED) -> str | None:
        """A text the model reads: `text` within max_text_chars and, when a token counter is given, within
        max_text_tokens model tokens. Optional prompts count blank as absent."""
        limits = self.limits
        value = self.text(name, limits.max_text_chars, default, blank_is_absent=default is not _REQUIRED)
        return None if value is None else self.check_tokens(name, value)

    def check_tokens(self, name: str, value: str) -> str:
        """`value` (a trimmed text) within max_text_tokens model tokens, when a token counter is given."""
        limits = self.limits
        if self.text_tokens is None:
            return value
        try:
            tokens = self.text_tokens(value)
        except ValueError as error:
            raise ProtocolError("bad_request", f"{name}: {str(error)[:200]}", name) from None
        if tokens > limits.max_text_tokens:
            message = f"{name}: {tokens} tokens; the limit is {limits.max_text_tokens} (max_text_tokens)"
            raise ProtocolError("bad_request", message, name)
        return value

    def done(self) -> None:
        """Refuse fields this request type does not have (a typo must not be silently ignored)."""
        if unknown := sorted(set(self.fields) - self.read):
            raise ProtocolError("bad_request", f"{unknown[0][:40]}: not a field of this message", unknown[0][:40])


Arrays = dict[str, np.ndarray]
Validator = Callable[[_Fields, Arrays, Limits], tuple[dict[str, Any], Arrays]]


def _expect_arrays(arrays: Arrays, names: Sequence[str]) -> None:
    for name in names:
        if name not in arrays:
            raise ProtocolError("bad_request", f"{name}: required array", name)
    if extra := sorted(set(arrays) - set(names)):
        raise ProtocolError("bad_request", f"{extra[0]}: not an array of this message", extra[0])


def _clip(arrays: Arrays, limits: Limits, name: str = "features", max_frames: int | None = None) -> np.ndarray:
    """A raw (T, 263) float32 feature clip with T within the limits (`max_frames`, else max_clip_frames) and every
    value finite."""
    clip = arrays[name]
    if clip.dtype != np.float32:
        raise ProtocolError("bad_request", f"{name}: dtype must be <f4 (float32), got {clip.dtype.str}", name)
    if clip.ndim != 2 or clip.shape[1] != FEATURE_DIM:
        raise ProtocolError("bad_request", f"{name}: shape must be (T, {FEATURE_DIM}), got {list(clip.shape)}", name)
    longest = limits.max_clip_frames if max_frames is None else max_frames
    if not limits.min_clip_frames <= len(clip) <= longest:
        raise ProtocolError(
            "bad_request", f"{name}: {len(clip)} frames is outside {limits.min_clip_frames}..{longest}", name
        )
    if not np.isfinite(clip).all():
        raise ProtocolError("bad_request", f"{name}: contains NaN or infinite values (input must be finite)", name)
    return clip


def _length(fields: _Fields, limits: Limits) -> int:
    """`frames`, or `seconds` at 20 fps rounded to the nearest frame (exactly one of them), within
    min_frames..max_frames."""
    if fields.has("frames") and fields.has("seconds"):
        raise ProtocolError("bad_request", "seconds: give frames or seconds, not both", "seconds")
    if fields.has("seconds"):
        seconds = fields.number("seconds", -math.inf, math.inf)
        frames = round(seconds * FPS) if abs(seconds) <= 1e9 else None
        if frames is None or not limits.min_frames <= frames <= limits.max_frames:
            raise ProtocolError(
                "bad_request",
                f"seconds: {_shown(seconds)} s is outside {limits.min_frames}..{limits.max_frames} frames at "
                f"{FPS:g} fps ({limits.min_frames / FPS:g}..{limits.max_frames / FPS:g} s)",
                "seconds",
            )
        fields.read.add("frames")
        return frames
    fields.read.add("seconds")
    return fields.integer("frames", limits.min_frames, limits.max_frames)


def _sampling(fields: _Fields, limits: Limits) -> dict[str, Any]:
    """seed, candidates, guidance (None = the model's default) and diffusion steps (None = default)."""
    return {
        "seed": fields.integer("seed", 0, limits.max_seed, 0),
        "candidates": fields.integer("candidates", 1, limits.max_candidates, 1),
        "guidance": fields.number("guidance", 0.0, limits.max_guidance, None),
        "steps": fields.integer("steps", limits.min_steps, limits.max_steps, None),
    }


def _no_payload(fields: _Fields, arrays: Arrays, limits: Limits) -> tuple[dict[str, Any], Arrays]:
    _expect_arrays(arrays, ())
    fields.done()
    return {}, {}


def _hello(fields: _Fields, arrays: Arrays, limits: Limits) -> tuple[dict[str, Any], Arrays]:
    client = fields.text("client", limits.max_client_chars, None, blank_is_absent=True)
    _expect_arrays(arrays, ())
    fields.done()
    return ({} if client is None else {"client": client}), {}


def _echo(fields: _Fields, arrays: Arrays, limits: Limits) -> tuple[dict[str, Any], Arrays]:
    return fields.fields, arrays  # any fields and arrays (NaN included), returned unchanged (framing was checked)


def _generate(fields: _Fields, arrays: Arrays, limits: Limits) -> tuple[dict[str, Any], Arrays]:
    _expect_arrays(arrays, ())
    result = {"text": fields.prompt("text"), "frames": _length(fields, limits)}
    result.update(_sampling(fields, limits))
    fields.done()
    return result, {}


def _caption(fields: _Fields, arrays: Arrays, limits: Limits) -> tuple[dict[str, Any], Arrays]:
    _expect_arrays(arrays, ("features",))
    segments = fields.boolean("segments", False)  # long clips: captioned in windows, time-stamped segments back
    clip = _clip(arrays, limits, max_frames=limits.max_caption_frames if segments else None)
    fields.done()
    return ({"segments": True} if segments else {}), {"features": clip}


def _predict(fields: _Fields, arrays: Arrays, limits: Limits) -> tuple[dict[str, Any], Arrays]:
    _expect_arrays(arrays, ("features",))
    clip = _clip(arrays, limits)
    result = {"frames": _length(fields, limits), **_sampling(fields, limits)}
    fields.done()
    return result, {"features": clip}


def _inbetween(fields: _Fields, arrays: Arrays, limits: Limits) -> tuple[dict[str, Any], Arrays]:
    _expect_arrays(arrays, ("features", "known"))
    clip = _clip(arrays, limits)
    known = arrays["known"]
    if known.dtype.kind not in "bu" or known.shape != (len(clip),):
        raise ProtocolError(
            "bad_request",
            f"known: expected uint8 or bool of shape ({len(clip)},), got {known.dtype.str} {list(known.shape)}",
            "known",
        )
    if known.max() > 1:
        raise ProtocolError("bad_request", "known: values must be 0 or 1", "known")
    if not known.any():
        raise ProtocolError("bad_request", "known: no frame is known; at least 1 must be", "known")
    result = {"text": fields.prompt("text", None), **_sampling(fields, limits)}
    fields.done()
    return result, {"features": clip, "known": known.astype(bool)}


SHOT_FIELDS = ("segments", "waypoints", "paths", "targets")


def _shot(fields: _Fields, arrays: Arrays, limits: Limits) -> tuple[dict[str, Any], Arrays]:
    """A shot: `segments` (required), `waypoints`, `paths`, `targets` as in shared/shot.py, plus the sampling fields;
    normalised to the shot's JSON form (`Shot.to_dict`: every key present, defaults filled) plus seed, candidates,
    guidance, steps."""
    _expect_arrays(arrays, ())
    data = {name: fields.fields[name] for name in SHOT_FIELDS if fields.fields.get(name) is not None}
    fields.read.update(SHOT_FIELDS)
    try:
        shot = shot_from_dict(data, limits.shot_limits())
    except ShotError as error:
        raise ProtocolError("bad_request", error.message, error.field) from None
    for index, segment in enumerate(shot.segments):  # each segment's text is a prompt, like generate's `text`
        name = f"segments[{index}].text"
        if len(segment.text) > limits.max_text_chars:
            message = f"{name}: {len(segment.text)} characters; the limit is {limits.max_text_chars}"
            raise ProtocolError("bad_request", message, name)
        fields.check_tokens(name, segment.text)
    result = {**shot.to_dict(), **_sampling(fields, limits)}
    fields.done()
    return result, {}


REQUEST_VALIDATORS: dict[str, Validator] = {
    "hello": _hello,
    "heartbeat": _no_payload,
    "echo": _echo,
    "cancel": _no_payload,
    "generate": _generate,
    "caption": _caption,
    "predict": _predict,
    "inbetween": _inbetween,
    "shot": _shot,
}


def _check_progress(fields: _Fields) -> None:
    fields.text("stage", 40)
    fields.integer("step", 0, 2**31)
    fields.integer("total", 0, 2**31)
    fields.number("eta_s", 0.0, math.inf, None)


def _check_error(fields: _Fields) -> None:
    fields.text("code", 40)
    fields.text("message", 10_000)
    offending = fields.fields.get("field")  # any string (a refused field's name may be blank), or null
    fields.read.add("field")
    if offending is not None and (not isinstance(offending, str) or len(offending) > 200):
        raise ProtocolError("bad_request", "field: must be null or a string of at most 200 characters", "field")


REPLY_CHECKERS: dict[str, Callable[[_Fields], None]] = {"progress": _check_progress, "error": _check_error}

__all__ = [
    "DEFAULT_ADDRESS",
    "DEFAULT_LIMITS",
    "ERROR_CODES",
    "FEATURE_DIM",
    "FINAL_REPLY_TYPES",
    "JOB_TYPES",
    "PROTOCOL_VERSION",
    "REPLY_TYPES",
    "REQUEST_TYPES",
    "Limits",
    "Message",
    "ProtocolError",
    "decode_reply",
    "decode_request",
    "encode",
    "error_message",
    "parse_header",
]
