"""The janitor's totals (one document), left for the gateway to expose: a CronJob's process is gone
before any scrape."""
from __future__ import annotations

from pymongo.collection import Collection

from .connection import records

STATS_ID = "stats"


def collection() -> Collection:
    return records().janitor


def record_round(stored: dict[str, dict[str, int]], uploads_in_progress: int, now: float,
                 removed: dict[str, int], expired: int) -> None:
    """What storage holds now, and a round's removals and expiries added to the running totals."""
    increments = {f"removed.{reason}": count for reason, count in removed.items() if count}
    if expired:
        increments["expired"] = expired
    update: dict = {"$set": {"stored": stored, "uploads_in_progress": uploads_in_progress, "last_run": now}}
    if increments:
        update["$inc"] = increments
    collection().update_one({"_id": STATS_ID}, update, upsert=True)


def latest() -> dict:
    """The totals so far (empty before the first round): stored, removed, expired, uploads_in_progress, last_run."""
    return collection().find_one({"_id": STATS_ID}) or {}
