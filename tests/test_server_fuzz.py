"""The service keeps shared/protocol.md message for message: over 10,000 seeded messages built from the document's
tables (`fuzzing`, `protocol_spec`), mostly hostile, sent from many identities to a server and to a broker with two
workers. Every message must get exactly the one final answer the document calls for (type, code, field, the id it
may carry, the limit its message states) and nothing else; every reply must match the document's reply tables;
a pending job's id is never carried by another request's answer; then both still serve."""

from __future__ import annotations

import json
import random
import time
from collections import Counter, deque
from dataclasses import dataclass, field

import numpy as np
import pytest
import torch
import zmq
from fuzzing import Case, Expect, Fuzzer, header, hostile_cases, uncovered
from protocol_spec import Spec, read_spec
from serving import (
    GATED_TEXT,
    LOOPBACK_ANY_PORT,
    connected_client,
    gate_fixture,  # noqa: F401  (pytest fixture "gate")
    running_server,
    tiny_model,
)

from backend.model.config import tiny_config
from backend.model.tokenizer import count_text_tokens
from backend.service.broker import Broker, BrokerConfig
from backend.service.server import Server, ServerConfig, process_rss_bytes
from shared.protocol import DEFAULT_LIMITS, Message, ProtocolError, decode_reply

SEED = 20240611
MESSAGES = 10_000  # cases per server kind (a case is one message, or a job and its cancel)
CONNECTIONS = 16
IN_FLIGHT = 48  # cases awaiting their answer per connection
CROWD = 64  # further identities, a few messages each, all at once
HELD_REUSES = 12  # messages per connection reusing the id of a held (pending) job
WAIT_S = 60.0  # bound on the whole exchange's silence (a loaded 2-core CI machine)
GRACE_S = 0.3  # listening for stray answers once every case is answered
QUEUE_SIZE = 256  # the valid jobs among the hostile messages must never meet a full queue
FULL_RUNS = {
    "inbetween": 8,
    "caption": 16,
    "shot": 3,
}  # valid jobs of these (slow) types that run to the end; the rest are
# cancelled right after they are sent (an in-between refines for ~1.5 s per candidate on the tiny model)


@dataclass
class Pending:
    """A case on the wire: its answers so far."""

    case: Case
    replies: list[Message] = field(default_factory=list)
    final: Message | None = None


@dataclass
class Report:
    messages: int = 0
    classes: Counter = field(default_factory=Counter)
    replies: Counter = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)

    def fail(self, case: Case | None, problem: str) -> None:
        if len(self.failures) < 50:
            what = "" if case is None else f"[{case.cls}] {case.messages[0][0][:100]!r}: "
            self.failures.append(what + problem)


# ----------------------------------------------------------------------------------------------- reply checks

JSON_TYPES = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "list": lambda v: isinstance(v, list),
    "object": lambda v: isinstance(v, dict),
    "null": lambda v: v is None,
}


def reply_problems(
    spec: Spec, reply: Message, request_type: str | None, limits: dict, request_fields: dict | None = None
) -> list[str]:
    """Where a reply breaks the document's reply tables (fields, their types and presence, arrays, codes)."""
    if reply.type not in spec.reply_types:
        return [f"undocumented reply type {reply.type!r}"]
    if reply.type == "echo":
        return []
    problems, request_fields = [], request_fields or {}
    for row in [r for r in spec.reply_fields if r.reply == reply.type]:
        if row.when is not None:
            wanted = reply.fields.get(row.when[0]) == row.when[1]
        elif row.for_requests is not None:
            wanted = request_type in row.for_requests if request_type else row.name in reply.fields
            if row.with_field is not None and request_type:
                wanted = wanted and bool(request_fields.get(row.with_field))
        else:
            wanted = True
        if wanted != (row.name in reply.fields):
            problems.append(f"{reply.type}.{row.name}: {'missing' if wanted else 'present'}")
        elif wanted and not any(JSON_TYPES[t](reply.fields[row.name]) for t in row.types):
            problems.append(f"{reply.type}.{row.name}: {reply.fields[row.name]!r} is not {' or '.join(row.types)}")
    documented = {r.name for r in spec.reply_fields if r.reply == reply.type}
    if extra := set(reply.fields) - documented:
        problems.append(f"{reply.type}: undocumented fields {sorted(extra)}")
    for row in [r for r in spec.reply_arrays if r.reply == reply.type]:
        wanted = request_type in (row.for_requests or ()) if request_type else row.name in reply.arrays
        if wanted != (row.name in reply.arrays):
            problems.append(f"{reply.type} array {row.name}: {'missing' if wanted else 'present'}")
    if extra := set(reply.arrays) - {r.name for r in spec.reply_arrays if r.reply == reply.type}:
        problems.append(f"{reply.type}: undocumented arrays {sorted(extra)}")
    if reply.type == "error" and reply.fields.get("code") not in spec.errors:
        problems.append(f"undocumented error code {reply.fields.get('code')!r}")
    if reply.type == "info":
        if reply.fields.get("limits") != limits:
            problems.append(f"info.limits {reply.fields.get('limits')} are not the server's {limits}")
        if set(reply.fields.get("stats", {})) != {"queued", "running", "done", "rss_bytes", "uptime_s"}:
            problems.append(f"info.stats has {sorted(reply.fields.get('stats', {}))}")
    if reply.type == "progress" and reply.fields.get("stage") not in (
        "queued",
        "diffusion",
        "decoding",
        "refine",
        "shot",
    ):
        problems.append(f"progress stage {reply.fields.get('stage')!r}")
    return problems


def outcome_problems(pending: Pending) -> list[str]:
    """Where a case's answers differ from its expectation."""
    expect, final, replies = pending.case.expect, pending.final, pending.replies
    if expect.kind == "none":
        return [f"no answer expected, got {[r.type for r in replies]}"] if replies else []
    if final is None:
        return [f"no final answer (got {[r.type for r in replies]})"]
    if final.id != expect.id:
        return [f"final answer carries id {final.id!r}, expected {expect.id!r}"]
    if expect.kind == "error":
        got = (final.type, final.fields.get("code"), final.fields.get("field"))
        if got != ("error", expect.code, expect.field):
            return [f"got {got} {final.fields.get('message')!r}, expected error {expect.code} {expect.field!r}"]
        missing = [s for s in expect.states if s not in final.fields["message"]]
        return [f"message {final.fields['message']!r} does not state {missing}"] if missing else []
    if expect.kind in ("info", "heartbeat"):
        return [] if final.type == expect.kind else [f"got {final.type} {final.fields}, expected {expect.kind}"]
    if expect.kind == "echo":
        return echo_problems(expect, final)
    return job_problems(expect, replies, final)


def echo_problems(expect: Expect, final: Message) -> list[str]:
    fields, arrays = expect.echo
    if final.type != "echo":
        return [f"got {final.type} {final.fields}, expected echo"]
    if json.dumps(final.fields, sort_keys=True) != json.dumps(fields, sort_keys=True):
        return ["echo fields differ"]
    got = {name: (a.dtype.str, a.shape, a.tobytes()) for name, a in final.arrays.items()}
    return [] if got == arrays else ["echo arrays differ (names, dtypes, shapes or bytes)"]


def job_problems(expect: Expect, replies: list[Message], final: Message) -> list[str]:
    job = expect.job
    if not replies or replies[0].type != "progress" or replies[0].fields.get("stage") != "queued":
        return [f"a job's first answer must be its `queued` progress, got {[r.type for r in replies[:2]]}"]
    allowed = ("result", "cancelled") if expect.kind == "job-or-cancelled" else ("result",)
    if final.type not in allowed:
        return [f"job ended with {final.type} {final.fields}, expected {allowed}"]
    if any(r.type != "progress" for r in replies[:-1]):
        return [f"only progress may come before the final answer: {[r.type for r in replies]}"]
    if final.type != "result":
        return []
    if job["frames"] is None:  # a job without motions (caption; a type this test has no semantics for)
        return []
    motions = final.arrays["motions"]
    if motions.shape != (job["candidates"], job["frames"], 263) or not np.isfinite(motions).all():
        return [f"motions {motions.shape} (finite: {np.isfinite(motions).all()}), expected {job}"]
    arrays = job["arrays"]
    if job["type"] == "inbetween":  # the known frames come back exactly as sent
        known = arrays["known"].astype(bool)
        if not all(np.array_equal(m[known], arrays["features"][known]) for m in motions):
            return ["in-between changed a known frame"]
    if job["type"] == "predict" and not all(
        np.array_equal(m[: len(arrays["features"])], arrays["features"]) for m in motions
    ):
        return ["predict changed the input clip"]
    return []


# ----------------------------------------------------------------------------------------------- the exchange


class Connection:
    """One DEALER identity and the cases it has on the wire (answers matched by id, null-id answers in order)."""

    def __init__(self, context: zmq.Context, address: str, identity: str) -> None:
        self.socket = context.socket(zmq.DEALER)
        self.socket.linger = 0
        self.socket.routing_id = identity.encode()
        self.socket.connect(address)
        self.by_id: dict[str, Pending] = {}
        self.null_ids: deque[Pending] = deque()
        self.open: set[int] = set()  # ids (python) of cases awaiting their final answer
        self.all: list[Pending] = []

    def send(self, case: Case, report: Report) -> None:
        pending = Pending(case)
        self.all.append(pending)
        if case.expect.id is None and case.expect.kind != "none":
            self.null_ids.append(pending)
        elif case.expect.id is not None:
            self.by_id[case.expect.id] = pending
        if case.expect.kind != "none":
            self.open.add(id(pending))
        for frames in case.messages:
            self.socket.send_multipart(frames)
            report.messages += 1
        report.classes[case.cls] += 1

    def receive(self, spec: Spec, limits: dict, report: Report) -> int:
        """Handle every waiting answer; returns how many came."""
        count = 0
        while True:
            try:
                frames = self.socket.recv_multipart(flags=zmq.NOBLOCK)
            except zmq.Again:
                return count
            count += 1
            try:
                reply = decode_reply(frames)
            except ProtocolError as error:
                report.fail(None, f"an answer that is not a valid reply: {error} {frames[0][:120]!r}")
                continue
            report.replies[reply.type if reply.type != "error" else f"error:{reply.fields.get('code')}"] += 1
            if reply.id is None:
                pending = self.null_ids.popleft() if self.null_ids else None
            else:
                pending = self.by_id.get(reply.id)
            if pending is None:
                report.fail(None, f"an answer no message asked for: {reply.type} {reply.id} {reply.fields}")
                continue
            job = pending.case.expect.job or {}
            for problem in reply_problems(spec, reply, job.get("type"), limits, job.get("fields")):
                report.fail(pending.case, problem)
            if pending.final is not None:
                report.fail(pending.case, f"a second answer after the final one: {reply.type} {reply.fields}")
            pending.replies.append(reply)
            if reply.type in spec.final_replies and pending.final is None:
                pending.final = reply
                self.open.discard(id(pending))

    def close(self) -> None:
        self.socket.close()


def exchange(
    address: str,
    cases: list[Case],
    identities: int,
    prefix: str,
    spec: Spec,
    limits: dict,
    report: Report,
    context: zmq.Context,
) -> None:
    """Send the cases round-robin over `identities` connections, at most IN_FLIGHT open per connection; check every
    answer as it comes and every case's outcome at the end."""
    connections = [Connection(context, address, f"{prefix}-{i}") for i in range(identities)]
    queues = [deque(cases[i::identities]) for i in range(identities)]
    last_answer = time.monotonic()
    while any(queues) or any(c.open for c in connections):
        for connection, queue in zip(connections, queues, strict=True):
            while queue and len(connection.open) < IN_FLIGHT:
                connection.send(queue.popleft(), report)
        if sum(c.receive(spec, limits, report) for c in connections):
            last_answer = time.monotonic()
        elif time.monotonic() - last_answer > WAIT_S:
            open_cases = [p.case.cls for c in connections for p in c.all if id(p) in c.open]
            report.fail(None, f"no answer for {WAIT_S:g} s; {len(open_cases)} cases open: {Counter(open_cases)}")
            break
        else:
            time.sleep(0.0005)
    deadline = time.monotonic() + GRACE_S  # strays: a second answer, or one to a message that needs none
    while time.monotonic() < deadline:
        for connection in connections:
            connection.receive(spec, limits, report)
        time.sleep(0.01)
    for connection in connections:
        for pending in connection.all:
            for problem in outcome_problems(pending):
                report.fail(pending.case, problem)
        connection.close()


def held_reuse(
    address: str, fuzzer: Fuzzer, spec: Spec, limits: dict, report: Report, context: zmq.Context, connections: int
) -> None:
    """Each connection holds a job (the gate keeps it running), sends messages reusing its id (refused, null id,
    the job untouched), then cancels it: its one final answer is `cancelled`."""
    for index in range(connections):
        connection = Connection(context, address, f"held-{index}")
        held = fuzzer.rid()
        hold = Case(
            "id.held",
            [header("generate", held, {"text": GATED_TEXT, "frames": 20, "steps": 2})],
            Expect("job-or-cancelled", id=held, job={"type": "generate", "candidates": 1, "frames": 20}),
        )
        connection.send(hold, report)
        deadline = time.monotonic() + WAIT_S
        while len(connection.all[0].replies) < 1 and time.monotonic() < deadline:
            connection.receive(spec, limits, report)
            time.sleep(0.001)
        for _ in range(HELD_REUSES):
            connection.send(fuzzer.reuse(held), report)
        connection.socket.send_multipart([header("cancel", held)])
        report.messages += 1
        while connection.open and time.monotonic() < deadline:
            connection.receive(spec, limits, report)
            time.sleep(0.001)
        final = connection.all[0].final
        if final is None or final.type != "cancelled":
            report.fail(hold, f"the held job ended with {None if final is None else (final.type, final.fields)}")
        for pending in connection.all:
            for problem in outcome_problems(pending):
                report.fail(pending.case, problem)
        connection.close()


def fuzz(address: str, prefix: str) -> tuple[Report, Spec, dict]:
    """The whole campaign against one address; returns the report, the spec it was built from, RSS before/after."""
    with connected_client(address) as client:
        info = client.request("hello", {"client": "fuzz"}).fields
    limits = info["limits"]
    spec = read_spec(limits)
    assert list(limits) == list(DEFAULT_LIMITS.to_dict()), "info.limits must list every documented limit"
    fuzzer = Fuzzer(spec, count_text_tokens, random.Random(SEED), prefix=prefix, full_runs=dict(FULL_RUNS))
    cases = hostile_cases(fuzzer, MESSAGES)
    report = Report()
    rss_before = process_rss_bytes()
    context = zmq.Context()
    try:
        exchange(address, cases, CONNECTIONS, prefix, spec, limits, report, context)
        crowd = hostile_cases(fuzzer, CROWD * 3)
        exchange(address, crowd, CROWD, prefix + "-crowd", spec, limits, report, context)
        held_reuse(address, fuzzer, spec, limits, report, context, connections=4)
    finally:
        context.destroy(linger=0)
    memory = {"rss_before": rss_before, "rss_after": process_rss_bytes()}
    if missing := uncovered(spec, cases + crowd):
        report.fail(None, f"documented but never fuzzed: {missing}")
    return report, spec, memory


def summary(kind: str, report: Report, memory: dict, seconds: float) -> str:
    mib = {key: None if value is None else round(value / 2**20, 1) for key, value in memory.items()}
    return (
        f"{kind}: {report.messages} messages in {seconds:.1f} s, {len(report.classes)} classes "
        f"{dict(sorted(report.classes.items()))}; answers {dict(sorted(report.replies.items()))}; "
        f"RSS MiB {mib}"
    )


def still_serves(address: str, model) -> None:
    with connected_client(address) as client:
        event = client.request("generate", {"text": "a person waves", "frames": 24, "seed": 9, "steps": 4})
        assert event.type == "result" and event.arrays["motions"].shape == (1, 24, 263)


@pytest.fixture(scope="module", name="models")
def models_fixture():
    """Three tiny models (a server; a broker's two workers), one torch thread (tiny tensors)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield [tiny_model() for _ in range(3)]
    torch.set_num_threads(threads)


def test_a_server_answers_every_documented_and_hostile_message_as_written(models, gate, capsys):
    started = time.monotonic()
    with running_server(models[0], queue_size=QUEUE_SIZE) as server:
        report, _, memory = fuzz(server.address, "s")
        assert not report.failures, "\n".join(report.failures)
        assert report.messages >= 10_000
        # a frame far over the limit: ZeroMQ drops that connection (no answer is possible) ...
        context = zmq.Context()
        giant = context.socket(zmq.DEALER)
        giant.linger = 0
        giant.connect(server.address)
        giant.send_multipart([header("echo", "g"), bytes(4 * DEFAULT_LIMITS.max_message_bytes + 1)])
        assert not giant.poll(timeout=300)
        context.destroy(linger=0)
        # ... and nothing is left behind: no job, every identity's state bounded, the server serves
        assert server._jobs.counts() == {"queued": 0, "running": 0} and not server._jobs._jobs
        still_serves(server.address, models[0])
    with capsys.disabled():
        print("\n" + summary("server", report, memory, time.monotonic() - started))


def test_a_broker_with_workers_answers_exactly_as_a_server(models, gate, capsys):
    started = time.monotonic()
    broker = Broker(tiny_config(), BrokerConfig(bind=LOOPBACK_ANY_PORT, heartbeat_s=0.2, queue_size=QUEUE_SIZE))
    broker.start()
    workers = [
        Server(
            model, ServerConfig(connect=broker.backend_address, name=f"w{i}", heartbeat_s=0.2, queue_size=QUEUE_SIZE)
        )
        for i, model in enumerate(models[1:])
    ]
    try:
        for worker in workers:
            worker.start()
        with connected_client(broker.address, heartbeat_s=0.2) as client:
            deadline = time.monotonic() + 30
            while client.request("hello", {}).fields["workers"] < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
        report, _, memory = fuzz(broker.address, "b")
        assert not report.failures, "\n".join(report.failures)
        assert report.messages >= 10_000
        assert not broker._routes and all(not w.jobs for w in broker.workers.values())
        still_serves(broker.address, models[1])
    finally:
        for worker in workers:
            worker.stop()
        broker.stop()
    with capsys.disabled():
        print("\n" + summary("broker + 2 workers", report, memory, time.monotonic() - started))


def test_a_broker_without_workers_refuses_exactly_as_a_server_and_jobs_are_unavailable():
    """Before any worker is ready the broker's info has every documented field, and a message is refused for the
    same reason a server would give; only a valid job meets `unavailable`."""
    broker = Broker(tiny_config(), BrokerConfig(bind=LOOPBACK_ANY_PORT))
    broker.start()
    try:
        spec = read_spec()
        fuzzer = Fuzzer(spec, count_text_tokens, random.Random(SEED + 2), prefix="n")
        with connected_client(broker.address) as client:
            info = client.request("hello", {})
            assert reply_problems(spec, Message("info", info.request_id, info.fields), None, spec.limits) == []
            assert (info.fields["workers"], info.fields["device"], info.fields["model"]) == (0, None, "tiny")
            assert info.fields["parameters"] == sum(p.numel() for p in tiny_model().parameters())
        context = zmq.Context()
        socket = context.socket(zmq.DEALER)
        socket.linger = 0
        socket.connect(broker.address)
        checked = 0
        for _ in range(300):
            case = fuzzer.field_cases()
            if case.expect.kind != "error":
                continue
            socket.send_multipart(case.messages[0])
            assert socket.poll(timeout=10_000)
            answer = decode_reply(socket.recv_multipart())
            assert outcome_problems(Pending(case, [answer], answer)) == []
            checked += 1
        context.destroy(linger=0)
        assert checked > 100
        with connected_client(broker.address) as client:
            refused = client.request("generate", {"text": "walk", "frames": 20})
            assert (refused.type, refused.fields["code"]) == ("error", "unavailable")
    finally:
        broker.stop()
