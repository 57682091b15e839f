"""Property-based tests of the admin HTTP API from its own OpenAPI description (schemathesis), against the real
`mailgate admin` process and a real broker: every operation, with generated valid and invalid inputs, must answer
with a status and a body its description declares, never a 5xx, and must accept what the description says is valid.

The client logs in first and sends the session cookie and CSRF header with every generated call (logout gets a
session of its own); everything is written to this module's own broker.
"""
from __future__ import annotations

import pytest
import requests
import schemathesis
from schemathesis import GenerationMode, checks
from hypothesis import HealthCheck, given, settings

from mailgate.core.secrets import new_key
from mailgate.ops.admin.auth import hash_password
from tests.support.admin_server import admin_server
from tests.support.harness import Gateway
from tests.support.secrets import ADMIN_API_PASSWORD as PASSWORD

pytestmark = pytest.mark.scenario


@pytest.fixture(scope="module")
def admin(tmp_path_factory, kafka_jars):
    """The base URL of a `mailgate admin` on its own broker."""
    gw = Gateway(tmp_path_factory.mktemp("admin-properties"))
    gw.configure({"admin": {"username": "root", "password_hash": hash_password(PASSWORD, n=2 ** 12)}})
    try:
        gw.start_broker()
        from mailgate.ops.tracking.store import Store
        Store.open(gw.cfg).close()  # an empty tracking store (created and migrated): the tracking endpoints answer
        with admin_server(gw, extra_env={"MAILGATE_SECRET_KEY": new_key()}) as base:
            yield base
    finally:
        gw.release()


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


SESSION_SUPPLIED_BY_THE_TEST = [checks.negative_data_rejection]
"""An invalid case made so by a missing or wrong session cookie or CSRF header cannot be sent as such: the test puts
its own session on every call, so the call is (as far as the session goes) a valid one and may be accepted. (Calls without a session are refused with 401:
tests/integration/test_admin_api.py.)"""


def _session_mutation(case) -> bool:
    """The case was made invalid (also) by taking away or changing the session cookie or the CSRF header."""
    data = case.meta.phase.data if case.meta is not None else None
    places = [(getattr(data, "parameter_location", None), getattr(data, "parameter", None))]
    places += [(m.parameter_location, m.parameter) for m in getattr(data, "mutations", None) or []]
    return any(loc is not None and (loc.name == "COOKIE" or (loc.name == "HEADER" and str(name).lower() ==
                                                              "x-csrf-token")) for loc, name in places)


def call_and_check(case, base: str, auth: dict):
    """Send the case and run every check on the answer (see NEEDS_A_REACHABLE_SERVER and
    SESSION_SUPPLIED_BY_THE_TEST for the two exceptions)."""
    response = case.call(base_url=base, timeout=60, **auth)
    excluded = NEEDS_A_REACHABLE_SERVER if _verify_refusal(case, response) else []
    if _session_mutation(case):
        excluded = excluded + SESSION_SUPPLIED_BY_THE_TEST
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


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["valid", "invalid"])
def test_every_operation_answers_as_its_openapi_description_says(admin, mode):
    """Each operation in turn, with inputs its description calls valid (each must be accepted) or invalid (each must
    be refused with a 4xx); every answer is checked: never a 5xx, a documented status, a body as described.
    Hypothesis drives schemathesis's strategies (schemathesis's own pytest plugin does not load with this pytest):
    on the first failing case, its check's message names the operation."""
    base = admin
    auth = login(base)
    ops = operations(base)
    assert len(ops) >= 10, [op.label for op in ops]
    statuses: dict[str, set[int]] = {}
    for op in ops:
        @given(case=op.as_strategy(generation_mode=mode))
        @settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True,
                  database=None)
        def check(case) -> None:
            # Logging out ends the session it is called with: give it one of its own.
            use = login(base) if op.label == "POST /api/logout" else auth
            response = call_and_check(case, base, use)
            statuses.setdefault(op.label, set()).add(response.status_code)

        check()
    assert set(statuses) == {op.label for op in ops}
    print(f"\nadmin API properties ({mode.value} inputs):",
          {label: sorted(codes) for label, codes in sorted(statuses.items())})
    if mode == GenerationMode.POSITIVE:
        assert any(c // 100 == 2 for codes in statuses.values() for c in codes)  # not only refusals
