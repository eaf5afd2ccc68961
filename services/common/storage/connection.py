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
    return database(config.env("MONGO_JOBS_DB"))


_databases: dict[str, Database] = {}


def database(name: str) -> Database:
    """The client's database `name`, made once (pymongo builds a new object, with its codec options, on
    every client[name]: a few % of a status poll's CPU)."""
    found = _databases.get(name)
    if found is None or found.client is not client():
        found = _databases[name] = client()[name]
    return found


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
