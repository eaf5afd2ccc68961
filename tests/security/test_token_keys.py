"""The gateway verifies tokens with auth's published keys: a key rotation keeps every valid token working,
a retired key stops working, made-up kids cannot make the gateway hammer auth, and authenticated
requests keep being answered while auth is down."""
from __future__ import annotations

import time
import uuid

import jwt
import pytest
import requests
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from devkit.client import Client
from devkit.keys import hmac_token, new_private_pem, public_pem
from devkit.net import free_port

K1, K2 = new_private_pem(), new_private_pem()
CHEAP_HASHES = {"ARGON2_TIME_COST": 1, "ARGON2_MEMORY_KIB": 8192, "ARGON2_PARALLELISM": 1}  # keys are tested here


@pytest.fixture(scope="module")
def keys(private, stack):
    """auth restarted at one address with each rotation step's keys; a gateway with a 1 s key cache
    (`fresh`) and one that keeps its keys an hour (`cached`)."""
    database, port = f"vid2mp3_sec_{uuid.uuid4().hex[:8]}", free_port()
    state = {"auth": None}

    def auth(private_key: str, public_keys: str = "") -> str:
        if state["auth"]:
            private.stop(state["auth"])
        state["auth"] = private("auth", AUTH_PORT=port, MYSQL_DATABASE=database, JWT_PRIVATE_KEY=private_key,
                                JWT_PUBLIC_KEYS=public_keys, **CHEAP_HASHES)[0]
        return state["auth"]

    def cached() -> tuple[str, str]:
        """Made on first use: it fetches the key set of that moment, then keeps it for an hour."""
        if "cached" not in state:
            state["cached"] = private("gateway", AUTH_URL=f"http://127.0.0.1:{port}", JWKS_CACHE_SECONDS=3600,
                                      JWKS_REFRESH_MIN_SECONDS=3600)
        return state["cached"]

    auth(K1)
    fresh = private("gateway", AUTH_URL=f"http://127.0.0.1:{port}", JWKS_CACHE_SECONDS=1, JWKS_REFRESH_MIN_SECONDS=1)
    return {"auth": auth, "fresh": fresh[0], "cached": cached, "stop_auth": lambda: private.stop(state.pop("auth")),
            "user": Client(fresh[0]).signed_up()}


def _jobs(gateway: str, token: str) -> requests.Response:
    return requests.get(f"{gateway}/jobs", headers={"Authorization": f"Bearer {token}"}, timeout=10)


def _code(response: requests.Response) -> tuple[int, str | None]:
    return response.status_code, response.json().get("error", {}).get("code") if response.status_code != 200 else None


def _fetches(metrics: str) -> float:
    text = requests.get(f"{metrics}/metrics", timeout=10).text
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith("gateway_jwks_fetches_total{"))


def test_rotation_keeps_tokens_valid_and_a_retired_key_stops_verifying(keys):
    gw, user = keys["fresh"], keys["user"]
    old_token = user.token
    assert _jobs(gw, old_token).status_code == 200
    keys["auth"](K2, public_pem(K1))  # the new key signs, the old one still verifies
    new_token = user.login()
    assert jwt.get_unverified_header(new_token)["kid"] != jwt.get_unverified_header(old_token)["kid"]
    assert _jobs(gw, new_token).status_code == 200  # unknown kid: the gateway fetched the new key set
    assert _jobs(gw, old_token).status_code == 200
    keys["auth"](K2)  # the old key is retired
    time.sleep(1.5)  # > JWKS_CACHE_SECONDS of this gateway
    assert _code(_jobs(gw, old_token)) == (401, "invalid_token")
    assert _jobs(gw, new_token).status_code == 200
    # signed with the retired key under the current key's kid: the signature does not verify
    forged = jwt.encode({"sub": "1", "iat": int(time.time()), "exp": int(time.time()) + 60},
                        load_pem_private_key(K1.encode(), None), algorithm="EdDSA",
                        headers={"kid": jwt.get_unverified_header(new_token)["kid"]})
    assert _code(_jobs(gw, forged)) == (401, "invalid_token")


def test_public_key_as_hmac_secret_and_unknown_kids_are_refused_without_calls_to_auth(keys):
    gw, metrics = keys["cached"]()
    token = keys["user"].login()
    assert _jobs(gw, token).status_code == 200
    kid = jwt.get_unverified_header(token)["kid"]
    claims = {"sub": "1", "admin": True, "iat": int(time.time()), "exp": int(time.time()) + 600}
    before = _fetches(metrics)
    for i in range(30):
        made_up = jwt.encode(claims, load_pem_private_key(new_private_pem().encode(), None), algorithm="EdDSA",
                             headers={"kid": f"made-up-{i}"})
        assert _code(_jobs(gw, made_up)) == (401, "invalid_token")
    for secret in (public_pem(K2).encode(), public_pem(K2).strip().encode()):
        assert _code(_jobs(gw, hmac_token(claims, secret, kid))) == (401, "invalid_token")
    assert _fetches(metrics) == before  # refreshes are rate-limited (JWKS_REFRESH_MIN_SECONDS)


def test_gateway_keeps_verifying_while_auth_is_down(keys):
    user = keys["user"]
    user.login()
    keys["stop_auth"]()
    time.sleep(1.5)  # the fresh gateway's cache is stale now: its refetch fails, it keeps the keys
    for gw in (keys["fresh"], keys["cached"]()[0]):
        for _ in range(3):
            assert _jobs(gw, user.token).status_code == 200
        assert _code(_jobs(gw, user.token + "x")) == (401, "invalid_token")
        login = requests.post(f"{gw}/login", auth=(user.email, user.password), timeout=10)
        assert _code(login) == (503, "auth_unavailable")  # logins do need auth
