"""A small reader of Server-Sent Events (text/event-stream), enough for GET /jobs/<id>/events:
`id`, `event` and `data` fields, comments (the keep-alives) skipped."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Iterator, Optional


@dataclass(frozen=True)
class Event:
    event: str
    data: str
    id: Optional[str]


def parse(lines: Iterable[str]) -> Iterator[Event]:
    """The events in a stream's lines (without their line endings)."""
    event, data, event_id = "message", [], None
    for line in lines:
        if line == "":
            if data or event != "message":
                yield Event(event, "\n".join(data), event_id)
            event, data = "message", []
            continue
        if line.startswith(":"):
            continue  # a comment: `: keep-alive`
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "data":
            data.append(value)
        elif name == "event":
            event = value
        elif name == "id":
            event_id = value
