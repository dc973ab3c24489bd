"""shared/protocol.md matches the code: its tables equal the code's constants, and its example messages, sent to a
live server in the order written, get the documented replies (error texts to the letter)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import zmq
from protocol_spec import documented_limits, examples, read_spec
from serving import (
    WAIT_S,
    model_fixture,  # noqa: F401  (pytest fixture "model")
    running_server,
)

from backend.model.config import tiny_config
from backend.service.admission import INFO_FIELDS, Admission
from shared.protocol import (
    DEFAULT_LIMITS,
    ERROR_CODES,
    FINAL_REPLY_TYPES,
    HEADER_KEYS,
    REPLY_TYPES,
    REQUEST_TYPES,
    Limits,
    Message,
    ProtocolError,
    decode_reply,
)

ADMISSION = Admission.for_model(tiny_config())  # what the test server checks: the tiny model's limits and tokens


def array_frames(header: dict) -> list[bytes]:
    """Finite, plausible contents for the arrays an example declares (known masks: first and last quarter)."""
    frames = []
    for spec in header["arrays"]:
        shape = spec["shape"]
        if spec["dtype"] == "<f4":
            values = np.random.default_rng(len(frames)).normal(size=shape) * 0.5
        else:
            values = np.zeros(shape)
            values[: shape[0] // 4] = values[-(shape[0] // 4) :] = 1
        frames.append(values.astype(np.dtype(spec["dtype"])).tobytes())
    return frames


def frames_of(header: dict) -> list[bytes]:
    return [json.dumps(header).encode(), *array_frames(header)]


def declared(header: dict) -> list[tuple]:
    return [(a["name"], a["dtype"], list(a["shape"])) for a in header["arrays"]]


def test_the_tables_match_the_code():
    spec = read_spec()
    assert spec.request_types == list(REQUEST_TYPES)
    assert spec.reply_types == list(REPLY_TYPES)
    assert set(spec.final_replies) == {*FINAL_REPLY_TYPES, "heartbeat"}  # a heartbeat answers a heartbeat
    assert list(spec.header_keys) == list(HEADER_KEYS)
    assert spec.errors == ERROR_CODES
    assert documented_limits() == DEFAULT_LIMITS.to_dict()
    assert list(documented_limits()) == list(Limits.__dataclass_fields__)  # the same order: info lists them so
    assert [f.name for f in spec.reply_fields if f.reply == "info"] == list(INFO_FIELDS)
    assert {f.request for f in spec.fields} | {a.request for a in spec.arrays} <= set(REQUEST_TYPES)


def test_the_default_limits_are_the_served_models():
    """The Limits table's defaults that follow the model are the demo and official models' (192-token prompts,
    196 frames, 1000 diffusion steps)."""
    from backend.model.config import demo_config, official_config

    for config in (demo_config(), official_config()):
        assert Admission.for_model(config).limits == DEFAULT_LIMITS


def split(messages: list[dict]) -> tuple[list[dict], dict, dict]:
    """(requests in order, documented replies by request id, the goodbye). A type that goes both ways (heartbeat,
    echo) is a request the first time its id appears and a reply the second time."""
    requests, replies, seen = [], {}, set()
    goodbye = None
    for message in messages:
        key = (message["type"], message["id"])
        if (message["type"] in REQUEST_TYPES and (message["type"] not in REPLY_TYPES or key not in seen)) or (
            message["type"] not in REPLY_TYPES
        ):
            requests.append(message)
        elif message["type"] == "error" and message["id"] is None:
            goodbye = message
        else:
            replies.setdefault(message["id"], []).append(message)
        seen.add(key)
    return requests, replies, goodbye


def test_every_example_decodes_as_documented_and_every_type_has_one():
    requests, replies, goodbye = split(examples())
    for request in requests:
        final = (
            [d for d in replies[request["id"]] if d["type"] in FINAL_REPLY_TYPES] if request["type"] != "cancel" else []
        )
        if final and final[-1]["type"] == "error":  # refused before any model work: by decode_request itself
            with pytest.raises(ProtocolError) as caught:
                ADMISSION.decode(frames_of(request), pending=lambda request_id: False)
            error = caught.value
            assert {"code": error.code, "message": error.message, "field": error.field} == final[-1]["fields"]
        else:
            assert ADMISSION.decode(frames_of(request), pending=lambda request_id: False).type == request["type"]
    for reply in [r for docs in replies.values() for r in docs] + [goodbye]:
        assert decode_reply(frames_of(reply)).type == reply["type"]
    documented = {m["type"] for m in requests} | {r["type"] for docs in replies.values() for r in docs}
    assert documented >= set(REQUEST_TYPES) | set(REPLY_TYPES)


def receive(socket: zmq.Socket) -> Message:
    assert socket.poll(timeout=int(WAIT_S * 1000)), "no reply from the server"
    return decode_reply(socket.recv_multipart())


def test_the_examples_get_the_documented_replies(model):
    requests, documented, goodbye = split(examples())
    context = zmq.Context()
    socket = context.socket(zmq.DEALER)
    socket.linger = 0
    replies: dict = {}

    def collect() -> Message:
        reply = receive(socket)
        replies.setdefault(reply.id, []).append(reply)
        return reply

    with running_server(model) as server:
        socket.connect(server.address)
        for request in requests:
            if request["type"] == "cancel":  # the documented cancel is of a running job: wait until it runs
                while not any(r.fields.get("stage") == "diffusion" for r in replies.get(request["id"], [])):
                    collect()
            socket.send_multipart(frames_of(request))
        expected = {key for key, docs in documented.items() if any(d["type"] in FINAL_REPLY_TYPES for d in docs)}
        while not all(any(r.type in FINAL_REPLY_TYPES for r in replies.get(key, [])) for key in expected):
            collect()
        server.stop()
        farewell = receive(socket)
    context.destroy(linger=0)
    for request_id, docs in documented.items():
        actual = replies[request_id]
        for doc in docs:
            if doc["type"] == "progress":
                matches = [r for r in actual if r.type == "progress" and r.fields["stage"] == doc["fields"]["stage"]]
                assert matches and set(matches[0].fields) == set(doc["fields"]), (request_id, doc)
                if doc["fields"]["step"] == doc["fields"]["total"] > 0:  # the last step is always reported
                    assert any(r.fields["step"] == r.fields["total"] == doc["fields"]["total"] for r in matches)
                continue
            final = actual[-1]
            assert final.type == doc["type"], (request_id, final.fields)
            assert sorted(final.fields) == sorted(doc["fields"]), request_id
            assert [(n, a.dtype.str, list(a.shape)) for n, a in final.arrays.items()] == declared(doc), request_id
            if doc["type"] in ("error", "cancelled", "echo", "heartbeat"):
                assert final.fields == doc["fields"], request_id
            if doc["type"] == "info":
                assert final.fields["limits"] == doc["fields"]["limits"]
                assert final.fields["tasks"] == doc["fields"]["tasks"]
    assert (farewell.type, farewell.id, farewell.fields) == ("error", None, goodbye["fields"])
