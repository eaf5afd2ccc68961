"""The keys that decide reuse and idempotent replays (pure logic)."""
from __future__ import annotations

import pytest

from services.common import idempotency
from services.common.errors import InvalidInput
from services.gateway.http_errors import status_of
from services.gateway.uploads.intake import content_key

SHA = "ab" * 32


def test_content_key_is_canonical_in_the_options():
    assert content_key(SHA, {"bitrate": "128k", "channels": 1}) == content_key(SHA, {"channels": 1, "bitrate": "128k"})
    assert content_key(SHA, {}) != content_key(SHA, {"bitrate": "128k"})
    assert content_key(SHA, {"channels": 1}) != content_key(SHA, {"channels": "1"})
    assert content_key("cd" * 32, {}) != content_key(SHA, {})
    assert content_key(None, {}) is None  # no hash, no reuse


@pytest.mark.parametrize("key", ["0b7d7f3e-8a2c-4d7e-9f1a-0c3e5b6a7d8e", "A", "x" * 128, "b64+/=_.:~-"])
def test_usable_idempotency_keys(key):
    assert idempotency.check_key(key) == key


@pytest.mark.parametrize("key", ["", " ", "x" * 129, "a b", "ключ", "a\x00b", "a\nb", '"quoted"', "a,b"])
def test_garbage_idempotency_keys(key):
    with pytest.raises(InvalidInput) as raised:
        idempotency.check_key(key)
    assert status_of(raised.value) == 400 and raised.value.code == "invalid_idempotency_key"
    assert idempotency.check_key(None) is None
