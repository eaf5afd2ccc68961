"""The one MongoDB client of a process, its databases, and the ids the stored records get."""
from __future__ import annotations

import secrets

import pymongo
import pymongo.errors
from pymongo.collection import Collection
from pymongo.database import Database

from .. import config

_client: pymongo.MongoClient | None = None


def client() -> pymongo.MongoClient:
    """One client per process (it pools connections and is thread-safe)."""
    global _client
    if _client is None:
        timeout = config.env_int("MONGO_TIMEOUT_MS")
        _client = pymongo.MongoClient(
            config.env("MONGO_URI"),
            serverSelectionTimeoutMS=timeout,
            connectTimeoutMS=timeout,
            socketTimeoutMS=max(timeout, 30000),
            tz_aware=True,
        )
    return _client


def records() -> Database:
    """The database of every record but the files: jobs, uploads, keys, leases, ledgers."""
    return client()[config.env("MONGO_JOBS_DB")]


def ping() -> None:
    client().admin.command("ping")


def new_id() -> str:
    """An unguessable id (96 random bits, hex like an ObjectId so seed clients accept it)."""
    return secrets.token_hex(12)


def insert_new(collection: Collection, document: dict) -> bool:
    """Insert a record under its `_id`; False when one exists (the first writer wins, as in a lock)."""
    try:
        collection.insert_one(document)
        return True
    except pymongo.errors.DuplicateKeyError:
        return False
