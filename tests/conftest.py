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
    from mailgate.ops.broker import fetch_jars
    from mailgate.core.config import LocalBrokerConfig
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


def _sweep_for_secrets(base: Path) -> tuple[int, int, list[str]]:
    """Search every stage/broker log and Kafka log segment under `base` for the tests' passwords."""
    from tests.support.secrets import ALL
    needles = [s.encode() for s in ALL]
    files = size = 0
    hits = []
    for path in base.rglob("*"):
        if not path.is_file() or path.is_symlink():
            continue
        is_log = path.suffix == ".log" or "/data/" in str(path) or "/logs/" in str(path)
        if not is_log or path.suffix in (".yaml", ".yml", ".pem", ".properties"):
            continue
        data = path.read_bytes()
        files, size = files + 1, size + len(data)
        hits += [f"{path}: {n.decode()!r}" for n in needles if n in data]
    return files, size, hits


def pytest_sessionfinish(session, exitstatus):
    """Invariant 5 over the whole run: no password the tests configured appears in any log or topic."""
    factory = getattr(session.config, "_tmp_path_factory", None)
    if factory is None or factory._basetemp is None:
        return
    files, size, hits = _sweep_for_secrets(factory.getbasetemp())
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    line = f"secret sweep: {files} log and Kafka segment files ({size / 1e6:.1f} MB) searched, {len(hits)} hits"
    if reporter is not None:
        reporter.write_line(line + ("".join("\n  " + h for h in hits[:20])))
    if hits:
        session.exitstatus = 1
