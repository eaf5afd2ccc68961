"""Where an HTTP/1.1 request ends in a byte buffer, without reading it: pure functions for the
gunicorn worker, which reads every request's head and small body before a thread takes it.

Only what framing needs is parsed (method, target, Content-Length, Transfer-Encoding, Expect);
gunicorn's own parser still parses and validates the whole request in the thread. Anything this
module cannot make sense of is left to that parser (it answers 400), so both never disagree on
what a valid request is.
"""
from __future__ import annotations

from dataclasses import dataclass

HEAD_END = b"\r\n\r\n"


class Malformed(ValueError):
    """The bytes are not a request this module can frame; gunicorn's parser answers it."""


@dataclass(frozen=True)
class Head:
    method: str
    target: str
    length: int | None  # Content-Length, when given
    chunked: bool
    expects_continue: bool
    end: int  # index of the first body byte in the buffer

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]

    @property
    def has_body(self) -> bool:
        return self.chunked or bool(self.length)


def parse_head(buffer: bytes | bytearray) -> Head | None:
    """The request head at the start of `buffer`, or None while it is incomplete."""
    start = len(buffer) - len(buffer.lstrip(b"\r\n"))  # empty lines before a request are allowed
    end = buffer.find(HEAD_END, start)
    if end < 0:
        return None
    lines = bytes(buffer[start:end]).decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3:
        raise Malformed("request line")
    fields: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep:
            raise Malformed("header line")
        name = name.strip().lower()
        fields[name] = f"{fields[name]},{value.strip()}" if name in fields else value.strip()
    return Head(method=parts[0], target=parts[1], length=_length(fields.get("content-length")),
                chunked="chunked" in fields.get("transfer-encoding", "").lower(),
                expects_continue=fields.get("expect", "").lower() == "100-continue", end=end + len(HEAD_END))


def _length(value: str | None) -> int | None:
    if value is None:
        return None
    if not value.isdigit():
        raise Malformed("Content-Length")
    return int(value)


def body_end(buffer: bytes | bytearray, head: Head) -> int | None:
    """The index just past the request's body in `buffer`, or None while it is incomplete."""
    if head.chunked:
        return _chunked_end(buffer, head.end)
    end = head.end + (head.length or 0)
    return end if len(buffer) >= end else None


def _chunked_end(buffer: bytes | bytearray, position: int) -> int | None:
    """Walk the chunks: size line, data, CRLF; the last chunk (size 0) is followed by trailers and
    an empty line."""
    while True:
        line_end = buffer.find(b"\r\n", position)
        if line_end < 0:
            return None
        size_text = bytes(buffer[position:line_end]).split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise Malformed("chunk size") from None
        if size == 0:
            return _trailers_end(buffer, line_end + 2)
        position = line_end + 2 + size + 2
        if len(buffer) < position:
            return None


def _trailers_end(buffer: bytes | bytearray, position: int) -> int | None:
    """After the last chunk: an empty line, or trailer fields ended by one."""
    if len(buffer) < position + 2:
        return None
    if buffer[position:position + 2] == b"\r\n":
        return position + 2
    end = buffer.find(HEAD_END, position)
    return None if end < 0 else end + len(HEAD_END)
