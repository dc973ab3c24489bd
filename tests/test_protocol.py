"""The wire contract without a network: exact frames, array round trips (dtype, shape, byte order), validation."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from shared.protocol import (
    DEFAULT_LIMITS,
    ERROR_CODES,
    REPLY_TYPES,
    REQUEST_TYPES,
    Limits,
    Message,
    ProtocolError,
    decode_reply,
    decode_request,
    encode,
)


def header(kind: str = "generate", request_id: str | None = "r1", fields=None, arrays=(), **extra) -> bytes:
    body = {"protocol": 1, "type": kind, "id": request_id, "fields": fields or {}, "arrays": list(arrays), **extra}
    return json.dumps(body).encode()


def features(frames: int = 4, value: float = 0.25) -> np.ndarray:
    return np.full((frames, 263), value, dtype=np.float32)


def refused(frames: list[bytes], limits: Limits = DEFAULT_LIMITS) -> ProtocolError:
    with pytest.raises(ProtocolError) as caught:
        decode_request(frames, limits)
    assert caught.value.code in ERROR_CODES
    return caught.value


# ----------------------------------------------------------------------------------------------- frames


def test_a_generate_request_is_one_json_header_frame():
    frames = encode(Message("generate", "abc", {"text": "walk", "frames": 60, "seed": 7}))
    assert len(frames) == 1
    assert json.loads(frames[0].decode("utf-8")) == {
        "protocol": 1,
        "type": "generate",
        "id": "abc",
        "fields": {"text": "walk", "frames": 60, "seed": 7},
        "arrays": [],
    }


def test_array_frames_are_the_raw_little_endian_bytes_declared_in_the_header():
    values = [1.0, -2.5, 3.25e-3, 1e6]
    array = np.array(values, dtype=np.float32).reshape(2, 2)
    frames = encode(Message("echo", "x", {}, {"a": array}))
    assert json.loads(frames[0])["arrays"] == [{"name": "a", "dtype": "<f4", "shape": [2, 2]}]
    assert frames[1] == struct.pack("<4f", *values)


def test_big_endian_input_goes_out_little_endian_with_the_same_values():
    values = [0.5, -1.75, 1e-20, 3.0e8, -0.0, 7.0]
    big = np.array(values, dtype=">f4").reshape(3, 2)
    frames = encode(Message("echo", "x", {}, {"a": big}))
    assert frames[1] == struct.pack("<6f", *values)
    back = decode_request(frames).arrays["a"]
    assert back.dtype.str == "<f4" and back.shape == (3, 2)
    assert back.tobytes() == struct.pack("<6f", *values)


def test_hand_built_frames_decode_to_the_declared_array():
    values = [float(i) / 8 for i in range(2 * 263)]
    declared = [{"name": "features", "dtype": "<f4", "shape": [2, 263]}]
    message = decode_request([header("caption", "c1", arrays=declared), struct.pack("<526f", *values)])
    assert message.type == "caption" and message.id == "c1"
    np.testing.assert_array_equal(message.arrays["features"], np.array(values, np.float32).reshape(2, 263))


def test_decoded_arrays_are_owned_and_writable():
    message = decode_request(encode(Message("echo", "x", {}, {"a": np.arange(3, dtype=np.uint8)})))
    message.arrays["a"][0] = 9
    assert message.arrays["a"].tolist() == [9, 1, 2]


EXAMPLES = {  # one message of every type, with arrays where the type carries them
    "hello": Message("hello", "h1", {"client": "tests"}),
    "heartbeat": Message("heartbeat", None),
    "echo": Message("echo", "e1", {"any": [1, "two"]}, {"x": features(3), "m": np.array([1, 0, 1], np.uint8)}),
    "cancel": Message("cancel", "g1"),
    "generate": Message("generate", "g1", {"text": "a person jumps", "frames": 30, "seed": 3, "candidates": 2}),
    "caption": Message("caption", "c1", {}, {"features": features(20)}),
    "predict": Message("predict", "p1", {"frames": 10, "seed": 1}, {"features": features(12)}),
    "inbetween": Message(
        "inbetween",
        "i1",
        {"text": "a person jumps", "candidates": 2},
        {"features": features(8), "known": np.array([1, 1, 0, 0, 0, 0, 1, 1], bool)},
    ),
    "shot": Message(
        "shot",
        "s1",
        {
            "segments": [{"text": "a person walks", "seconds": 6.0}, {"text": "a person waves", "seconds": 2.5}],
            "waypoints": [{"time": 5.0, "position": [1.0, 4.0], "arrive": False, "facing": 90.0}],
            "paths": [{"start": 1.0, "end": 4.0, "points": [[0.0, 0.5], [0.5, 2.0], [1.0, 3.5]]}],
            "targets": [{"joint": "right_hand", "time": 7.0, "position": [1.2, 1.6, 4.3]}],
            "seed": 9,
            "candidates": 2,
        },
    ),
    "info": Message("info", "h1", {"server": "motiongpt3", "protocol": 1, "limits": DEFAULT_LIMITS.to_dict()}),
    "progress": Message("progress", "g1", {"stage": "diffusion", "step": 3, "total": 100, "eta_s": 0.5}),
    "result": Message("result", "g1", {"fps": 20.0}, {"motions": np.ones((2, 30, 263), np.float32)}),
    "cancelled": Message("cancelled", "g1", {"stage": "queued"}),
    "error": Message("error", "g1", {"code": "busy", "message": "queue full", "field": None}),
}


def test_the_examples_cover_every_message_type():
    assert set(EXAMPLES) == set(REQUEST_TYPES) | set(REPLY_TYPES)


@pytest.mark.parametrize("kind", sorted(EXAMPLES))
def test_every_message_type_round_trips_exactly(kind):
    message = EXAMPLES[kind]
    decode = decode_request if kind in REQUEST_TYPES else decode_reply
    back = decode(encode(message))
    assert (back.type, back.id) == (message.type, message.id)
    assert set(back.arrays) == set(message.arrays)
    for name, array in message.arrays.items():
        expected = np.asarray(array)
        assert back.arrays[name].dtype.str == expected.dtype.newbyteorder("<").str
        assert back.arrays[name].shape == expected.shape
        assert back.arrays[name].tobytes() == expected.astype(expected.dtype.newbyteorder("<")).tobytes()
    for key, value in message.fields.items():
        assert back.fields[key] == value


def test_requests_are_normalised_with_defaults_and_seconds_as_frames():
    message = decode_request(encode(Message("generate", "g", {"text": "  walk  ", "seconds": 2.5})))
    assert message.fields == {"text": "walk", "frames": 50, "seed": 0, "candidates": 1, "guidance": None, "steps": None}
    known = np.array([1, 0, 1], np.uint8)
    inbetween = decode_request(encode(Message("inbetween", "i", {}, {"features": features(3), "known": known})))
    assert inbetween.arrays["known"].dtype == bool and inbetween.arrays["known"].tolist() == [True, False, True]
    assert inbetween.fields == {"text": None, "seed": 0, "candidates": 1, "guidance": None, "steps": None}


@pytest.mark.parametrize(("sent", "decoded"), [(" a person jumps \n", "a person jumps"), ("", None), (" \n ", None)])
def test_inbetween_text_is_trimmed_and_blank_counts_as_absent(sent, decoded):
    arrays = {"features": features(3), "known": np.array([1, 0, 1], bool)}
    message = decode_request(encode(Message("inbetween", "i", {"text": sent, "seed": 2}, arrays)))
    assert message.fields["text"] == decoded and message.fields["seed"] == 2


# ----------------------------------------------------------------------------------------------- limits

LIMIT_CASES = [  # (type, fields, arrays, expected error (code, field) or None when accepted)
    ("generate", {"text": "w", "frames": 1}, {}, None),
    ("generate", {"text": "w", "frames": 196}, {}, None),
    ("generate", {"text": "w", "frames": 0}, {}, ("bad_request", "frames")),
    ("generate", {"text": "w", "frames": 197}, {}, ("bad_request", "frames")),
    ("generate", {"text": "w", "frames": 60.0}, {}, ("bad_request", "frames")),
    ("generate", {"text": "w", "frames": "60"}, {}, ("bad_request", "frames")),
    ("generate", {"text": "w"}, {}, ("bad_request", "frames")),
    ("generate", {"text": "w", "seconds": 9.8}, {}, None),
    ("generate", {"text": "w", "seconds": 9.9}, {}, ("bad_request", "seconds")),
    ("generate", {"text": "w", "seconds": 0.01}, {}, ("bad_request", "seconds")),
    ("generate", {"text": "w", "frames": 20, "seconds": 1.0}, {}, ("bad_request", "seconds")),
    ("generate", {"text": "w", "frames": 20, "candidates": 8}, {}, None),
    ("generate", {"text": "w", "frames": 20, "candidates": 9}, {}, ("bad_request", "candidates")),
    ("generate", {"text": "w", "frames": 20, "candidates": 0}, {}, ("bad_request", "candidates")),
    ("generate", {"text": "", "frames": 20}, {}, ("bad_request", "text")),
    ("generate", {"text": " \n ", "frames": 20}, {}, ("bad_request", "text")),
    ("generate", {"text": "x" * 1000, "frames": 20}, {}, None),
    ("generate", {"text": "x" * 1001, "frames": 20}, {}, ("bad_request", "text")),
    ("generate", {"text": 5, "frames": 20}, {}, ("bad_request", "text")),
    ("generate", {"frames": 20}, {}, ("bad_request", "text")),
    ("generate", {"text": "w", "frames": 20, "seed": 2**32 - 1}, {}, None),
    ("generate", {"text": "w", "frames": 20, "seed": 2**32}, {}, ("bad_request", "seed")),
    ("generate", {"text": "w", "frames": 20, "seed": -1}, {}, ("bad_request", "seed")),
    ("generate", {"text": "w", "frames": 20, "seed": True}, {}, ("bad_request", "seed")),
    ("generate", {"text": "w", "frames": 20, "guidance": 20}, {}, None),
    ("generate", {"text": "w", "frames": 20, "guidance": 20.5}, {}, ("bad_request", "guidance")),
    ("generate", {"text": "w", "frames": 20, "guidance": "high"}, {}, ("bad_request", "guidance")),
    ("generate", {"text": "w", "frames": 20, "steps": 2}, {}, None),
    ("generate", {"text": "w", "frames": 20, "steps": 1}, {}, ("bad_request", "steps")),
    ("generate", {"text": "w", "frame": 20}, {}, ("bad_request", "frames")),
    ("generate", {"text": "w", "frames": 20, "frame": 20}, {}, ("bad_request", "frame")),
    ("generate", {"text": "w", "frames": 20}, {"features": features(2)}, ("bad_request", "features")),
    ("caption", {}, {"features": features(2)}, None),
    ("caption", {}, {"features": features(196)}, None),
    ("caption", {}, {"features": features(1)}, ("bad_request", "features")),
    ("caption", {}, {"features": features(197)}, ("bad_request", "features")),
    ("caption", {}, {"features": np.zeros((5, 262), np.float32)}, ("bad_request", "features")),
    ("caption", {}, {"features": np.zeros(263, np.float32)}, ("bad_request", "features")),
    ("caption", {}, {"features": np.zeros((5, 263), np.uint8)}, ("bad_request", "features")),
    ("caption", {}, {"features": features(5, np.nan)}, ("bad_request", "features")),
    ("caption", {}, {"features": features(5, np.inf)}, ("bad_request", "features")),
    ("caption", {}, {}, ("bad_request", "features")),
    ("caption", {"text": "x"}, {"features": features(5)}, ("bad_request", "text")),
    ("predict", {"frames": 10}, {"features": features(5)}, None),
    ("predict", {}, {"features": features(5)}, ("bad_request", "frames")),
    ("inbetween", {}, {"features": features(3), "known": np.array([1, 0, 1], bool)}, None),
    ("inbetween", {}, {"features": features(3), "known": np.array([1, 0], bool)}, ("bad_request", "known")),
    ("inbetween", {}, {"features": features(3), "known": np.zeros(3, bool)}, ("bad_request", "known")),
    ("inbetween", {}, {"features": features(3), "known": np.array([1, 2, 1], np.uint8)}, ("bad_request", "known")),
    ("inbetween", {}, {"features": features(3), "known": np.ones(3, np.float32)}, ("bad_request", "known")),
    ("inbetween", {}, {"features": features(3)}, ("bad_request", "known")),
    ("inbetween", {"text": "a person jumps"}, {"features": features(3), "known": np.array([1, 0, 1], bool)}, None),
    ("inbetween", {"text": "x" * 1000}, {"features": features(3), "known": np.array([1, 0, 1], bool)}, None),
    (
        "inbetween",
        {"text": "x" * 1001},
        {"features": features(3), "known": np.array([1, 0, 1], bool)},
        ("bad_request", "text"),
    ),
    ("inbetween", {"text": 5}, {"features": features(3), "known": np.array([1, 0, 1], bool)}, ("bad_request", "text")),
    ("inbetween", {"txt": "a"}, {"features": features(3), "known": np.array([1, 0, 1], bool)}, ("bad_request", "txt")),
    ("hello", {"client": "x"}, {}, None),
    ("hello", {"mode": "x"}, {}, ("bad_request", "mode")),
    ("heartbeat", {}, {}, None),
    ("cancel", {}, {"x": features(2)}, ("bad_request", "x")),
]


@pytest.mark.parametrize(("kind", "fields", "arrays", "expected"), LIMIT_CASES)
def test_limits(kind, fields, arrays, expected):
    frames = encode(Message(kind, "r7", fields, arrays))
    if expected is None:
        assert decode_request(frames).type == kind
    else:
        error = refused(frames)
        assert (error.code, error.field) == expected
        assert error.request_id == "r7"  # the error names its request


def test_text_with_an_unpaired_surrogate_is_refused():
    # json.dumps escapes it as \ud800, which JSON allows but UTF-8 cannot carry to the tokenizer
    error = refused([header("generate", "r", {"text": "walk \ud800", "frames": 20})])
    assert (error.code, error.field) == ("bad_request", "text")


def test_a_limit_error_states_the_limit():
    error = refused(encode(Message("generate", "r", {"text": "w", "frames": 197})))
    assert "1..196" in error.message
    error = refused(encode(Message("generate", "r", {"text": "w", "frames": 9, "candidates": 9})))
    assert "1..8" in error.message


def test_job_requests_need_an_id():
    error = refused([header("generate", None, {"text": "w", "frames": 9})])
    assert (error.code, error.field) == ("bad_request", "id")


# ----------------------------------------------------------------------------------------------- framing

ONE_ROW = [{"name": "features", "dtype": "<f4", "shape": [2, 263]}]
ROW_BYTES = bytes(2 * 263 * 4)

FRAMING_CASES = [  # (frames, (code, field))
    ([b""], ("bad_request", "header")),
    ([b"\xff\xfe"], ("bad_request", "header")),
    ([b'{"protocol": 1, "type": "hello"'], ("bad_request", "header")),
    ([b"[1, 2]"], ("bad_request", "header")),
    ([b'{"protocol": 1, "type": "hello", "id": "h", "fields": {"x": NaN}}'], ("bad_request", "header")),
    ([b'{"protocol": 1, "type": "hello", "id": "h", "fields": {"x": 1e999}}'], ("bad_request", "header")),
    ([b"[" * 5000 + b"]" * 5000], ("bad_request", "header")),
    ([header(protocol=2)], ("unsupported_version", "protocol")),
    ([json.dumps({"type": "hello", "id": "h"}).encode()], ("unsupported_version", "protocol")),
    ([header("hello", protocol=True)], ("unsupported_version", "protocol")),
    ([header("hello", protocol="1")], ("unsupported_version", "protocol")),
    ([header("hello", protocol=1.0)], ("unsupported_version", "protocol")),
    ([header("dance")], ("unknown_type", "type")),
    ([header(None)], ("unknown_type", "type")),
    ([header("result")], ("bad_request", "type")),
    ([header("hello", 12)], ("bad_request", "id")),
    ([header("hello", "white space")], ("bad_request", "id")),
    ([header("hello", "x" * 65)], ("bad_request", "id")),
    ([header("hello", extra_key=1)], ("bad_request", "extra_key")),
    ([header("hello", fields=[1])], ("bad_request", "fields")),
    ([header("caption", arrays=ONE_ROW)], ("bad_request", "arrays")),
    ([header("caption", arrays=ONE_ROW), ROW_BYTES, ROW_BYTES], ("bad_request", "arrays")),
    ([header("caption", arrays=ONE_ROW), ROW_BYTES[:-1]], ("bad_request", "features")),
    ([header("caption", arrays=[{"name": "features", "dtype": "<f8", "shape": [2, 263]}]), ROW_BYTES * 2], None),
    ([header("caption", arrays=[{"name": "features", "dtype": ">f4", "shape": [2, 263]}]), ROW_BYTES], None),
    ([header("caption", arrays=[{"name": "features", "dtype": "|O", "shape": [2, 263]}]), ROW_BYTES], None),
    ([header("caption", arrays=[{"name": "features", "dtype": "<f4", "shape": [-2, 263]}]), ROW_BYTES], None),
    ([header("caption", arrays=[{"name": "features", "dtype": "<f4", "shape": [1, 1, 1, 1, 1]}]), ROW_BYTES], None),
    ([header("caption", arrays=[{"name": "features", "dtype": "<f4", "shape": []}]), ROW_BYTES], None),
    ([header("caption", arrays=[{"name": "features", "dtype": "<f4", "shape": [2.0, 263]}]), ROW_BYTES], None),
    ([header("caption", arrays=[{"name": "features", "dtype": "<f4"}]), ROW_BYTES], ("bad_request", "arrays")),
    ([header("caption", arrays=ONE_ROW * 2), ROW_BYTES, ROW_BYTES], ("bad_request", "arrays")),
    (
        [header("caption", arrays=[{"name": "1x", "dtype": "<f4", "shape": [2, 263]}]), ROW_BYTES],
        ("bad_request", "arrays"),
    ),
    ([header("caption", arrays={"features": 1}), ROW_BYTES], ("bad_request", "arrays")),
    (
        [header("caption", arrays=[{"name": "features", "dtype": "<f4", "shape": [2**40, 2**40]}]), b""],
        ("too_large", "features"),
    ),
    (
        [header("caption", arrays=[{"name": "features", "dtype": "<f4", "shape": [10**6, 263]}]), b""],
        ("too_large", "features"),
    ),
    ([header("echo", arrays=[{"name": "b", "dtype": "|b1", "shape": [3]}]), b"\x00\x01\x02"], ("bad_request", "b")),
    ([header("echo"), b"x"], ("bad_request", "arrays")),
    ([header("echo")] + [b""] * 6, ("bad_request", "arrays")),
    ([header("echo", fields={"pad": "x" * 70_000})], ("too_large", "header")),
    ([header("echo"), bytes(DEFAULT_LIMITS.max_message_bytes)], ("too_large", None)),
]


@pytest.mark.parametrize(("frames", "expected"), FRAMING_CASES)
def test_malformed_frames_are_refused_with_a_typed_error(frames, expected):
    error = refused(frames)
    # dtype and shape problems name the array they are about
    assert (error.code, error.field) == (expected or ("bad_request", "features"))


def test_errors_name_the_request_when_its_id_is_readable():
    assert refused([header("dance", "r9")]).request_id == "r9"
    assert refused([header("caption", "r9", arrays=ONE_ROW)]).request_id == "r9"
    assert refused([header("hello", "r9", protocol=3)]).request_id == "r9"
    assert refused([b"garbage"]).request_id is None


def test_encode_refuses_what_the_protocol_cannot_carry():
    with pytest.raises(ValueError, match="dtype"):
        encode(Message("echo", "x", {}, {"a": np.zeros(3, np.float64)}))
    with pytest.raises(ValueError):
        encode(Message("echo", "x", {"v": float("nan")}))
    with pytest.raises(ValueError, match="type"):
        encode(Message("dance", "x"))
    with pytest.raises(ValueError, match="id"):
        encode(Message("hello", "has space"))
    with pytest.raises(ValueError, match="name"):
        encode(Message("echo", "x", {}, {"bad-name": np.zeros(3, np.uint8)}))


def test_replies_are_checked_too():
    with pytest.raises(ProtocolError):
        decode_reply(encode(Message("error", "x", {"message": "no code"})))
    with pytest.raises(ProtocolError):
        decode_reply(encode(Message("progress", "x", {"stage": "diffusion", "step": "3", "total": 9})))
    with pytest.raises(ProtocolError):
        decode_reply(encode(Message("generate", "x", {"text": "w", "frames": 3})))  # a request is not a reply


def test_limits_travel_as_json():
    limits = Limits(max_frames=100, max_candidates=4)
    assert Limits.from_dict(json.loads(json.dumps(limits.to_dict()))) == limits
    assert Limits.from_dict({**limits.to_dict(), "from_a_newer_server": 1}) == limits
