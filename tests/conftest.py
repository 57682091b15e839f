"""Shared fixtures: the project root on sys.path, a whole mailgate per scenario test, a recording SMTP primary."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@pytest.fixture(scope="session")
def kafka_jars():
    from mailgate.broker import fetch_jars
    from mailgate.config import LocalBrokerConfig
    from tests.support.harness import LIBS
    return fetch_jars(LocalBrokerConfig(libs=LIBS))


@pytest.fixture
def primary():
    from tests.support.harness import SmtpPrimary
    p = SmtpPrimary().start()
    yield p
    p.stop()


@pytest.fixture
def gateway(tmp_path, kafka_jars):
    """A Gateway whose broker and stages are stopped after the test (configure() and start_broker() first)."""
    from tests.support.harness import Gateway
    gw = Gateway(tmp_path)
    yield gw
    gw.stop_all()
    if gw.cfg is not None:
        gw.stop_broker()
