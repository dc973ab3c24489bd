"""Hostile (and some valid) protocol messages built from shared/protocol.md's tables (`protocol_spec`), each with
the one answer the document calls for. A field, array or limit written into a table is fuzzed from then on: the
field generators walk the tables, and `uncovered` names every documented field, array and limit no case broke."""

from __future__ import annotations

import json
import math
import random
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from protocol_spec import ArraySpec, Bound, FieldSpec, Spec

from shared.protocol import DTYPES

Frames = list[bytes]
TokenCounter = Callable[[str], int]

WORDS = ["a", "person", "walks", "runs", "jumps", "waves", "turns", "left", "right", "slowly", "then", "sits", "down"]
UNICODE = "äöüßéñçøπΩжшд中文字ひらがな한국어🦘🙂✓—…"
WRONG_VALUES = {  # values of the other JSON types, for a field of each documented type
    "integer": ["7", 1.5, 2.0, True, False, [], {}, [1]],
    "number": ["2.5", True, False, [], {}, [2.5]],
    "string": [5, 2.5, True, [], {}, ["text"]],
    "boolean": [0, 1, "true", [], {}],
    "list": [1, "x", {}, True],
    "object": [1, "x", [], True],
}


@dataclass(frozen=True)
class Expect:
    """The one final answer a case must get: `kind` is a reply type ("error", "info", "heartbeat", "echo"), "job"
    (a `queued` progress, then `result`; "job-or-cancelled" when a cancel follows it) or "none" (no reply)."""

    kind: str
    code: str | None = None
    field: str | None = None
    id: str | None = None  # the id the answer carries (None: a null id)
    states: tuple[str, ...] = ()  # values an error's message must quote (the limit it enforces)
    echo: tuple[dict, dict[str, tuple[str, tuple[int, ...], bytes]]] | None = None
    job: dict[str, Any] | None = None  # type, candidates, frames of the motions, the inputs to compare


@dataclass
class Case:
    """One or more messages (sent back to back on one connection) and the answer of the first."""

    cls: str
    messages: list[Frames]
    expect: Expect
    breaks: tuple[str, ...] = ()  # documented things this case violates: "limit:max_frames", "field:generate.text"

    def __post_init__(self) -> None:
        if self.messages and isinstance(self.messages[0], bytes):  # one message, given as its frames
            self.messages = [self.messages]


def json_type(value: Any) -> str:
    """The document's name for a value's JSON type."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    return {float: "number", str: "string", list: "list", dict: "object"}[type(value)]


def header(kind: Any, request_id: Any, fields: Any = None, arrays: Any = (), **extra: Any) -> bytes:
    body = {"protocol": 1, "type": kind, "id": request_id, "fields": {} if fields is None else fields}
    body["arrays"] = list(arrays) if isinstance(arrays, list | tuple) else arrays
    body.update(extra)
    return json.dumps(body, ensure_ascii=False).encode()


def declare(arrays: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    return [{"name": name, "dtype": a.dtype.str, "shape": list(a.shape)} for name, a in arrays.items()]


def message(kind: str, request_id: str | None, fields: dict, arrays: dict[str, np.ndarray] | None = None) -> Frames:
    arrays = arrays or {}
    return [header(kind, request_id, fields, declare(arrays)), *(a.tobytes() for a in arrays.values())]


def shown(value: Any) -> str:
    """How an error message quotes a limit (floats as %g)."""
    return f"{value:g}" if isinstance(value, float) else str(value)


@dataclass
class Fuzzer:
    """Case generators over one server's documented tables and limits."""

    spec: Spec
    tokens: TokenCounter
    rng: random.Random
    prefix: str = "f"
    full_runs: dict[str, int] = field(default_factory=dict)  # per job type, how many valid jobs run to the end
    big_messages: int = 6  # cases over max_message_bytes (16 MiB each by default)
    counter: int = 0
    limits: dict[str, Any] = field(init=False)

    def __post_init__(self) -> None:
        self.limits = self.spec.limits

    # ------------------------------------------------------------------------------------------ building blocks

    def rid(self) -> str:
        self.counter += 1
        return f"{self.prefix}{self.counter}"

    def job_types(self) -> list[str]:
        return [t for t in self.spec.request_types if self.spec.fields_of(t) or self.spec.arrays_of(t)]

    def words(self, low: int = 1, high: int = 6) -> str:
        return " ".join(self.rng.choice(WORDS) for _ in range(self.rng.randint(low, high)))

    def valid_value(self, spec: FieldSpec) -> Any:
        """A cheap valid value: the example, or a random one within the range near the example."""
        if self.rng.random() < 0.4:
            return spec.example
        if spec.type == "string":
            return self.words() if spec.name != "client" else f"fuzz-{self.words(1, 2)}"
        if spec.type not in ("integer", "number"):
            return spec.example
        (bound,) = [b for b in spec.bounds if b.unit in (None, "frames")] or [Bound(None, None)]
        low = bound.low if bound.low is not None else 0
        if spec.type == "integer":
            high = min(bound.high if bound.high is not None else 10**6, max(low, int(spec.example)))
            return self.rng.randint(int(low), int(high))
        if bound.unit == "frames":  # seconds: a length near the example's
            frames = self.rng.randint(int(bound.low), min(int(bound.high), int(spec.example * 20)))
            return frames / 20
        high = min(bound.high if bound.high is not None else 1e6, max(low, spec.example) * 2)
        return round(self.rng.uniform(low, high), 3)

    def letter_sizes(self, request: str) -> dict[str, int]:
        """A small valid size for each shape letter of the request's arrays."""
        sizes = {}
        for array in self.spec.arrays_of(request):
            for letter, bound in array.bounds.items():
                sizes[letter] = self.rng.randint(int(bound.low or 0), min(int(bound.high), int(bound.low or 0) + 30))
        return sizes

    def valid_array(self, spec: ArraySpec, sizes: dict[str, int], dtype: str | None = None) -> np.ndarray:
        shape = tuple(sizes.setdefault(d, 4) if isinstance(d, str) else d for d in spec.shape)  # unbounded: 4
        dtype = dtype or self.rng.choice(spec.dtypes)
        if spec.binary:
            values = self.rng.choices([0, 1], k=math.prod(shape))
            if spec.some_one:
                values[self.rng.randrange(len(values))] = 1
            return np.array(values, DTYPES[dtype]).reshape(shape)
        gen = np.random.default_rng(self.rng.getrandbits(32))
        return (gen.normal(size=shape) * 0.5).astype(DTYPES[dtype])

    def valid_request(self, kind: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """Fields and arrays of a valid (and cheap) request of a documented type."""
        fields: dict[str, Any] = {}
        specs = self.spec.fields_of(kind)
        for spec in specs:
            if spec.required or (spec.partner is None and self.rng.random() < 0.5):
                fields[spec.name] = self.valid_value(spec)
        pairs = {tuple(sorted((s.name, s.partner))) for s in specs if s.partner}
        for pair in sorted(pairs):
            chosen = self.rng.choice(pair)
            fields[chosen] = self.valid_value(next(s for s in specs if s.name == chosen))
        sizes = self.letter_sizes(kind)
        arrays = {spec.name: self.valid_array(spec, sizes) for spec in self.spec.arrays_of(kind)}
        return fields, arrays

    def job_expectation(self, kind: str, request_id: str, fields: dict, arrays: dict) -> dict[str, Any]:
        frames = fields.get("frames") or (round(fields["seconds"] * 20) if "seconds" in fields else 0)
        clip = len(arrays["features"]) if "features" in arrays else 0
        out = {"generate": frames, "predict": clip + frames, "inbetween": clip}.get(kind)  # None: not checked
        if kind == "shot":  # the shot's seconds at 20 fps
            out = round(sum(segment["seconds"] for segment in fields["segments"]) * 20)
        return {
            "type": kind,
            "candidates": fields.get("candidates", 1),
            "frames": out,
            "arrays": arrays,
            "fields": fields,
        }

    def error(self, code: str, name: str | None, request_id: str | None, *states: Any) -> Expect:
        return Expect("error", code, name, request_id, tuple(shown(s) for s in states))

    # ------------------------------------------------------------------------------------------ classes

    def framing(self) -> Case:
        """Frames that are not a strict-JSON header object."""
        rng, rid = self.rng, self.rid()
        whole = header("hello", rid)
        choice = rng.randrange(9)
        if choice == 0:  # random bytes that never start a JSON object
            return Case(
                "framing.random",
                [bytes(rng.choice(b'abc\x00\xff[]1"') for _ in range(rng.randint(0, 60)))],
                self.error("bad_request", "header", None),
            )
        if choice == 1:
            return Case(
                "framing.truncated",
                [whole[: rng.randint(1, len(whole) - 1)]],
                self.error("bad_request", "header", None),
            )
        if choice == 2:
            broken = bytearray(whole)
            broken[rng.randrange(len(broken))] = rng.choice([0xFF, 0xC0, 0x80, 0xFE])
            return Case("framing.utf8", [bytes(broken)], self.error("bad_request", "header", None))
        if choice == 3:
            return Case("framing.bom", [b"\xef\xbb\xbf" + whole], self.error("bad_request", "header", None))
        if choice == 4:
            constant = rng.choice(["NaN", "Infinity", "-Infinity", "1e999", "-1e400"])
            text = f'{{"protocol": 1, "type": "echo", "id": "{rid}", "fields": {{"x": {constant}}}, "arrays": []}}'
            return Case("framing.constant", [text.encode()], self.error("bad_request", "header", None))
        if choice == 5:
            key = rng.choice(["type", "id", "protocol", "fields"])
            text = whole.decode()[:-1] + f', "{key}": ' + json.dumps({"fields": {}}.get(key, "hello")) + "}"
            if rng.random() < 0.5:
                text = f'{{"protocol": 1, "type": "echo", "id": "{rid}", "fields": {{"a": 1, "a": 2}}, "arrays": []}}'
            return Case("framing.duplicate_key", [text.encode()], self.error("bad_request", "header", None))
        if choice == 6:  # a lone surrogate (legal JSON escape, not Unicode) in a field, a text or a key
            where = rng.choice(
                ['"fields": {"note": "a\\ud800b"}', '"fields": {"\\udfff": 1}', '"fields": {"x": ["\\ud83d"]}']
            )
            text = f'{{"protocol": 1, "type": "echo", "id": "{rid}", {where}, "arrays": []}}'
            return Case("framing.surrogate", [text.encode()], self.error("bad_request", "header", rid))
        if choice == 7:
            depth = rng.randint(self.limits["max_json_depth"] - 1, self.limits["max_json_depth"] + 20)
            nested: Any = 1
            for _ in range(depth - 2):  # the header is level 1, fields level 2
                nested = [nested] if rng.random() < 0.5 else {"k": nested}
            frames = [header("echo", rid, {"deep": nested})]
            if depth <= self.limits["max_json_depth"]:
                return Case("framing.deep_ok", frames, Expect("echo", id=rid, echo=({"deep": nested}, {})))
            return Case(
                "framing.deep",
                frames,
                self.error("bad_request", "header", rid, self.limits["max_json_depth"]),
                ("limit:max_json_depth",),
            )
        text = rng.choice([b"[" * 5000 + b"]" * 5000, b"[1, 2]", b'"hello"', b"17", b"null", b""])
        return Case("framing.not_object", [text], self.error("bad_request", "header", None))

    def sizes(self) -> Case:
        rid = self.rid()
        self.big_messages -= 1
        if self.big_messages < 0 or self.rng.random() < 0.5:  # a few messages over max_message_bytes: each is big
            pad = "x" * (self.limits["max_header_bytes"] + self.rng.randint(1, 5000))
            return Case(
                "size.header",
                [header("echo", rid, {"pad": pad})],
                self.error("too_large", "header", None, self.limits["max_header_bytes"]),
                ("limit:max_header_bytes",),
            )
        size = self.limits["max_message_bytes"] + self.rng.randint(1, 4096)
        return Case(
            "size.message",
            [header("echo", rid), bytes(size)],
            self.error("too_large", None, None, self.limits["max_message_bytes"]),
            ("limit:max_message_bytes",),
        )

    def header_keys(self) -> Case:
        """Each documented header key missing or of another JSON type; an unknown key."""
        rng, rid = self.rng, self.rid()
        kind = rng.choice([t for t in self.spec.request_types if t not in ("heartbeat", "cancel")])
        fields, arrays = self.valid_request(kind)
        body = json.loads(message(kind, rid, fields, arrays)[0])
        payload = [a.tobytes() for a in arrays.values()]
        key = rng.choice(list(self.spec.header_keys))
        choice = rng.randrange(3)
        if choice == 0:
            del body[key]
            expect = (
                self.error("unsupported_version", "protocol", rid)
                if key == "protocol"
                else self.error("bad_request", key, None if key == "id" else rid)
            )
            if key == "type":
                expect = self.error("bad_request", "type", rid)
            return Case("header.missing_key", [json.dumps(body).encode(), *payload], expect, (f"key:{key}",))
        if choice == 1:
            extra = rng.choice(["sneaky", "Type", "ID", "meta", "x" * 30])
            body[extra] = 1
            return Case(
                "header.unknown_key", [json.dumps(body).encode(), *payload], self.error("bad_request", extra, rid)
            )
        documented = self.spec.header_keys[key].split(" or ")
        wrong = [v for values in WRONG_VALUES.values() for v in values if json_type(v) not in documented]
        body[key] = rng.choice(wrong + ([None] if "null" not in documented else []))
        expect = {
            "protocol": self.error("unsupported_version", "protocol", rid),
            "type": self.error("unknown_type", "type", rid),
            "id": self.error("bad_request", "id", None),
        }.get(key, self.error("bad_request", key, rid))
        return Case("header.key_type", [json.dumps(body).encode(), *payload], expect, (f"key:{key}",))

    def versions(self) -> Case:
        rid = self.rid()
        version = self.rng.choice([0, 2, 99, -1, "1", 1.0, 1.5, True, [1], {"v": 1}, None])
        return Case(
            "header.version",
            [header("hello", rid, protocol=version)],
            self.error("unsupported_version", "protocol", rid),
        )

    def ids(self) -> Case:
        rng = self.rng
        if rng.random() < 0.3:  # no id where one is needed
            kind = rng.choice([t for t in self.spec.request_types if t != "heartbeat"])
            fields, arrays = self.valid_request(kind) if kind != "cancel" else ({}, {})
            return Case("id.missing", message(kind, None, fields, arrays), self.error("bad_request", "id", None))
        bad = rng.choice(["", " ", "has space", "x" * 65, "ünï", "a/b", "tab\t", "new\nline"])
        return Case("id.invalid", [header("hello", bad)], self.error("bad_request", "id", None))

    def types(self) -> Case:
        rid = self.rid()
        replies = [t for t in self.spec.reply_types if t not in self.spec.request_types]
        if self.rng.random() < 0.4:
            return Case("type.reply", [header(self.rng.choice(replies), rid)], self.error("bad_request", "type", rid))
        kind = self.rng.choice(["dance", "GENERATE", "", "hello ", "exec", "__class__", "generate\x00"])
        return Case("type.unknown", [header(kind, rid)], self.error("unknown_type", "type", rid))

    def field_cases(self) -> Case:
        """One documented field of one request type made wrong: type, range, missing, pair, null, unknown; or a
        boundary value that must be accepted."""
        rng = self.rng
        spec = rng.choice(self.spec.fields)
        kind, name, rid = spec.request, spec.name, self.rid()
        fields, arrays = self.valid_request(kind)
        reply_id = None if kind == "cancel" else rid
        tag = (f"field:{kind}.{name}",)
        choices = ["type", "unknown", "boundary"]
        choices += ["range"] * 2 if spec.bounds else []
        choices += ["missing"] if spec.required or spec.partner else []
        choices += ["pair"] if spec.partner else []
        choice = {"type": 0, "range": 1, "missing": 2, "pair": 3, "unknown": 4, "boundary": 5}[rng.choice(choices)]
        if choice == 0:
            fields[name] = rng.choice(WRONG_VALUES[spec.type])
            fields.pop(spec.partner, None)
            return Case(
                "field.type", message(kind, rid, fields, arrays), self.error("bad_request", name, reply_id), tag
            )
        if choice == 1 and spec.bounds:
            bound = rng.choice(spec.bounds)
            value, states, limit = self.out_of_range(spec, bound)
            if value is not None:
                fields[name] = value
                fields.pop(spec.partner, None)
                return Case(
                    "field.range",
                    message(kind, rid, fields, arrays),
                    self.error("bad_request", name, reply_id, *states),
                    (*tag, *limit),
                )
        if choice == 2 and (spec.required or spec.partner):
            fields.pop(name, None)
            if spec.partner:  # neither of the pair: refused naming the pair's first
                fields.pop(spec.partner, None)
                first = next(s.name for s in self.spec.fields_of(kind) if s.name in (name, spec.partner))
                expected = self.error("bad_request", first, reply_id)
            else:
                expected = self.error("bad_request", name, reply_id)
            if rng.random() < 0.5:
                fields[name] = None  # null is absent
            return Case("field.missing", message(kind, rid, fields, arrays), expected, tag)
        if choice == 3 and spec.partner:  # both of the pair: refused naming the pair's second
            other = next(s for s in self.spec.fields_of(kind) if s.name == spec.partner)
            fields[name], fields[other.name] = self.valid_value(spec), self.valid_value(other)
            second = [s.name for s in self.spec.fields_of(kind) if s.name in (name, other.name)][1]
            return Case(
                "field.pair", message(kind, rid, fields, arrays), self.error("bad_request", second, reply_id), tag
            )
        if choice == 4:
            unknown = rng.choice(["frame", "Text", "temperature", "x" * 30, "seeds", "", "ñ"])
            fields[unknown] = 1
            return Case(
                "field.unknown", message(kind, rid, fields, arrays), self.error("bad_request", unknown, reply_id)
            )
        return self.boundary(spec, fields, arrays)

    def out_of_range(self, spec: FieldSpec, bound: Bound) -> tuple[Any, tuple, tuple[str, ...]]:
        """(a value just outside `bound`, what the error must quote, the limits it breaks); None when none."""
        rng = self.rng
        side = rng.choice(["low", "high"])
        limit = bound.low_limit if side == "low" else bound.high_limit
        edge = bound.low if side == "low" else bound.high
        tags = (f"limit:{limit}",) if limit else ()
        if edge is None:
            return None, (), ()
        if bound.unit is None:
            if spec.type == "integer":
                value = edge - 1 if side == "low" else edge + rng.choice([1, 2, 10**30])
            else:
                value = edge - rng.choice([0.5, 10.0]) if side == "low" else edge + rng.choice([0.5, 1e9])
            return value, (edge,), tags
        if bound.unit == "frames":  # seconds whose nearest frame is outside the frame range
            frames = edge - 1 if side == "low" else edge + rng.choice([1, 50])
            return max(frames, 0) / 20 if side == "low" else frames / 20, (edge,), tags
        if bound.unit == "characters":
            if side == "low":
                return (None, (), ()) if spec.blank_is_absent else (rng.choice(["", " ", " \n\t "]), (edge,), tags)
            text = "".join(rng.choice(string.ascii_letters + UNICODE) for _ in range(int(edge) + rng.randint(1, 9)))
            return text, (edge,), tags
        if bound.unit == "tokens" and side == "high":
            return self.too_many_tokens(int(edge)), (edge,), tags
        if bound.unit == "items":  # a list: empty, or the example's items repeated past the limit
            items = list(spec.example)
            if side == "low":
                return ([], (edge,), tags) if edge >= 1 else (None, (), ())
            return [items[i % len(items)] for i in range(int(edge) + rng.randint(1, 3))], (edge,), tags
        return None, (), ()

    def too_many_tokens(self, limit: int) -> str:
        text = "🦘" * ((limit + 3) // 3 + self.rng.randint(0, 3))  # 3 tokens each, well within the characters
        assert self.tokens(text) > limit
        return text

    def boundary(self, spec: FieldSpec, fields: dict, arrays: dict) -> Case:
        """A field at the very edge of its range: accepted (a job is cancelled at once: edges can be slow)."""
        kind, rid, rng = spec.request, self.rid(), self.rng
        bound = rng.choice(spec.bounds) if spec.bounds else None
        edge = None if bound is None else rng.choice([b for b in (bound.low, bound.high) if b is not None])
        fields.pop(spec.partner, None)
        if bound is None or edge is None:
            fields[spec.name] = self.valid_value(spec)
        elif bound.unit is None:
            fields[spec.name] = edge
        elif bound.unit == "frames":
            fields[spec.name] = edge / 20
        elif bound.unit == "characters":
            fields[spec.name] = "x" * int(edge)  # 8 characters per token: within the tokens too
        elif bound.unit == "tokens":
            fields[spec.name] = self.text_of_tokens(int(edge))
        elif bound.unit == "items":  # the shortest list allowed (its first items fit the other examples)
            fields[spec.name] = list(spec.example)[: max(int(bound.low or 0), 1)]
        return self.accepted(kind, rid, fields, arrays, "field.boundary")

    def text_of_tokens(self, count: int) -> str:
        text = " ".join(["walk"] * count)
        assert self.tokens(text) == count
        return text

    def immediate(self, kind: str) -> bool:
        """Whether a valid request of this type is answered at once (its final reply is not a job's `result`)."""
        return self.spec.final_reply[kind] != "result"

    def accepted(self, kind: str, rid: str, fields: dict, arrays: dict, cls: str) -> Case:
        frames = message(kind, rid, fields, arrays)
        if self.immediate(kind):
            return Case(cls, [frames], Expect(self.spec.final_reply[kind], id=rid))
        job = self.job_expectation(kind, rid, fields, arrays)
        return Case(cls, [frames, [header("cancel", rid)]], Expect("job-or-cancelled", id=rid, job=job))

    def array_cases(self) -> Case:
        """One documented array of one request type made wrong."""
        rng = self.rng
        spec = rng.choice(self.spec.arrays)
        kind, name, rid = spec.request, spec.name, self.rid()
        fields, arrays = self.valid_request(kind)
        sizes = {letter: len_ for letter, len_ in self.letter_sizes(kind).items()}
        for other in self.spec.arrays_of(kind):
            arrays[other.name] = self.valid_array(other, sizes)
        tag = (f"array:{kind}.{name}",)
        bad = self.error("bad_request", name, rid)
        choice = rng.randrange(8)
        if choice == 0:
            del arrays[name]
            return Case("array.missing", message(kind, rid, fields, arrays), bad, tag)
        if choice == 1:
            arrays["extra_" + rng.choice(["a", "features2", "mask"])] = np.zeros(3, np.float32)
            extra = next(n for n in arrays if n.startswith("extra_"))
            return Case("array.extra", message(kind, rid, fields, arrays), self.error("bad_request", extra, rid))
        if choice == 2:
            dtype = rng.choice([d for d in DTYPES if d not in spec.dtypes])
            arrays[name] = arrays[name].astype(DTYPES[dtype])
            return Case("array.dtype", message(kind, rid, fields, arrays), bad, tag)
        if choice == 3:
            array, fixed = arrays[name], [d for d in spec.shape if isinstance(d, int)]
            mutate = rng.randrange(3)
            if mutate == 0:
                arrays[name] = array[..., None]
            elif mutate == 1 and array.ndim > 1:
                arrays[name] = array.reshape(-1)
            elif fixed:
                shape = tuple(d + rng.choice([-1, 1]) if d == fixed[0] else sizes[d] for d in spec.shape)
                arrays[name] = np.zeros(shape, array.dtype)
            else:
                arrays[name] = np.zeros((*array.shape, 2), array.dtype)
            return Case("array.shape", message(kind, rid, fields, arrays), bad, tag)
        if choice == 4 and spec.bounds:
            letter, bound = rng.choice(sorted(spec.bounds.items()))
            for flag, bounds in spec.when.items():  # a bound that a boolean field changes: rarely (big clips)
                if letter in bounds and rng.random() < 0.08:
                    fields[flag], bound = True, bounds[letter]
                    break
                fields.pop(flag, None)
            side = rng.choice(["low", "high"])
            edge = bound.low if side == "low" else bound.high
            size = rng.choice([0, max(edge - 1, 0)]) if side == "low" else edge + rng.randint(1, 5)
            sizes[letter] = size
            for other in self.spec.arrays_of(kind):
                arrays[other.name] = (
                    self.valid_array(other, sizes)
                    if size
                    else np.zeros(tuple(size if d == letter else d for d in other.shape), DTYPES[other.dtypes[0]])
                )
            limit = bound.low_limit if side == "low" else bound.high_limit
            return Case(
                "array.length",
                message(kind, rid, fields, arrays),
                self.error("bad_request", name, rid, edge),
                (*tag, f"limit:{limit}"),
            )
        if choice == 5 and spec.finite:
            array = arrays[name]
            array.reshape(-1)[rng.randrange(array.size)] = rng.choice([np.nan, np.inf, -np.inf])
            return Case("array.finite", message(kind, rid, fields, arrays), bad, tag)
        if choice == 6 and (spec.binary or spec.some_one):
            array = arrays[name]
            if spec.some_one and rng.random() < 0.5:
                array[...] = 0
                return Case("array.none_set", message(kind, rid, fields, arrays), bad, tag)
            frames = message(kind, rid, fields, arrays)
            index = 1 + list(arrays).index(name)
            raw = bytearray(frames[index])
            raw[rng.randrange(len(raw))] = rng.choice([2, 7, 255])
            frames[index] = bytes(raw)
            return Case("array.binary", frames, bad, tag)
        if choice == 7 and any(isinstance(d, str) for d in spec.shape) and len(self.spec.arrays_of(kind)) > 1:
            letters = [d for d in spec.shape if isinstance(d, str)]
            first = next(a for a in self.spec.arrays_of(kind) if set(letters) & {d for d in a.shape})
            if first.name != name:  # the second array to use a letter disagrees with the first
                wrong = {**sizes, letters[0]: sizes[letters[0]] + rng.choice([-1, 1])}
                arrays[name] = self.valid_array(spec, wrong)
                return Case("array.mismatch", message(kind, rid, fields, arrays), bad, tag)
        return self.array_cases()

    def declarations(self) -> Case:
        """Array declarations and frames that break the framing rules."""
        rng, rid = self.rng, self.rid()
        kind = rng.choice([t for t in self.spec.request_types if self.spec.arrays_of(t)] + ["echo"])
        fields, arrays = self.valid_request(kind) if kind != "echo" else ({}, {"payload": np.ones((3, 4), np.float32)})
        frames = message(kind, rid, fields, arrays)
        body = json.loads(frames[0])
        name = body["arrays"][0]["name"]
        limits = self.limits
        choice = rng.randrange(8)
        if choice == 0:
            frames = frames[:-1] if rng.random() < 0.5 else [*frames, rng.randbytes(rng.randint(0, 40))]
            return Case("decl.frame_count", frames, self.error("bad_request", "arrays", rid))
        if choice == 1:
            index = rng.randrange(1, len(frames))
            frames[index] = frames[index][:-1] if rng.random() < 0.5 else frames[index] + b"\x00"
            return Case("decl.frame_size", frames, self.error("bad_request", body["arrays"][index - 1]["name"], rid))
        if choice == 2:
            item = body["arrays"][0]
            mutate = rng.randrange(4)
            if mutate == 0:
                body["arrays"][0] = rng.choice([1, "features", [name], None])
            elif mutate == 1:
                del item[rng.choice(["name", "dtype", "shape"])]
            elif mutate == 2:
                item["extra"] = 1
            else:
                item["name"] = rng.choice(["1x", "", "a-b", "x" * 40, 7, None])
            return Case(
                "decl.malformed", [json.dumps(body).encode(), *frames[1:]], self.error("bad_request", "arrays", rid)
            )
        if choice == 3:
            body["arrays"][0]["dtype"] = rng.choice(["<f8", ">f4", "|O", "float32", "<U4", "", 7, None, "<i4"])
            return Case("decl.dtype", [json.dumps(body).encode(), *frames[1:]], self.error("bad_request", name, rid))
        if choice == 4:
            shape = rng.choice(
                [[-1, 263], [2.5, 263], ["2", 263], [True, 263], [], [1] * (limits["max_array_dims"] + 1), None, "3"]
            )
            body["arrays"][0]["shape"] = shape
            expect = self.error("bad_request", name, rid, limits["max_array_dims"])
            tags = ("limit:max_array_dims",) if isinstance(shape, list) and len(shape) > 1 and shape[0] == 1 else ()
            return Case("decl.shape", [json.dumps(body).encode(), *frames[1:]], expect, tags)
        if choice == 5:
            big = limits["max_message_bytes"]
            shape = rng.choice(
                [
                    [2**62, 2**62, 0],
                    [0, big + 1],
                    [big + 1],
                    [2**40, 263],
                    [10**30, 0],
                    [big // 8 + 1, 2],
                    [2, 2, big // 16 + 1],
                ]
            )
            body["arrays"][0]["shape"] = shape
            return Case(
                "decl.too_large",
                [json.dumps(body).encode(), *frames[1:]],
                self.error("too_large", name, rid, big),
                ("limit:max_message_bytes",),
            )
        if choice == 6:
            count = limits["max_arrays"] + rng.randint(1, 3)
            many = {f"a{i}": np.zeros(2, np.uint8) for i in range(count)}
            return Case(
                "decl.too_many",
                message("echo", rid, {}, many),
                self.error("bad_request", "arrays", rid, limits["max_arrays"]),
                ("limit:max_arrays",),
            )
        body["arrays"] = body["arrays"] + [dict(body["arrays"][0])]  # a repeated name
        return Case(
            "decl.repeated",
            [json.dumps(body).encode(), *frames[1:], frames[1]],
            self.error("bad_request", "arrays", rid),
        )

    def shot_cases(self) -> Case:
        """A shot (protocol.md "Shots") broken inside its lists: the nested limits, keys, joints, times and texts,
        each refused naming the nested field (`waypoints[0].position`) and the limit."""
        rng, rid, limits = self.rng, self.rid(), self.limits
        fields, _ = self.valid_request("shot")
        fields["segments"] = [dict(item) for item in fields["segments"]]
        total = sum(item["seconds"] for item in fields["segments"])
        extent, height, speed = limits["max_extent_m"], limits["max_target_height_m"], limits["max_speed_m_s"]
        choice = rng.randrange(12)
        if choice == 0:
            fields["segments"][0]["seconds"] = limits["min_segment_seconds"] - rng.choice([0.1, 0.45])
            expect, tag = ("segments[0].seconds", limits["min_segment_seconds"]), "min_segment_seconds"
        elif choice == 1:
            half = limits["max_shot_seconds"] / 2 + 1
            fields["segments"] = [{"text": "a person walks", "seconds": half}] * 2
            fields.pop("waypoints", None), fields.pop("paths", None), fields.pop("targets", None)
            expect, tag = ("segments", limits["max_shot_seconds"]), "max_shot_seconds"
        elif choice == 2:
            points = [[0.0, 0.01 * k] for k in range(limits["max_path_points"] + rng.randint(1, 3))]
            fields["paths"] = [{"start": 0.5, "end": total, "points": rng.choice([points, [[0.0, 0.5]]])}]
            expect, tag = ("paths[0].points", limits["max_path_points"]), "max_path_points"
        elif choice == 3:
            where = rng.choice(["waypoints", "targets"])
            position = [extent + rng.choice([1, 1e6]), 0.0] + ([1.0] if where == "targets" else [])
            fields[where] = [{"time": total / 2, "position": position}]
            if where == "targets":
                fields[where][0]["joint"] = "head"
            expect, tag = (f"{where}[0].position[0]", extent), "max_extent_m"
        elif choice == 4:
            y = rng.choice([height + 0.5, -0.2])
            fields["targets"] = [{"joint": "left_hand", "time": total / 2, "position": [0.0, y, 0.5]}]
            expect, tag = ("targets[0].position[1]", height), "max_target_height_m"
        elif choice == 5:
            fields["waypoints"] = [{"time": 1.0, "position": [0.0, speed + 2.0]}]
            expect, tag = ("waypoints[0].position", speed), "max_speed_m_s"
        elif choice == 6:
            fields["segments"][0]["text"] = rng.choice([self.too_many_tokens(limits["max_text_tokens"]), "x" * 1001])
            expect, tag = ("segments[0].text", None), None
        elif choice == 7:
            fields["segments"][0]["text"] = rng.choice(["", "  ", 5, None, "walk <start_of_motion> then"])
            expect, tag = ("segments[0].text", None), None
        elif choice == 8:
            name = rng.choice(["waypoints", "paths", "targets", "segments"])
            example = next(f.example for f in self.spec.fields_of("shot") if f.name == name)
            fields[name] = [{**example[0], rng.choice(["speed", "Time", "x"]): 1}]
            unknown = next(key for key in fields[name][0] if key not in example[0])
            expect, tag = (f"{name}[0].{unknown}", None), None
        elif choice == 9:
            fields["targets"] = [
                {"joint": rng.choice(["hand", "left_elbow", "", 3]), "time": 1.0, "position": [0, 1, 0]}
            ]
            expect, tag = ("targets[0].joint", None), None
        elif choice == 10:
            fields["targets"] = [{"joint": "head", "time": total + rng.choice([0.5, 100]), "position": [0, 1, 0]}]
            expect, tag = ("targets[0].time", None), None
        else:
            fields["waypoints"] = [{"time": 1.0}]
            expect, tag = ("waypoints[0].position", None), None
        name, state = expect
        states = () if state is None else (state,)
        return Case(
            "shot.nested",
            message("shot", rid, fields),
            self.error("bad_request", name, rid, *states),
            (f"limit:{tag}",) if tag else (),
        )

    def random_json(self, depth: int) -> Any:
        rng = self.rng
        choice = rng.randrange(8 if depth > 0 else 6)
        if choice == 0:
            return rng.randint(-(10**30), 10**30)
        if choice == 1:
            return rng.choice([0.0, -0.0, 1e-300, 1.5e300, rng.uniform(-1e6, 1e6)])
        if choice == 2:
            return "".join(rng.choice(string.printable + UNICODE) for _ in range(rng.randint(0, 30)))
        if choice == 3:
            return rng.choice([True, False, None])
        if choice in (4, 5):
            return rng.randint(-5, 5)
        if choice == 6:
            return [self.random_json(depth - 1) for _ in range(rng.randint(0, 4))]
        return {self.random_json(0).__str__()[:12]: self.random_json(depth - 1) for _ in range(rng.randint(0, 4))}

    def echo(self) -> Case:
        """Any fields and arrays (NaN and any other bytes included) come back as sent."""
        rng, rid = self.rng, self.rid()
        fields = {f"k{i}": self.random_json(self.limits["max_json_depth"] - 3) for i in range(rng.randint(0, 4))}
        arrays = {}
        for index in range(rng.randint(0, self.limits["max_arrays"])):
            dtype = rng.choice(list(DTYPES))
            shape = tuple(rng.randint(0, 6) for _ in range(rng.randint(1, self.limits["max_array_dims"])))
            count = math.prod(shape)
            raw = (
                bytes(rng.getrandbits(1) for _ in range(count))
                if dtype == "|b1"
                else rng.randbytes(count * DTYPES[dtype].itemsize)
            )
            if dtype == "<f4" and count and rng.random() < 0.5:
                raw = (np.full(count, rng.choice([np.nan, np.inf, -np.inf]), np.float32)).tobytes()
            arrays[f"e{index}"] = (dtype, shape, raw)
        decl = [{"name": n, "dtype": d, "shape": list(s)} for n, (d, s, _) in arrays.items()]
        frames = [header("echo", rid, fields, decl), *(raw for _, _, raw in arrays.values())]
        return Case("echo", frames, Expect("echo", id=rid, echo=(fields, arrays)))

    def liveness(self) -> Case:
        rng = self.rng
        choice = rng.randrange(4)
        if choice == 0:
            return Case("heartbeat", [header("heartbeat", None)], Expect("heartbeat", id=None))
        rid = self.rid()
        if choice == 1:
            return Case("heartbeat.id", [header("heartbeat", rid)], Expect("heartbeat", id=rid))
        fields = {} if rng.random() < 0.5 else {"client": rng.choice(["", "  ", self.words(1, 3)])}
        return Case("hello", [header("hello", rid, fields)], Expect("info", id=rid))

    def cancels(self) -> Case:
        rng, rid = self.rng, self.rid()
        choice = rng.randrange(3)
        if choice == 0:  # nothing to cancel: no reply at all
            return Case("cancel.unknown", [header("cancel", rid)], Expect("none", id=rid))
        if choice == 1:  # malformed: an error, but never with the id of the job it names
            extra = rng.choice([{"fields": {"reason": "x"}}, {"arrays": [{"name": "a", "dtype": "|u1", "shape": [1]}]}])
            frames = [header("cancel", rid, **extra)] + ([b"\x01"] if "arrays" in extra else [])
            name = "reason" if "fields" in extra else "a"
            return Case("cancel.malformed", frames, self.error("bad_request", name, None))
        kind = rng.choice(self.job_types())
        fields, arrays = self.valid_request(kind)
        return self.accepted(kind, rid, fields, arrays, "cancel.job")

    def valid_job(self) -> Case:
        rid = self.rid()
        kind = self.rng.choice(self.job_types())
        fields, arrays = self.valid_request(kind)
        if self.immediate(kind):
            return Case("job.valid", [message(kind, rid, fields, arrays)], Expect(self.spec.final_reply[kind], id=rid))
        if kind in self.full_runs:  # the rest are cancelled at once (acknowledged, one final answer)
            self.full_runs[kind] -= 1
            if self.full_runs[kind] < 0:
                return self.accepted(kind, rid, fields, arrays, "job.valid")
        job = self.job_expectation(kind, rid, fields, arrays)
        return Case("job.valid", [message(kind, rid, fields, arrays)], Expect("job", id=rid, job=job))

    def reuse(self, held: str) -> Case:
        """A message (valid or not, of any type but cancel) with the id of a pending job: refused, null id."""
        kind = self.rng.choice([t for t in self.spec.request_types if t != "cancel"])
        fields, arrays = self.valid_request(kind) if kind in self.job_types() else ({}, {})
        if self.rng.random() < 0.3 and fields:
            fields[self.rng.choice(list(fields))] = [1]  # invalid as well: the id is checked first
        return Case("id.pending", [message(kind, held, fields, arrays)], self.error("bad_request", "id", None))


GENERATORS: list[tuple[str, int]] = [  # Fuzzer method, weight
    ("framing", 14),
    ("sizes", 1),
    ("header_keys", 10),
    ("versions", 4),
    ("ids", 5),
    ("types", 5),
    ("field_cases", 30),
    ("array_cases", 16),
    ("declarations", 12),
    ("echo", 6),
    ("liveness", 5),
    ("cancels", 4),
    ("valid_job", 2),
    ("shot_cases", 3),
]


def hostile_cases(fuzzer: Fuzzer, count: int) -> list[Case]:
    makers = [getattr(fuzzer, name) for name, weight in GENERATORS for _ in range(weight)]
    return [fuzzer.rng.choice(makers)() for _ in range(count)]


def uncovered(spec: Spec, cases: list[Case]) -> list[str]:
    """Documented fields, arrays, header keys and limits that no case broke (each must be fuzzed)."""
    broken = {tag for case in cases for tag in case.breaks}
    wanted = {f"field:{f.request}.{f.name}" for f in spec.fields}
    wanted |= {f"array:{a.request}.{a.name}" for a in spec.arrays}
    wanted |= {f"key:{key}" for key in spec.header_keys}
    wanted |= {f"limit:{name}" for name in spec.limits}
    return sorted(wanted - broken)
