"""Which webhook targets are refused (server-side request forgery), the link tokens, the signature."""
from __future__ import annotations

import base64
import ipaddress
import json
import time

import pytest
import standardwebhooks

from services.common import callbacks, links
from services.common.callbacks import CallbackRefused, callback_url, resolve
from services.common.webhook_secrets import new_secret
from services.notification import webhook


@pytest.fixture(autouse=True)
def shipped_allow_list(monkeypatch):
    """The allow list as shipped: the setting's default (no k8s config.env sets it)."""
    monkeypatch.delenv("WEBHOOK_ALLOWED_NETWORKS", raising=False)


# Hosts a resolver reads as 127.0.0.1 (or another number) although they are not a dotted quad.
NUMERIC_SPELLINGS = ["0x7f000001", "0X7F000001", "2130706433", "127.1", "127.0.1", "0177.0.0.1", "0x7f.0.0.1",
                     "0x7f.1", "017700000001", "127.0.0.1.", "0127.0.0.1", "8.8.8.010", "0x08080808", "134744072"]
# IPv6 addresses that lead to a non-public IPv4 address (or where the IPv4 one cannot be known).
IPV6_CARRYING_PRIVATE = [
    "::ffff:127.0.0.1", "::ffff:7f00:1", "::ffff:169.254.169.254",  # IPv4-mapped
    "::127.0.0.1", "::7f00:1", "::10.0.0.1", "::169.254.169.254",  # IPv4-compatible
    "::ffff:0:127.0.0.1", "::ffff:0:10.0.0.1",  # IPv4-translated (SIIT)
    "64:ff9b::127.0.0.1", "64:ff9b::7f00:1", "64:ff9b::10.0.0.1", "64:ff9b::a9fe:a9fe", "64:ff9b::192.168.0.1",
    "64:ff9b:1::10.0.0.1", "64:ff9b:1:7f00:1::", "64:ff9b:1::8.8.8.8",  # local-use NAT64: never public
    "2002:7f00:1::1", "2002:a00:1::", "2002:a9fe:a9fe::1", "2002:c0a8:1::1",  # 6to4
    "2001:0:4136:e378:8000:63bf:3fff:fdd2", "2001::8.8.8.8", "2001:0:7f00:1::",  # Teredo
]
IPV6_CARRYING_PUBLIC = ["::ffff:8.8.8.8", "::8.8.8.8", "64:ff9b::8.8.8.8", "64:ff9b::5db8:d822", "2002:808:808::1"]


@pytest.mark.parametrize("url", [
    "file:///etc/passwd", "ftp://example.com/x", "gopher://example.com/", "javascript:alert(1)", "//example.com/x",
    "http://10.0.0.1/", "http://[::1]/", "http://127.0.0.1:8080/", "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:10.0.0.1]/", "http://169.254.169.254/latest/meta-data", "http://0.0.0.0/", "http://[::]/",
    "http://224.0.0.1/", "http://100.64.0.1/", "http://192.168.1.1/", "http://172.16.0.1/", "http://240.0.0.1/",
    "http://[fe80::1]/", "http://[fc00::1]/", "http://[ff02::1]/", "https://user:pw@example.com/",
    "http://example.com:99999/", "http://exa mple.com/", "http://example.com/" + "a" * 3000, "http:///nohost",
])
def test_forbidden_targets_are_refused_at_upload(url):
    with pytest.raises(CallbackRefused):
        callback_url(url)


@pytest.mark.parametrize("host", NUMERIC_SPELLINGS)
def test_numeric_spellings_of_an_address_are_refused_at_upload_and_delivery(host):
    for check in (callback_url, resolve):
        with pytest.raises(CallbackRefused, match="dotted-quad"):
            check(f"http://{host}:8080/hook")


@pytest.mark.parametrize("address", IPV6_CARRYING_PRIVATE)
def test_ipv6_forms_are_judged_by_the_ipv4_address_they_carry(address):
    with pytest.raises(CallbackRefused, match="non-public"):
        callback_url(f"http://[{address}]/hook")
    with pytest.raises(CallbackRefused, match="non-public"):
        callbacks.check_address(ipaddress.ip_address(address))  # what a delivery checks for each DNS answer


@pytest.mark.parametrize("address", IPV6_CARRYING_PUBLIC)
def test_ipv6_forms_carrying_a_public_ipv4_address_pass(address):
    assert callback_url(f"http://[{address}]/hook") == f"http://[{address}]/hook"
    assert callbacks.carried_ipv4(ipaddress.ip_address(address)).is_global


def test_names_that_merely_contain_digits_are_names():
    for url in ("http://1.2.3.4.nip.io/", "http://0x7f.example.com/", "http://123abc/", "http://8.8.8.8/"):
        assert callback_url(url) == url


def test_public_targets_and_blanks_pass():
    assert callback_url("https://hooks.example.com/v1?a=b") == "https://hooks.example.com/v1?a=b"
    assert callback_url("  http://93.184.216.34/in  ") == "http://93.184.216.34/in"
    assert callback_url("") is None and callback_url(None) is None


def test_a_name_resolving_to_loopback_is_refused_at_delivery():
    assert callback_url("http://localhost:9/") == "http://localhost:9/"  # a name: judged when resolved
    with pytest.raises(CallbackRefused, match="non-public"):
        resolve("http://localhost:9/")


def test_the_allow_list_opens_only_its_networks(monkeypatch):
    monkeypatch.setenv("WEBHOOK_ALLOWED_NETWORKS", "127.0.0.0/8")
    target = resolve("http://127.0.0.1:9/p?q=1")
    assert (target.address, target.port, target.path, target.host) == ("127.0.0.1", 9, "/p?q=1", "127.0.0.1")
    assert callback_url("http://[::ffff:127.0.0.1]/")  # the IPv4 it carries is inside the list
    for url in ("http://10.0.0.1/", "http://[::1]/", "http://169.254.169.254/"):
        with pytest.raises(CallbackRefused):
            callback_url(url)


def test_the_signature_verifies_with_the_standardwebhooks_package():
    secret, body = new_secret(), webhook.event_body("job.done", {"job_id": "j1", "filename": "<x>.mp4"})
    now = int(time.time())
    headers = {"webhook-id": "msg_j1_done", "webhook-timestamp": str(now)}
    headers["webhook-signature"] = webhook.signature(secret, headers["webhook-id"], now, body)
    verifier = standardwebhooks.Webhook(secret)
    assert verifier.verify(body, headers) == json.loads(body)
    forged = dict(headers, **{"webhook-signature": webhook.signature(new_secret(), "msg_j1_done", now, body)})
    with pytest.raises(standardwebhooks.webhooks.WebhookVerificationError):
        verifier.verify(body, forged)
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 32


def test_link_tokens_are_tamper_proof_and_expire(monkeypatch):
    monkeypatch.setenv("LINK_SECRET", "s" * 40)
    token = links.sign("job1", "mp3one", 2_000_000_000)
    assert links.verify(token, now=1_000_000_000) == links.Link("job1", "mp3one", 2_000_000_000)
    with pytest.raises(links.LinkExpired):
        links.verify(token, now=2_000_000_001)
    payload, _, sig = token.rpartition(".")
    other_job = base64.urlsafe_b64encode(b'["job2","mp3one",2000000000]').decode().rstrip("=")
    for forged in (token[:-2] + ("AA" if token[-2:] != "AA" else "BB"), payload + ".", "x", "",
                   f"{other_job}.{sig}"):
        with pytest.raises(links.LinkForged):
            links.verify(forged, now=1)
    monkeypatch.setenv("LINK_SECRET", "t" * 40)  # a rotated secret voids old links
    with pytest.raises(links.LinkForged):
        links.verify(token, now=1)


def test_link_secret_is_required_outside_dev_mode(monkeypatch):
    monkeypatch.setenv("LINK_SECRET", "short")
    monkeypatch.setenv("AUTH_DEV_MODE", "0")
    with pytest.raises(RuntimeError, match="LINK_SECRET"):
        links.signing_key()
    monkeypatch.setenv("AUTH_DEV_MODE", "1")
    assert links.signing_key() == "short"
    assert callbacks.MAX_URL_LENGTH == 2000
