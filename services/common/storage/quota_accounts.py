"""Per-user quota accounts: the admission lease (gateways and converters take turns per user) and the
start times of the user's recent uploads. One record per user in `quota_usage`."""
from __future__ import annotations

from pymongo import ReturnDocument
from pymongo.collection import Collection

from .connection import records
from .errors import DuplicateRecord


def collection() -> Collection:
    return records().quota_usage


def ensure_account(owner: str) -> None:
    try:
        collection().update_one({"_id": owner}, {"$setOnInsert": {"lease_until": 0.0, "started": []}}, upsert=True)
    except DuplicateRecord:
        pass  # another process created it at the same moment


def take_lease(owner: str, holder: str, now: float, until: float) -> dict | None:
    """The account, leased to `holder` until `until`; None while another holder's lease runs."""
    return collection().find_one_and_update({"_id": owner, "lease_until": {"$lt": now}},
                                            {"$set": {"lease_until": until, "holder": holder}},
                                            return_document=ReturnDocument.AFTER)


def give_back_lease(owner: str, holder: str) -> None:
    collection().update_one({"_id": owner, "holder": holder}, {"$set": {"lease_until": 0.0}})


def account_of(owner: str) -> dict:
    """The account (empty when the user has none yet): lease_until, holder, started."""
    return collection().find_one({"_id": owner}) or {}


def set_started(owner: str, started: list[float]) -> None:
    collection().update_one({"_id": owner}, {"$set": {"started": started}})
