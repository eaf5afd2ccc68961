"""The users table in MySQL/MariaDB (PyMySQL): schema, lookups, creation, through a connection pool."""
from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pymysql
import pymysql.cursors
from dbutils.pooled_db import PooledDB

from services.common import config

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS users (
        id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
        email VARCHAR(254) NOT NULL,
        password_hash VARCHAR(255) NOT NULL,
        is_admin BOOLEAN NOT NULL DEFAULT FALSE,
        created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
        UNIQUE KEY users_email (email)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin""",
    # Attempts per key in a window (failed logins per account or client address, registrations per
    # client address), for limits that hold across replicas (limits.py).
    """CREATE TABLE IF NOT EXISTS login_failures (
        `key` VARCHAR(300) NOT NULL PRIMARY KEY,
        failures INT UNSIGNED NOT NULL,
        window_start DOUBLE NOT NULL
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin""",
    # Personal API keys (api_keys.py): looked up by their public id, the primary key; the secret only as
    # its SHA-256. Times are epoch seconds. A user's keys go with the user.
    """CREATE TABLE IF NOT EXISTS api_keys (
        id CHAR(16) NOT NULL PRIMARY KEY,
        user_id BIGINT UNSIGNED NOT NULL,
        name VARCHAR(100) NOT NULL,
        scope VARCHAR(8) NOT NULL,
        secret_hash BINARY(32) NOT NULL,
        created_at DOUBLE NOT NULL,
        expires_at DOUBLE NULL,
        last_used_at DOUBLE NULL,
        KEY api_keys_user (user_id),
        CONSTRAINT api_keys_owner FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin""",
]

_schema_ready = threading.Event()
_schema_lock = threading.Lock()
_pool: PooledDB | None = None
_pool_lock = threading.Lock()


class DuplicateEmail(Exception):
    pass


def _settings(database: bool = True) -> dict:
    return {
        "host": config.env("MYSQL_HOST"),
        "port": config.env_int("MYSQL_PORT"),
        "user": config.env("MYSQL_USER"),
        "password": config.env("MYSQL_PASSWORD"),
        "database": config.env("MYSQL_DATABASE") if database else None,
        "charset": "utf8mb4",
        "connect_timeout": 5,
        "read_timeout": 10,
        "write_timeout": 10,
        "autocommit": True,
        "cursorclass": pymysql.cursors.DictCursor,
    }


def pool() -> PooledDB:
    """The process's pool, made on first use: in the gunicorn worker, after telemetry has instrumented
    pymysql.connect (PooledDB keeps the connect function it was made with)."""
    global _pool
    with _pool_lock:
        if _pool is None:
            # Up to MYSQL_POOL_SIZE idle connections are kept; a thread that finds none opens one (at most
            # one per request thread). Each is pinged when taken from the pool and reopened when the
            # server has gone away (a MariaDB restart). Autocommit: nothing to roll back on return.
            _pool = PooledDB(pymysql, maxcached=max(config.env_int("MYSQL_POOL_SIZE"), 1), ping=1,
                             reset=False, **_settings())
        return _pool


@contextmanager
def cursor() -> Iterator[pymysql.cursors.DictCursor]:
    """A cursor on a pooled connection (autocommit), returned to the pool afterwards."""
    ensure_schema()
    with pool().connection() as conn, conn.cursor() as cur:
        yield cur


@contextmanager
def transaction() -> Iterator[pymysql.cursors.DictCursor]:
    """A cursor inside one transaction: committed at the end of the block, rolled back on an exception."""
    ensure_schema()
    with pool().connection() as conn:
        conn.begin()
        try:
            with conn.cursor() as cur:
                yield cur
            conn.commit()
        except BaseException:
            conn.rollback()
            raise


def ensure_schema() -> None:
    """Create the database and tables if missing (idempotent; retried until it succeeds once)."""
    if _schema_ready.is_set():
        return
    with _schema_lock:
        if _schema_ready.is_set():
            return
        name = config.env("MYSQL_DATABASE")
        conn = pymysql.connect(**_settings(database=False))  # once per process, before the database exists
        try:
            with conn.cursor() as cur:
                cur.execute(f"CREATE DATABASE IF NOT EXISTS `{name.replace('`', '')}` "
                            "CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
                cur.execute(f"USE `{name.replace('`', '')}`")
                for statement in SCHEMA:
                    cur.execute(statement)
        finally:
            conn.close()
        _schema_ready.set()


def query_one(sql: str, args: tuple) -> dict | None:
    with cursor() as cur:
        cur.execute(sql, args)
        return cur.fetchone()


def execute(sql: str, args: tuple) -> int:
    """Run one statement; returns the last inserted id (or 0)."""
    with cursor() as cur:
        cur.execute(sql, args)
        return cur.lastrowid or 0


def find_user(email: str) -> dict | None:
    return query_one("SELECT id, email, password_hash, is_admin FROM users WHERE email = %s", (email,))


def create_user(email: str, password_hash: str, is_admin: bool = False) -> int:
    try:
        return execute("INSERT INTO users (email, password_hash, is_admin) VALUES (%s, %s, %s)",
                       (email, password_hash, is_admin))
    except pymysql.err.IntegrityError as exc:
        if exc.args and exc.args[0] == 1062:
            raise DuplicateEmail(email) from None
        raise


def update_password(user_id: int, password_hash: str) -> None:
    execute("UPDATE users SET password_hash = %s WHERE id = %s", (password_hash, user_id))


def set_admin(email: str, is_admin: bool) -> bool:
    with cursor() as cur:
        return cur.execute("UPDATE users SET is_admin = %s WHERE email = %s", (is_admin, email)) == 1


def ping() -> None:
    """Raise unless the database answers (a pooled connection, reopened if the server restarted)."""
    ensure_schema()
    with pool().connection() as conn:
        conn.ping(False)
