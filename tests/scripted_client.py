"""A scripted stand-in for shared.client.MotionClient in the Blender tests: the test decides what each poll returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Event:  # the shape of shared.client.Event
    type: str
    request_id: str | None
    fields: dict[str, Any] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)


class ScriptedClient:
    """MotionClient's interface; the test decides which events each poll() returns."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, dict, dict]] = []
        self.cancelled: list[str] = []
        self.queue: list[Event] = []
        self.connected = True
        self.closed = False

    def submit(self, type: str, fields: dict, arrays: dict | None = None) -> str:
        request_id = f"r{len(self.sent)}"
        self.sent.append((request_id, type, dict(fields), dict(arrays or {})))
        return request_id

    def poll(self) -> list[Event]:
        events, self.queue = self.queue, []
        return events

    def cancel(self, request_id: str) -> None:
        self.cancelled.append(request_id)

    def close(self) -> None:
        self.closed = True
