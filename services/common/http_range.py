"""HTTP byte ranges (RFC 9110 §14): one parser for the gateway's downloads and the converter's
loopback video source."""
from __future__ import annotations


class RangeNotSatisfiable(Exception):
    """Answer 416 with `Content-Range: bytes */length`."""

    def __init__(self, length: int):
        super().__init__(f"requested range is outside the {length} bytes of the file")
        self.content_range = f"bytes */{length}"


def byte_range(header: str | None, length: int) -> tuple[int, int] | None:
    """(start, end), both inclusive, of a single `bytes=` range; None to send the whole file.

    Unknown units, several ranges and a range without a dash are ignored (the whole file is a
    valid answer); a range that starts past the end or cannot be read as numbers is unsatisfiable.
    """
    if not header:
        return None
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    if not dash:
        return None
    try:
        start, end = _suffix(int(last), length) if first == "" else (int(first), int(last) if last else length - 1)
    except ValueError:
        raise RangeNotSatisfiable(length) from None
    if start < 0 or start >= length or end < start:
        raise RangeNotSatisfiable(length)
    return start, min(end, length - 1)


def _suffix(count: int, length: int) -> tuple[int, int]:
    """The last `count` bytes."""
    if count <= 0:
        raise ValueError("empty suffix range")
    return max(length - count, 0), length - 1
