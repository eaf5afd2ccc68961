"""Login brute force is limited per account and per client address (with Retry-After), registrations
per client address, on every replica at once; and an unknown user cannot be told from a wrong
password by timing."""
from __future__ import annotations

import statistics
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from devkit.client import Client


@pytest.fixture(scope="module")
def private_auth(private):
    """A private auth with chosen login limits; its base URL."""
    return lambda **limits: private("auth", **limits)[0]


def _login(base, email, password, address=None, timeout=10):
    headers = {"X-Client-Address": address} if address else {}
    return requests.post(f"{base}/login", auth=(email, password), headers=headers, timeout=timeout)


def test_login_is_rate_limited_per_account(stack):
    victim = Client(stack["gateway"]).signed_up()
    answers = [_login(stack["gateway"], victim.email, "wrong-password-x").status_code for _ in range(5)]
    assert answers == [401] * 5
    blocked = _login(stack["gateway"], victim.email, victim.password)  # even the right password now
    assert blocked.status_code == 429 and blocked.json()["error"]["code"] == "too_many_attempts"
    assert 0 < int(blocked.headers["Retry-After"]) <= 61
    # Another account from the same address is not affected.
    other = Client(stack["gateway"]).signed_up()
    assert _login(stack["gateway"], other.email, other.password).status_code == 200


def test_login_is_rate_limited_per_client_address(private_auth):
    base = private_auth(LOGIN_MAX_FAILURES=100, LOGIN_MAX_FAILURES_PER_ADDRESS=3, LOGIN_LOCKOUT_SECONDS=60)
    user = Client(base).signed_up()
    attacker = "203.0.113.77"
    for i in range(3):  # a different account each time: only the address ties them together
        stranger = f"nobody{i}-{uuid.uuid4().hex[:6]}@example.com"
        assert _login(base, stranger, "guess-guess-1", attacker).status_code == 401
    blocked = _login(base, user.email, user.password, attacker)
    assert blocked.status_code == 429 and int(blocked.headers["Retry-After"]) > 0
    assert _login(base, user.email, user.password, "198.51.100.5").status_code == 200


def test_unknown_user_and_wrong_password_take_the_same_time(private_auth):
    base = private_auth(LOGIN_MAX_FAILURES=1000, LOGIN_MAX_FAILURES_PER_ADDRESS=1000)
    user = Client(base).signed_up()
    session = requests.Session()
    unknown, wrong = [], []
    for i in range(16):
        for bucket, email in ((unknown, f"ghost-{uuid.uuid4().hex[:8]}@example.com"), (wrong, user.email)):
            started = time.perf_counter()
            response = session.post(f"{base}/login", auth=(email, f"not-the-password-{i}"), timeout=10)
            bucket.append(time.perf_counter() - started)
            assert response.status_code == 401
    a, b = statistics.median(unknown[1:]), statistics.median(wrong[1:])
    print(f"\nlogin timing medians: unknown user {a * 1000:.1f} ms, wrong password {b * 1000:.1f} ms")
    assert abs(a - b) / max(a, b) < 0.30, (a, b)


def _metric(metrics_url: str, sample: str) -> float:
    """One sample's value on a metrics port (0 before its first increment)."""
    for line in requests.get(f"{metrics_url}/metrics", timeout=10).text.splitlines():
        if line.rpartition(" ")[0] == sample:
            return float(line.rpartition(" ")[2])
    return 0.0


def test_parallel_wrong_logins_check_at_most_the_limit(private):
    """Each attempt is counted before its hash: 32 guesses at once for one account check at most 10."""
    base, metrics = private("auth", LOGIN_MAX_FAILURES=10, ARGON2_MAX_CONCURRENT=2, ARGON2_WAIT_SECONDS=120,
                            ARGON2_TIME_COST=1, ARGON2_MEMORY_KIB=8192, ARGON2_PARALLELISM=1)
    victim = Client(base).signed_up()
    verified = 'auth_password_hashes_total{kind="verify"}'
    before = _metric(metrics, verified)
    with ThreadPoolExecutor(32) as pool:
        answers = list(pool.map(lambda i: _login(base, victim.email, f"guess-number-{i}", "203.0.113.9", 120),
                                range(32)))
    codes = [a.status_code for a in answers]
    checked = _metric(metrics, verified) - before
    print(f"\n32 parallel wrong logins for one account: {checked:.0f} passwords checked, "
          f"{codes.count(401)} answered 401, {codes.count(429)} answered 429")
    assert checked == codes.count(401) == 10 and codes.count(429) == 22, codes
    assert all(int(a.headers["Retry-After"]) > 0 for a in answers if a.status_code == 429)


def test_failures_from_one_address_do_not_lock_the_owner_out_from_another(private):
    base, metrics = private("auth", LOGIN_MAX_FAILURES=10, LOGIN_LOCKOUT_SECONDS=300)
    owner = Client(base).signed_up()
    attacker, home = "203.0.113.10", "198.51.100.20"
    assert [_login(base, owner.email, f"guess-number-{i}", attacker).status_code for i in range(10)] == [401] * 10
    assert _login(base, owner.email, owner.password, home).status_code == 200
    # The pair (account, attacker's address) is locked, even for the right password.
    refused = _login(base, owner.email, owner.password, attacker)
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "too_many_attempts"
    assert 0 < int(refused.headers["Retry-After"]) <= 301
    # The owner's login came after 10 failures of the account: slowed down, not refused.
    assert _metric(metrics, "auth_login_slowdowns_total") == 1


def test_failures_from_many_addresses_slow_the_account_down_without_refusing_it(private):
    base, metrics = private("auth", LOGIN_MAX_FAILURES=3, LOGIN_SLOWDOWN_STEP_SECONDS=0.1,
                            LOGIN_SLOWDOWN_MAX_SECONDS=0.3)
    owner = Client(base).signed_up()
    guesses = [_login(base, owner.email, f"guess-number-{i}", f"203.0.113.{20 + i // 2}").status_code
               for i in range(12)]  # 2 guesses from each of 6 addresses: no pair reaches its limit
    assert guesses == [401] * 12
    assert _metric(metrics, "auth_login_slowdowns_total") == 9  # every guess after the account's third
    started = time.perf_counter()
    assert _login(base, owner.email, owner.password, "198.51.100.30").status_code == 200
    assert time.perf_counter() - started >= 0.3  # the longest delay, and still in


class FromAddress(requests.adapters.HTTPAdapter):
    """Connect from this loopback address (127.0.0.0/8 is all ours): a client with an address of its own."""

    def __init__(self, address: str):
        self.address = address
        super().__init__()

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, source_address=(self.address, 0), **kwargs)


def _client_at(address: str) -> requests.Session:
    session = requests.Session()
    session.mount("http://", FromAddress(address))
    return session


def _register(session: requests.Session, base: str, **headers) -> requests.Response:
    return session.post(f"{base}/register", json={"email": f"reg-{uuid.uuid4().hex[:10]}@example.com",
                                                  "password": "a-good-password-42"}, headers=headers, timeout=15)


@pytest.fixture(scope="module")
def replicas(private, stack):
    """Two auth replicas on one database (one with two gunicorn workers) and a gateway in front of each;
    a third gateway behind a pretend reverse proxy (TRUSTED_PROXY_HOPS=1). Three registrations per hour."""
    limits = dict(REGISTER_MAX_PER_ADDRESS=3, REGISTER_WINDOW_SECONDS=3600,
                  MYSQL_DATABASE=f"vid2mp3_sec_{uuid.uuid4().hex[:8]}")
    auths = [private("auth", **limits), private("auth", GUNICORN_WORKERS=2, **limits)]
    gateways = [private("gateway", AUTH_URL=auths[0][0])[0], private("gateway", AUTH_URL=auths[1][0])[0],
                private("gateway", AUTH_URL=auths[1][0], TRUSTED_PROXY_HOPS=1)[0]]
    return {"auth": auths, "gateway": gateways}


def test_registrations_are_limited_per_address_across_replicas(replicas):
    gw_a, gw_b, _ = replicas["gateway"]
    alice, bob = _client_at("127.0.0.2"), _client_at("127.0.0.3")
    assert [_register(alice, gw).status_code for gw in (gw_a, gw_b, gw_a)] == [201, 201, 201]
    for gw in (gw_b, gw_a):  # the fourth on either replica is refused
        refused = _register(alice, gw)
        assert refused.status_code == 429, refused.text
        assert refused.json()["error"]["code"] == "too_many_registrations"
        assert set(refused.json()["error"]) == {"code", "message"}
        assert 3500 < int(refused.headers["Retry-After"]) <= 3601
    # Headers a client writes itself change nothing: the gateway names the address it saw.
    spoofed = _register(alice, gw_b, **{"X-Forwarded-For": "198.51.100.1", "X-Client-Address": "198.51.100.2",
                                       "X-Real-IP": "198.51.100.3"})
    assert spoofed.status_code == 429
    # Another address is not affected.
    assert _register(bob, gw_b).status_code == 201


def test_concurrent_registrations_never_exceed_the_limit(replicas):
    gw_a, gw_b, _ = replicas["gateway"]
    carol = _client_at("127.0.0.4")
    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(lambda i: _register(carol, (gw_a, gw_b)[i % 2]).status_code, range(8)))
    assert codes.count(201) <= 3 and codes.count(201) + codes.count(429) == 8, codes


def test_behind_a_trusted_proxy_the_forwarded_address_counts(replicas):
    proxied = replicas["gateway"][2]
    proxy = _client_at("127.0.0.5")  # plays the edge proxy: appends the address it saw
    for i in range(3):  # a client forging the left part of the header gets nowhere
        assert _register(proxy, proxied, **{"X-Forwarded-For": f"10.9.9.{i}, 203.0.113.50"}).status_code == 201
    assert _register(proxy, proxied, **{"X-Forwarded-For": "10.9.9.9, 203.0.113.50"}).status_code == 429
    assert _register(proxy, proxied, **{"X-Forwarded-For": "203.0.113.51"}).status_code == 201


def test_rate_limited_registrations_are_counted_on_the_metrics_port(replicas):
    _client = _client_at("127.0.0.6")
    for _ in range(4):
        _register(_client, replicas["gateway"][1])
    total = 0.0
    for _, metrics in replicas["auth"]:
        for line in requests.get(f"{metrics}/metrics", timeout=10).text.splitlines():
            if line.startswith('auth_registrations_total{result="rate_limited"}'):
                total += float(line.split()[-1])
    assert total >= 1


def test_logins_reuse_pooled_mysql_connections(private):
    """Each login (limit checks, user lookup, limit reset) takes its connections from auth's pool: the same
    few MySQL connection ids serve every login instead of a new connection per query."""
    import pymysql

    database = f"vid2mp3_sec_{uuid.uuid4().hex[:8]}"
    base = private("auth", MYSQL_DATABASE=database, MYSQL_POOL_SIZE=2, ARGON2_TIME_COST=1, ARGON2_MEMORY_KIB=8192,
                   ARGON2_PARALLELISM=1)[0]
    user = Client(base).signed_up()
    seen = set()
    admin = pymysql.connect(host="127.0.0.1", user="root", password="", autocommit=True)
    try:
        for _ in range(6):
            assert _login(base, user.email, user.password).status_code == 200
            with admin.cursor() as cur:
                cur.execute("SELECT id FROM information_schema.PROCESSLIST WHERE db = %s", (database,))
                seen |= {row[0] for row in cur.fetchall()}
    finally:
        admin.close()
    assert 1 <= len(seen) <= 2, seen
