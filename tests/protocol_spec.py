"""shared/protocol.md read as data: the tables of message types, header keys, request fields and arrays, reply
fields and arrays, limits and error codes, with the grammar of their range / presence cells (written under each
table in the document). The doc tests check the code against it and the fuzzer is built from it; a cell this
reader does not understand is an error, never skipped."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

DOC = Path(__file__).resolve().parents[1] / "shared" / "protocol.md"
FPS = 20.0  # the document's "frames at 20 fps"

Number = int | float


def doc_text() -> str:
    return DOC.read_text(encoding="utf-8")


def section(title: str, text: str | None = None) -> str:
    """The body of the section headed `## title` or `### title`, up to the next heading of its level or above."""
    text = doc_text() if text is None else text
    match = re.search(rf"^(#+) {re.escape(title)}\n", text, flags=re.M)
    if match is None:
        raise KeyError(f"protocol.md has no section {title!r}")
    level = len(match.group(1))
    rest = text[match.end() :]
    end = re.search(rf"^#{{1,{level}}} ", rest, flags=re.M)
    return rest if end is None else rest[: end.start()]


def _cells(line: str) -> list[str]:
    """A table row's cells: split on `|` except an escaped `\\|` (kept as `|`)."""
    parts = re.split(r"(?<!\\)\|", line.strip().strip("|"))
    return [part.strip().replace("\\|", "|") for part in parts]


def tables(body: str) -> list[list[dict[str, str]]]:
    """Every table in a section body, each as a list of {header cell: cell} rows."""
    found, lines = [], body.splitlines()
    index = 0
    while index < len(lines):
        if lines[index].startswith("|") and index + 1 < len(lines) and set(lines[index + 1]) <= set("|- :"):
            names = _cells(lines[index])
            rows, index = [], index + 2
            while index < len(lines) and lines[index].startswith("|"):
                rows.append(dict(zip(names, _cells(lines[index]), strict=True)))
                index += 1
            found.append(rows)
        else:
            index += 1
    return found


def names(cell: str) -> list[str]:
    """The backticked names of a cell: "`generate`, `predict`" -> ["generate", "predict"]."""
    return re.findall(r"`([^`]+)`", cell)


def only(cell: str) -> str:
    (name,) = names(cell)
    return name


# ----------------------------------------------------------------------------------------------- cell grammars


@dataclass(frozen=True)
class Bound:
    """low..high (inclusive; None = open), of the value itself (unit None) or of its length in a unit."""

    low: Number | None
    high: Number | None
    unit: str | None = None  # "characters", "tokens", "items", "frames" (seconds at 20 fps), or a shape letter
    low_limit: str | None = None  # the limit's name when a bound is one
    high_limit: str | None = None


def _bound_value(text: str, limits: dict[str, Any]) -> tuple[Number | None, str | None]:
    if not text:
        return None, None
    if text.startswith("`"):
        name = text.strip("`")
        return limits[name], name
    return json.loads(text), None


_BOUND = r"`\w+`|-?\d+(?:\.\d+)?"
RANGE = re.compile(rf"^(?P<low>{_BOUND})?\.\.(?P<high>{_BOUND})?(?: (?P<unit>characters|tokens|frames|items))?$")
LETTER_RANGE = re.compile(r"^(?P<letter>[A-Z]): (?P<low>`\w+`|\d+)?\.\.(?P<high>`\w+`|\d+)?$")


def parse_range(cell: str, limits: dict[str, Any]) -> tuple[tuple[Bound, ...], bool]:
    """A request field's range cell -> (bounds, blank is absent)."""
    cell, blank_is_absent = cell, False
    if cell.endswith("; blank is absent"):
        cell, blank_is_absent = cell[: -len("; blank is absent")], True
    if cell in ("", "—"):
        return (), blank_is_absent
    bounds = []
    for part in cell.split(", "):
        match = RANGE.match(part)
        if match is None:
            raise ValueError(f"protocol.md: range {part!r} is not in the fuzzer's grammar")
        low, low_limit = _bound_value(match["low"] or "", limits)
        high, high_limit = _bound_value(match["high"] or "", limits)
        bounds.append(Bound(low, high, match["unit"], low_limit, high_limit))
    return tuple(bounds), blank_is_absent


@dataclass(frozen=True)
class FieldSpec:
    """One row of "Request fields" for one request type."""

    request: str
    name: str
    type: str  # string, integer, number, boolean, list, object
    required: bool
    partner: str | None  # the other field of an "`a` or `b`" pair (exactly one of them)
    bounds: tuple[Bound, ...]
    blank_is_absent: bool
    example: Any


@dataclass(frozen=True)
class ArraySpec:
    """One row of "Request arrays" for one request type."""

    request: str
    name: str
    dtypes: tuple[str, ...]
    shape: tuple[str | int, ...]  # ints are fixed sizes, letters are shared sizes
    bounds: dict[str, Bound]  # letter -> its bound
    when: dict[str, dict[str, Bound]] = field(default_factory=dict)  # boolean field -> letter -> bound when it's true
    finite: bool = False
    binary: bool = False  # values 0 or 1
    some_one: bool = False  # at least one 1


@dataclass(frozen=True)
class ReplyFieldSpec:
    """One row of "Reply fields" (or of the reply arrays table)."""

    reply: str
    name: str
    types: tuple[str, ...]  # e.g. ("string", "null")
    when: tuple[str, str] | None = None  # (field, value): present exactly when that field has that value
    for_requests: tuple[str, ...] | None = None  # present exactly for replies to these request types ...
    with_field: str | None = None  # ... whose request set this boolean field


@dataclass
class Spec:
    """Everything the fuzzer and the doc tests read from protocol.md."""

    header_keys: dict[str, str]  # key -> type
    request_types: list[str]
    final_reply: dict[str, str | None]  # request type -> its final reply type (None: no reply of its own)
    reply_types: list[str]
    final_replies: list[str]
    fields: list[FieldSpec]
    arrays: list[ArraySpec]
    reply_fields: list[ReplyFieldSpec]
    reply_arrays: list[ReplyFieldSpec]
    limits: dict[str, Any]  # the defaults of the Limits table
    errors: dict[str, str]
    reply_array_shapes: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def fields_of(self, request: str) -> list[FieldSpec]:
        return [spec for spec in self.fields if spec.request == request]

    def arrays_of(self, request: str) -> list[ArraySpec]:
        return [spec for spec in self.arrays if spec.request == request]


SHAPE = re.compile(r"^\((?P<dims>[^)]*)\)$")


def _shape(cell: str) -> tuple[str | int, ...]:
    match = SHAPE.match(cell)
    if match is None:
        raise ValueError(f"protocol.md: shape {cell!r} is not (a, b, ...)")
    dims = [dim.strip() for dim in match["dims"].split(",") if dim.strip()]
    return tuple(int(dim) if dim.isdigit() else dim for dim in dims)


def _array_constraints(cell: str, limits: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = {"bounds": {}, "when": {}}
    for part in cell.split(", "):
        if condition := re.match(r"^with `(\w+)`: (.*)$", part):
            inner = _array_constraints(condition[2], limits)
            result["when"][condition[1]] = inner["bounds"]
        elif match := LETTER_RANGE.match(part):
            low, low_limit = _bound_value(match["low"] or "", limits)
            high, high_limit = _bound_value(match["high"] or "", limits)
            result["bounds"][match["letter"]] = Bound(low, high, match["letter"], low_limit, high_limit)
        elif part == "finite":
            result["finite"] = True
        elif part == "0 or 1":
            result["binary"] = True
        elif part == "at least one 1":
            result["some_one"] = True
        else:
            raise ValueError(f"protocol.md: array constraint {part!r} is not in the fuzzer's grammar")
    return result


def _types(cell: str) -> tuple[str, ...]:
    types = tuple(part.strip() for part in cell.split(" or "))
    unknown = set(types) - {"string", "integer", "number", "boolean", "list", "object", "null"}
    if unknown:
        raise ValueError(f"protocol.md: type {cell!r} is not in the fuzzer's grammar")
    return types


def _presence(row: dict[str, str]) -> dict[str, Any]:
    cell = row["present"]
    if cell == "always":
        return {}
    if match := re.fullmatch(r"when `(\w+)` is `(\w+)`", cell):
        return {"when": (match[1], match[2])}
    if match := re.fullmatch(r"for a `(\w+)` with `(\w+)`", cell):
        return {"for_requests": (match[1],), "with_field": match[2]}
    if cell.startswith("for a "):
        return {"for_requests": tuple(names(cell))}
    raise ValueError(f"protocol.md: presence {cell!r} is not in the fuzzer's grammar")


def _limits_table() -> dict[str, Any]:
    (rows,) = tables(section("Limits"))
    return {only(row["limit"]): json.loads(row["default"]) for row in rows}


@lru_cache(maxsize=8)
def _read(limits_json: str) -> Spec:
    limits = json.loads(limits_json)
    header_rows = tables(section("Messages"))[1]
    header_keys = {only(row["key"]): row["type"] for row in header_rows}
    (request_rows,) = tables(section("Requests (client → server)").split("\n### ", 1)[0])
    reply_rows = tables(section("Replies (server → client)").split("\n### ", 1)[0])[0]
    fields = []
    for row in tables(section("Request fields"))[0]:
        bounds, blank = parse_range(row["range"], limits)
        required = row["required"]
        pair = names(required)
        for request in names(row["request"]):
            name = only(row["field"])
            fields.append(
                FieldSpec(
                    request=request,
                    name=name,
                    type=row["type"],
                    required=required == "yes",
                    partner=next((other for other in pair if other != name), None) if len(pair) == 2 else None,
                    bounds=bounds,
                    blank_is_absent=blank,
                    example=json.loads(only(row["example"])),
                )
            )
            if required not in ("yes", "no") and len(pair) != 2:
                raise ValueError(f"protocol.md: required {required!r} is not in the fuzzer's grammar")
    arrays = []
    for row in tables(section("Request arrays"))[0]:
        constraints = _array_constraints(row["range"], limits)
        for request in names(row["request"]):
            arrays.append(
                ArraySpec(
                    request=request,
                    name=only(row["array"]),
                    dtypes=tuple(names(row["dtype"])),
                    shape=_shape(row["shape"]),
                    **constraints,
                )
            )
    field_rows, array_rows = tables(section("Reply fields"))
    reply_fields = [
        ReplyFieldSpec(only(row["reply"]), only(row["field"]), _types(row["type"]), **_presence(row))
        for row in field_rows
    ]
    reply_arrays = [
        ReplyFieldSpec(only(row["reply"]), only(row["array"]), tuple(names(row["dtype"])), **_presence(row))
        for row in array_rows
    ]
    (error_rows,) = tables(section("Errors"))
    return Spec(
        header_keys=header_keys,
        request_types=[only(row["type"]) for row in request_rows],
        final_reply={only(row["type"]): (names(row["final reply"]) or [None])[0] for row in request_rows},
        reply_types=[only(row["type"]) for row in reply_rows],
        final_replies=[only(row["type"]) for row in reply_rows if row["final"] == "yes"],
        fields=fields,
        arrays=arrays,
        reply_fields=reply_fields,
        reply_arrays=reply_arrays,
        limits=limits,
        errors={only(row["code"]): row["meaning"] for row in error_rows},
        reply_array_shapes={only(row["array"]): _shape(row["shape"]) for row in array_rows},
    )


def read_spec(limits: dict[str, Any] | None = None) -> Spec:
    """The document's tables, with limit names in ranges resolved against `limits` (default: the document's own
    defaults; a server's `info.limits` to fuzz that server)."""
    return _read(json.dumps(limits or _limits_table(), sort_keys=True))


def documented_limits() -> dict[str, Any]:
    """The Limits table: name -> default."""
    return _limits_table()


def examples() -> list[dict]:
    return [json.loads(block) for block in re.findall(r"```json\n(.*?)\n```", doc_text(), flags=re.S)]
