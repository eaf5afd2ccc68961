"""POST /upload with a callback_url on a gateway with the shipped WEBHOOK_ALLOWED_NETWORKS: numeric spellings
of an address and IPv6 forms carrying a non-public IPv4 address answer 400 invalid_callback_url before any job
exists; IPv6 forms carrying a public one pass the check (the upload then stops for want of a file, so no job
calls a public address from a test). (The pure guard's matrix is in tests/unit/test_callbacks.py.)"""
from __future__ import annotations

import pytest
import requests

from services.common import config
from services.common.storage import job_records
from devkit.client import Client
from devkit.media import make_media
from tests.unit.test_callbacks import IPV6_CARRYING_PRIVATE, IPV6_CARRYING_PUBLIC, NUMERIC_SPELLINGS


@pytest.fixture(scope="module")
def shipped_gateway(stack, private):
    shipped = {name: default for name, default, _ in config.SETTINGS}["WEBHOOK_ALLOWED_NETWORKS"]
    base, _ = private("gateway", AUTH_URL=stack["auth"], WEBHOOK_ALLOWED_NETWORKS=shipped)
    return base


@pytest.fixture(scope="module")
def user(shipped_gateway):
    return Client(shipped_gateway).signed_up()


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return make_media(tmp_path_factory.mktemp("ssrf") / "clip.mp4", seconds=1)


def upload(user, video, callback_url: str) -> requests.Response:
    with open(video, "rb") as f:  # the field before the file: refused before the body is stored
        return requests.post(f"{user.base}/upload", headers=user.auth, timeout=60,
                             files=[("callback_url", (None, callback_url)), ("file", (video.name, f))])


REFUSED = [f"http://{host}/hook" for host in NUMERIC_SPELLINGS] + \
          [f"http://[{address}]/hook" for address in IPV6_CARRYING_PRIVATE]


@pytest.mark.parametrize("url", REFUSED)
def test_hidden_private_targets_answer_400_and_store_nothing(user, video, url):
    before = job_records.collection().count_documents({})
    response = upload(user, video, url)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "invalid_callback_url"
    assert job_records.collection().count_documents({}) == before


@pytest.mark.parametrize("address", IPV6_CARRYING_PUBLIC)
def test_ipv6_forms_carrying_a_public_address_pass_the_check(user, address):
    response = requests.post(f"{user.base}/upload", headers=user.auth, timeout=60,
                             files=[("callback_url", (None, f"http://[{address}]/hook"))])
    assert response.status_code == 400 and response.json()["error"]["code"] == "missing_file", response.text
