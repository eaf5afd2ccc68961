"""Reads of job revisions shared by the polls that wait at the same moment (issue 24).

A poll that finds a read of revisions on its way to the database waits for it to end, then goes in the
next read together with every poll that arrived meanwhile: one `find` of all their ids. Each answer
still comes from a read sent after its poll arrived, so nothing is cached and nothing can be stale; what
the polls of one process share is the round trip (and the storage server's work). A poll waits at most
for the read in flight plus its own.
"""
from __future__ import annotations

import threading
from collections.abc import Callable

from services.common.storage import job_records

from . import metrics

Match = dict
ReadMany = Callable[[list[Match]], list["int | None"]]


class _Ask:
    """One poll's place in a read: its match, then its answer (or the read's error), or the turn to read."""

    def __init__(self, match: Match):
        self.match, self.answer, self.answered, self.reads = match, None, False, False
        self.error: BaseException | None = None
        self.ready = threading.Event()


class SharedReads:
    """Revisions by match, one read in flight at a time for the whole process, each read taking every poll
    that waits. `read_many` answers a list of matches in order (None: no such job)."""

    def __init__(self, read_many: ReadMany):
        self._read_many = read_many
        self._lock = threading.Lock()
        self._waiting: list[_Ask] = []
        self._reading = False

    def revision(self, match: Match) -> int | None:
        ask = _Ask(match)
        with self._lock:
            self._waiting.append(ask)
            ask.reads = not self._reading
            self._reading = True
        if not ask.reads:
            ask.ready.wait()  # an answer, or the turn to read
        if ask.reads:
            self._read_next()
        if ask.error is not None:
            raise ask.error
        if not ask.answered:  # its reader was interrupted: never a silent 404
            raise RuntimeError("the shared read of job revisions was interrupted")
        return ask.answer

    def _read_next(self) -> None:
        """Read for everyone waiting now, then pass the turn to the first poll that came meanwhile."""
        with self._lock:
            batch, self._waiting = self._waiting, []
        try:
            answers = self._read_many([ask.match for ask in batch])
            for ask, answer in zip(batch, answers, strict=True):
                ask.answer, ask.answered = answer, True
            metrics.REVISION_READS.observe(len(batch))
        except Exception as error:  # noqa: BLE001 - each poll of the read answers with its error (a 503)
            for ask in batch:
                ask.error = error
        finally:
            self._pass_turn(batch)

    def _pass_turn(self, batch: list[_Ask]) -> None:
        with self._lock:
            following = self._waiting[0] if self._waiting else None
            self._reading = following is not None
            if following is not None:
                following.reads = True
        for ask in batch:
            ask.reads = False
            ask.ready.set()
        if following is not None:
            following.ready.set()


READS = SharedReads(job_records.job_revisions)
