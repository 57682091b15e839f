"""Property-based tests of the admin HTTP API from its own OpenAPI description (schemathesis), against the real
`mailgate admin` process and a real broker: every operation, with generated valid and invalid inputs, must answer
with a status and a body its description declares, never a 5xx, and must accept what the description says is valid.

The client logs in first and sends the session cookie and CSRF header with every generated call (logout gets a
session of its own); everything is written to this module's own broker.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request

import pytest
import requests
import schemathesis
from schemathesis import checks
from hypothesis import HealthCheck, given, settings

from mailgate.core.secrets import new_key
from mailgate.ops.admin.auth import hash_password
from tests.support.harness import ROOT, Gateway, free_port
from tests.support.secrets import ADMIN_API_PASSWORD as PASSWORD

pytestmark = pytest.mark.scenario


@pytest.fixture(scope="module")
def admin(tmp_path_factory, kafka_jars):
    """The base URL of a `mailgate admin` on its own broker."""
    work = tmp_path_factory.mktemp("admin-properties")
    gw = Gateway(work)
    gw.configure({"admin": {"username": "root", "password_hash": hash_password(PASSWORD, n=2 ** 12)}})
    gw.start_broker()
    from mailgate.ops.tracking.store import Store
    Store.open(gw.cfg).close()  # an empty tracking store (created and migrated): the tracking endpoints answer
    port = free_port()
    env = {**os.environ, "MAILGATE_SECRET_KEY": new_key()}
    log = open(work / "admin.log", "ab")
    proc = subprocess.Popen([sys.executable, "-m", "mailgate.ops.cli", "admin", "--config", str(gw.config_path),
                             "--listen", f"127.0.0.1:{port}"], stdout=log, stderr=subprocess.STDOUT,
                            cwd=str(ROOT), env=env, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(base + "/api/openapi.json", timeout=2):
                break
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise AssertionError((work / "admin.log").read_text()) from None
            time.sleep(0.2)
    try:
        yield base
    finally:
        proc.terminate()
        proc.wait(20)
        log.close()
        gw.stop_broker()


NEEDS_A_REACHABLE_SERVER = [checks.positive_data_acceptance]
"""The one place where the description and the API cannot agree: an outbound gateway with `verify_before_save`
(and enabled) is saved only if its server answers, and a generated address has none behind it. Such a case, refused
with 422 and a `verify` result saying which step failed, is checked for everything but "valid input accepted".

Everywhere else the description is as tight as the API (mailgate/ops/admin/openapi_inputs.py): schemathesis's
"schema-valid input is accepted" check is on. "Accepted" is schemathesis's own reading: any answer that does not
refuse the input itself (2xx; 404 for a gateway or message that does not exist; 409 for a name already taken)."""


def _verify_refusal(case, response) -> bool:
    """A create/replace refused because "verify connection before save" could not reach the server."""
    body = case.body if isinstance(case.body, dict) else {}
    if response.status_code != 422 or not body.get("verify_before_save"):
        return False
    try:
        return "verify" in response.json()
    except ValueError:
        return False


def call_and_check(case, base: str, auth: dict):
    """Send the case and run every check on the answer (see NEEDS_A_REACHABLE_SERVER for the one exception)."""
    response = case.call(base_url=base, timeout=60, **auth)
    excluded = NEEDS_A_REACHABLE_SERVER if _verify_refusal(case, response) else []
    case.validate_response(response, excluded_checks=excluded, headers=auth["headers"],
                           transport_kwargs={"base_url": base, **auth})
    return response


def login(base: str) -> dict:
    """A fresh session: the keyword arguments that make a call carry its cookie and CSRF header."""
    r = requests.post(base + "/api/login", json={"username": "root", "password": PASSWORD}, timeout=30)
    assert r.status_code == 200, r.text
    return {"cookies": {"mailgate_session": r.cookies["mailgate_session"]},
            "headers": {"X-CSRF-Token": r.json()["csrf_token"]}}


def operations(base: str) -> list:
    schema = schemathesis.openapi.from_url(base + "/api/openapi.json")
    return [result.ok() for result in schema.get_all_operations()]


def test_every_operation_answers_as_its_openapi_description_says(admin):
    """Each operation in turn (hypothesis drives schemathesis's strategies; schemathesis's own pytest plugin does
    not load with this pytest): on the first failing case, its check's message names the operation."""
    base = admin
    auth = login(base)
    ops = operations(base)
    assert len(ops) >= 10, [op.label for op in ops]
    statuses: dict[str, set[int]] = {}
    for op in ops:
        @given(case=op.as_strategy())
        @settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True,
                  database=None)
        def check(case) -> None:
            # Logging out ends the session it is called with: give it one of its own.
            use = login(base) if op.label == "POST /api/logout" else auth
            response = call_and_check(case, base, use)
            statuses.setdefault(op.label, set()).add(response.status_code)

        check()
    assert set(statuses) == {op.label for op in ops}
    print("\nadmin API properties:", {label: sorted(codes) for label, codes in sorted(statuses.items())})
    assert any(2 <= c // 100 <= 2 for codes in statuses.values() for c in codes)  # not only refusals
