"""Where the client keeps things: the credential (config folder, readable by the user only) and the
URLs of unfinished uploads (cache folder), both in the places platformdirs names (XDG on Linux)."""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Dict, Iterator, Optional

import platformdirs

APP = "vid2mp3"
DEFAULT_URL = "http://127.0.0.1:8080"


def config_dir() -> Path:
    return Path(platformdirs.user_config_dir(APP))


def cache_dir() -> Path:
    return Path(platformdirs.user_cache_dir(APP))


def credentials_path() -> Path:
    return config_dir() / "credentials.json"


def _private_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path, 0o700)  # mkdir's mode is masked by the umask, and an existing folder keeps its own
    return path


def write_private(path: Path, data: Dict[str, Any]) -> None:
    """Write JSON readable by the user only (0600 in a 0700 folder), replacing the file atomically: the
    secret never sits in a file with wider permissions, not even for a moment."""
    folder = _private_dir(path.parent)
    fd, temp = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.")  # mkstemp creates it 0600
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=1)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise


def read_json(path: Path) -> Dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


# ---------------------------------------------------------------- the credential


def load_credentials() -> Dict[str, Any]:
    """{"url": the server last logged in to, "servers": {url: {"token" | "api_key", "email"}}}."""
    return read_json(credentials_path())


def save_credential(url: str, token: Optional[str] = None, api_key: Optional[str] = None,
                    email: Optional[str] = None) -> Path:
    stored = load_credentials()
    entry = {"token": token} if token else {"api_key": api_key}
    if email:
        entry["email"] = email
    stored.setdefault("servers", {})[url] = entry
    stored["url"] = url
    write_private(credentials_path(), stored)
    return credentials_path()


def forget_credential(url: str) -> bool:
    stored = load_credentials()
    if url not in stored.get("servers", {}):
        return False
    del stored["servers"][url]
    write_private(credentials_path(), stored)
    return True


def resolve_url(given: Optional[str]) -> str:
    """--url, else VID2MP3_URL, else the server of the last login, else the local stack's."""
    url = given or os.environ.get("VID2MP3_URL") or load_credentials().get("url") or DEFAULT_URL
    return url.rstrip("/")


def resolve_credential(url: str) -> Optional[str]:
    """The bearer credential for `url`: VID2MP3_TOKEN or VID2MP3_API_KEY, else the stored one."""
    for name in ("VID2MP3_TOKEN", "VID2MP3_API_KEY"):
        if os.environ.get(name):
            return os.environ[name]
    entry = load_credentials().get("servers", {}).get(url) or {}
    return entry.get("token") or entry.get("api_key")


# ---------------------------------------------------------------- unfinished uploads


class UrlStore:
    """tuspy's URL storage (tusclient.storage.interface.Storage) in a JSON file: the URL of each
    unfinished upload under its fingerprint, so a later run resumes it. Threads of one run and
    runs at once share it (a lock file), and entries older than a tus upload's life are dropped."""

    MAX_AGE = 3 * 86400  # an unfinished upload expires 24 h after its last PATCH (TUS_UPLOAD_EXPIRY_SECONDS)
    _thread_lock = threading.Lock()

    def __init__(self, path: Optional[Path] = None):
        self.path = path or cache_dir() / "uploads.json"

    @contextlib.contextmanager
    def _locked(self) -> Iterator[Dict[str, Any]]:
        import fcntl

        _private_dir(self.path.parent)
        with self._thread_lock, open(self.path.with_suffix(".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            entries = read_json(self.path)
            before = json.dumps(entries, sort_keys=True)
            yield entries
            if json.dumps(entries, sort_keys=True) != before:
                write_private(self.path, entries)

    def get_item(self, key: str) -> Optional[str]:
        with self._locked() as entries:
            entry = entries.get(key)
            return entry["url"] if entry and time.time() - entry["saved"] < self.MAX_AGE else None

    def set_item(self, key: str, url: Optional[str]) -> None:
        with self._locked() as entries:
            for old in [k for k, v in entries.items() if time.time() - v["saved"] >= self.MAX_AGE]:
                del entries[old]
            if url:
                entries[key] = {"url": url, "saved": time.time()}
            else:
                entries.pop(key, None)

    def remove_item(self, key: str) -> None:
        with self._locked() as entries:
            entries.pop(key, None)
