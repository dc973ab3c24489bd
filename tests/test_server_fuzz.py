"""Fuzzing the live server with over 10,000 seeded hostile messages: each gets exactly the typed answer that its
construction calls for (code, offending field, request id), nothing is queued, the server survives and then serves
a valid request correctly. Answers on one connection come back in order, so they are matched by position."""

from __future__ import annotations

import json
import random
from collections.abc import Callable

import numpy as np
import zmq
from serving import (
    connected_client,
    model_fixture,  # noqa: F401  (pytest fixture "model")
    oracle_copy,
    running_server,
)

from backend.tasks import inference
from shared.protocol import DEFAULT_LIMITS, REPLY_TYPES, REQUEST_TYPES, Message, decode_reply, encode

SEED = 20240611
MESSAGES = 10_000
CONNECTIONS = 16
IN_FLIGHT = 64  # per connection, well under ZeroMQ's high-water mark
FLOOD_IDENTITIES = 400
WAIT_MS = 30_000

Expected = tuple[str, str | None, str | None]  # reply type or error code, error field, request id
Case = tuple[list[bytes], Expected]


def _header(kind, request_id, fields=None, arrays=(), **extra) -> bytes:
    body = {"protocol": 1, "type": kind, "id": request_id, "fields": fields or {}, "arrays": list(arrays), **extra}
    return json.dumps(body).encode()


def _rid(rng: random.Random) -> str:
    return f"f{rng.getrandbits(40):x}"


def _clip(rng: random.Random, frames: int | None = None) -> np.ndarray:
    frames = rng.randint(2, 30) if frames is None else frames
    return np.full((frames, 263), rng.uniform(-1, 1), np.float32)


def _valid_job(rng: random.Random, request_id: str) -> Message:
    kind = rng.choice(["generate", "caption", "predict", "inbetween"])
    if kind == "generate":
        return Message(kind, request_id, {"text": "a person walks", "frames": rng.randint(1, 196)})
    features = _clip(rng)
    if kind == "caption":
        return Message(kind, request_id, {}, {"features": features})
    if kind == "predict":
        return Message(kind, request_id, {"frames": 10}, {"features": features})
    return Message(kind, request_id, {}, {"features": features, "known": np.ones(len(features), bool)})


# Each generator builds one hostile message and the answer it must get.


def random_frames(rng: random.Random) -> Case:
    first = bytes(rng.choice(b'abc\x00\xff[]1"') for _ in range(rng.randint(0, 60)))  # never starts a JSON object
    frames = [first] + [rng.randbytes(rng.randint(0, 100)) for _ in range(rng.randint(0, 3))]
    return frames, ("bad_request", "header", None)


def truncated_json(rng: random.Random) -> Case:
    whole = encode(_valid_job(rng, _rid(rng)))
    return [whole[0][: rng.randint(1, len(whole[0]) - 1)], *whole[1:]], ("bad_request", "header", None)


def invalid_utf8(rng: random.Random) -> Case:
    header = bytearray(encode(Message("hello", _rid(rng)))[0])
    header[rng.randrange(len(header))] = 0xFF
    return [bytes(header)], ("bad_request", "header", None)


def json_constants(rng: random.Random) -> Case:
    constant = rng.choice(["NaN", "Infinity", "-Infinity", "1e999", "-1e400"])
    text = '{"protocol": 1, "type": "generate", "id": "x", "fields": {"text": "w", "frames": 9, "guidance": %s}}'
    return [(text % constant).encode()], ("bad_request", "header", None)


WRONG_VALUES = {
    "text": [5, True, [], {}, "", "   ", "x" * 1001],
    "frames": ["10", 1.5, True, [], 0, 197, -1, 10**30],
    "seed": ["1", 1.5, True, -1, 2**32, [1]],
    "candidates": ["2", 2.5, True, 0, 9, 10**30],
    "guidance": ["x", True, [], -1, 20.5, 1e9],
    "steps": ["5", 1, 1001, 1.5, True],
}


def wrong_field_types(rng: random.Random) -> Case:
    name = rng.choice(sorted(WRONG_VALUES))
    fields = {"text": "a person walks", "frames": 20, "seed": 1, "candidates": 1, "guidance": 2.0, "steps": 10}
    fields[name] = rng.choice(WRONG_VALUES[name])
    request_id = _rid(rng)
    return [_header("generate", request_id, fields)], ("bad_request", name, request_id)


def unknown_field(rng: random.Random) -> Case:
    request_id = _rid(rng)
    name = rng.choice(["frame", "Text", "temperature", "x" * 30])
    return [_header("generate", request_id, {"text": "w", "frames": 5, name: 1})], ("bad_request", name, request_id)


def non_finite_arrays(rng: random.Random) -> Case:
    request_id = _rid(rng)
    features = _clip(rng)
    features[rng.randrange(len(features)), rng.randrange(263)] = rng.choice([np.nan, np.inf, -np.inf])
    kind = rng.choice(["caption", "predict", "inbetween"])
    fields = {"frames": 5} if kind == "predict" else {}
    arrays = {"features": features}
    if kind == "inbetween":
        arrays["known"] = np.ones(len(features), np.uint8)
    return encode(Message(kind, request_id, fields, arrays)), ("bad_request", "features", request_id)


def absurd_shapes(rng: random.Random) -> Case:
    request_id = _rid(rng)
    shape, code = rng.choice(
        [
            ([2**40, 263], "too_large"),
            ([2**31, 2**31, 2**31], "too_large"),
            ([10**6, 263], "too_large"),
            ([-3, 263], "bad_request"),
            ([], "bad_request"),
            ([1, 1, 1, 1, 1], "bad_request"),
            ([2.5, 263], "bad_request"),
            (["2", 263], "bad_request"),
            ([True, 263], "bad_request"),
            ([rng.randint(2, 30), 263], "bad_request"),  # honest shape, but the frame is a byte short
        ]
    )
    declared = [{"name": "features", "dtype": "<f4", "shape": shape}]
    valid = isinstance(shape, list) and len(shape) == 2 and type(shape[0]) is int and shape[0] > 0
    payload = bytes(shape[0] * 263 * 4 - 1) if valid and shape[0] < 1000 else b"\x00" * 64
    return [_header("caption", request_id, arrays=declared), payload], (code, "features", request_id)


def wrong_dtypes(rng: random.Random) -> Case:
    request_id = _rid(rng)
    dtype = rng.choice(["<f8", ">f4", "<i4", "|O", "<U4", "V8", "float32", "", 7])
    declared = [{"name": "features", "dtype": dtype, "shape": [3, 263]}]
    return [_header("caption", request_id, arrays=declared), bytes(3 * 263 * 4)], (
        "bad_request",
        "features",
        request_id,
    )


def wrong_array_types(rng: random.Random) -> Case:
    """Arrays the protocol carries, but not what the request needs (a uint8 clip, a float mask, wrong lengths)."""
    request_id = _rid(rng)
    features = _clip(rng)
    case = rng.randrange(4)
    if case == 0:
        return encode(Message("caption", request_id, {}, {"features": features.astype(np.uint8)})), (
            "bad_request",
            "features",
            request_id,
        )
    if case == 1:
        arrays = {"features": features, "known": np.ones(len(features), np.float32)}
    elif case == 2:
        arrays = {"features": features, "known": np.ones(len(features) + 1, bool)}
    else:
        arrays = {"features": features, "known": np.zeros(len(features), bool)}
    return encode(Message("inbetween", request_id, {}, arrays)), ("bad_request", "known", request_id)


def frame_count_mismatch(rng: random.Random) -> Case:
    frames = encode(_valid_job(rng, request_id := _rid(rng)))
    if len(frames) > 1 and rng.random() < 0.5:
        frames = frames[:-1]
    else:
        frames = [*frames, rng.randbytes(rng.randint(0, 50))]
    return frames, ("bad_request", "arrays", request_id)


def oversize_limits(rng: random.Random) -> Case:
    request_id = _rid(rng)
    case = rng.randrange(3)
    if case == 0:
        return encode(Message("caption", request_id, {}, {"features": _clip(rng, 197)})), (
            "bad_request",
            "features",
            request_id,
        )
    if case == 1:
        text = "walk " * rng.randint(201, 400)
        return [_header("generate", request_id, {"text": text, "frames": 20})], ("bad_request", "text", request_id)
    return [_header("echo", request_id, {"pad": "x" * 70_000})], ("too_large", "header", None)


def unknown_types(rng: random.Random) -> Case:
    request_id = _rid(rng)
    kind = rng.choice(["dance", "GENERATE", "", "hello ", "exec", "__class__", 17, None, ["generate"]])
    return [_header(kind, request_id)], ("unknown_type", "type", request_id)


def reply_types(rng: random.Random) -> Case:
    request_id = _rid(rng)
    kind = rng.choice([kind for kind in REPLY_TYPES if kind not in REQUEST_TYPES])  # not heartbeat / echo
    return [_header(kind, request_id)], ("bad_request", "type", request_id)


def wrong_versions(rng: random.Random) -> Case:
    request_id = _rid(rng)
    version = rng.choice([0, 2, 99, -1, "1", 1.0, 1.5, None, True, [1], {"v": 1}])
    frames = [_header("generate", request_id, {"text": "w", "frames": 5}, protocol=version)]
    return frames, ("unsupported_version", "protocol", request_id)


def bad_ids(rng: random.Random) -> Case:
    request_id = rng.choice([12, "", "has space", "x" * 65, "ünï", ["a"], {"a": 1}, True])
    return [_header("generate", request_id, {"text": "w", "frames": 5})], ("bad_request", "id", None)


def missing_id(rng: random.Random) -> Case:
    kind = rng.choice(["hello", "echo", "cancel", "generate"])
    return [_header(kind, None, {"text": "w", "frames": 5} if kind == "generate" else {})], ("bad_request", "id", None)


def header_problems(rng: random.Random) -> Case:
    request_id = _rid(rng)
    case = rng.randrange(3)
    if case == 0:
        return [_header("hello", request_id, sneaky=1)], ("bad_request", "sneaky", request_id)
    if case == 1:
        return [_header("hello", request_id, fields=rng.choice([[1], "x", 3]))], ("bad_request", "fields", request_id)
    return [_header("caption", request_id, arrays=rng.choice([{"a": 1}, "x", [1], [{"name": "a"}]]))], (
        "bad_request",
        "arrays",
        request_id,
    )


def oversize_payload(rng: random.Random) -> Case:
    size = rng.randint(DEFAULT_LIMITS.max_message_bytes + 1, 3 * DEFAULT_LIMITS.max_message_bytes)
    return [_header("echo", _rid(rng)), bytes(size)], ("too_large", None, None)


def liveness(rng: random.Random) -> Case:
    """Interleaved valid traffic: heartbeats and hellos are answered normally."""
    if rng.random() < 0.5:
        return encode(Message("heartbeat", None)), ("heartbeat", None, None)
    request_id = _rid(rng)
    return encode(Message("hello", request_id)), ("info", None, request_id)


GENERATORS: list[tuple[Callable[[random.Random], Case], int]] = [
    (random_frames, 12),
    (truncated_json, 10),
    (invalid_utf8, 6),
    (json_constants, 4),
    (wrong_field_types, 14),
    (unknown_field, 4),
    (non_finite_arrays, 8),
    (absurd_shapes, 8),
    (wrong_dtypes, 6),
    (wrong_array_types, 6),
    (frame_count_mismatch, 6),
    (oversize_limits, 3),
    (unknown_types, 5),
    (reply_types, 4),
    (wrong_versions, 6),
    (bad_ids, 4),
    (missing_id, 3),
    (header_problems, 4),
    (liveness, 6),
]


def hostile_messages(seed: int, count: int) -> list[Case]:
    rng = random.Random(seed)
    makers = [maker for maker, weight in GENERATORS for _ in range(weight)]
    cases = [rng.choice(makers)(rng) for _ in range(count)]
    cases += [oversize_payload(rng) for _ in range(8)]  # a few big ones: each is up to 3 MiB
    return cases


def answer_of(message: Message) -> Expected:
    if message.type == "error":
        return message.fields["code"], message.fields["field"], message.id
    return message.type, None, message.id


def exchange(sockets: list[zmq.Socket], cases: list[Case]) -> list[tuple[Expected, Expected]]:
    """Send every case (round-robin over the sockets, a bounded number in flight); (expected, actual) pairs."""
    queues = [cases[i :: len(sockets)] for i in range(len(sockets))]
    pairs = []
    for start in range(0, max(len(q) for q in queues), IN_FLIGHT):
        waiting = []
        for socket, queue in zip(sockets, queues, strict=True):
            chunk = queue[start : start + IN_FLIGHT]
            for frames, _ in chunk:
                socket.send_multipart(frames)
            waiting.append((socket, chunk))
        for socket, chunk in waiting:
            for frames, expected in chunk:
                assert socket.poll(timeout=WAIT_MS), f"no answer to {frames[0][:80]!r}"
                pairs.append((expected, answer_of(decode_reply(socket.recv_multipart()))))
    return pairs


def dealers(context: zmq.Context, address: str, count: int, prefix: str) -> list[zmq.Socket]:
    sockets = []
    for index in range(count):
        socket = context.socket(zmq.DEALER)
        socket.linger = 0
        socket.routing_id = f"{prefix}-{index}".encode()
        socket.connect(address)
        sockets.append(socket)
    return sockets


def test_hostile_messages_get_typed_answers_and_the_server_still_serves(model):
    cases = hostile_messages(SEED, MESSAGES)
    assert len(cases) >= 10_000
    context = zmq.Context()
    with running_server(model) as server:
        try:
            sockets = dealers(context, server.address, CONNECTIONS, "fuzz")
            pairs = exchange(sockets, cases)
            for socket in sockets:
                socket.close()
            # a flood from many identities, a few messages each, all at once
            flood = hostile_messages(SEED + 1, FLOOD_IDENTITIES * 3)
            crowd = dealers(context, server.address, FLOOD_IDENTITIES, "crowd")
            pairs += exchange(crowd, flood)
            for socket in crowd:
                socket.close()
            # a frame far over the limit: ZeroMQ drops that connection (no answer is possible) ...
            (giant,) = dealers(context, server.address, 1, "giant")
            giant.send_multipart([_header("echo", "g"), bytes(5 * DEFAULT_LIMITS.max_message_bytes)])
            assert not giant.poll(timeout=500)
            giant.close()
        finally:
            context.destroy(linger=0)
        mismatches = [(expected, actual) for expected, actual in pairs if expected != actual]
        assert not mismatches, f"{len(mismatches)} wrong answers, e.g. {mismatches[:5]}"
        assert len(pairs) == len(cases) + len(flood)
        assert server.running and server.stats["accepted"] == 0  # nothing hostile was queued
        # ... and the server still serves a valid request correctly.
        with connected_client(server.address) as client:
            event = client.request("generate", {"text": "a person waves", "frames": 24, "seed": 9, "steps": 4})
    expected = inference.text_to_motion(oracle_copy(model), ["a person waves"], 24, 9, steps=4)[0][0]
    assert event.type == "result"
    np.testing.assert_allclose(event.arrays["motions"][0], expected, atol=1e-5)
