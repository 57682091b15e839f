"""Shared fixtures: the project root on sys.path, a whole mailgate per scenario test, a recording SMTP primary."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


REQUIRE_PEERS = "MAILGATE_REQUIRE_PEERS"
"""Set to 1 (scripts/test does, so CI does): a test skipped because a real peer (spamd, rspamd, chromium, selenium)
is missing fails instead. Peer skips say so in their reason: "(peer missing: <name>)"."""
PEER_MISSING = "peer missing:"


_MISSING_AT_COLLECTION: list[str] = []


def _peer_skip(report) -> str | None:
    """The reason of a skip for a missing peer when peers are required, else None."""
    if report.skipped and os.environ.get(REQUIRE_PEERS) == "1" and not hasattr(report, "wasxfail"):
        reason = str(report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr)
        if PEER_MISSING in reason:
            return reason
    return None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A test skipped for a missing peer fails instead (when required)."""
    outcome = yield
    report = outcome.get_result()
    if (reason := _peer_skip(report)) is not None:
        report.outcome = "failed"
        report.longrepr = f"{REQUIRE_PEERS}=1 and a real peer is missing: {reason}"


def pytest_collectreport(report):
    """A module skipped at import for a missing peer stays a skip (so the rest of the run goes on) and is named at
    the end of the session, which then fails. Under pytest-xdist the controller gets each worker's skipped
    collection reports through this same hook, so the controller's session fails."""
    if (reason := _peer_skip(report)) is not None:
        _MISSING_AT_COLLECTION.append(f"{report.nodeid}: {reason}")


def _fail_for_missing_peers(session) -> None:
    if not _MISSING_AT_COLLECTION:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"{REQUIRE_PEERS}=1 and a real peer is missing:" +
                            "".join("\n  " + m for m in _MISSING_AT_COLLECTION))
    session.exitstatus = 1


FAST_TIER = "MAILGATE_FAST_TIER"
"""Set to 1 by `scripts/test --fast`: the fast tier starts no Kafka broker, so one that tries fails at once (it
belongs in tests/integration or tests/scenario)."""


def pytest_configure(config):
    if os.environ.get(FAST_TIER) == "1":
        from mailgate.ops.kafka import local_broker

        def refused(*args, **kwargs):
            raise RuntimeError(f"{FAST_TIER}=1: this test starts a Kafka broker; move it out of the fast tier "
                               f"(tests/unit, tests/contract) into tests/integration or tests/scenario")
        local_broker.start = refused


@pytest.fixture(scope="session")
def kafka_jars():
    from mailgate.ops.kafka.local_broker import fetch_jars
    from mailgate.core.config import LocalBrokerConfig
    from tests.support.harness import LIBS
    return fetch_jars(LocalBrokerConfig(libs=LIBS))


@pytest.fixture
def primary():
    from tests.support.harness import SmtpPrimary
    p = SmtpPrimary().start()
    yield p
    p.stop()


SHARED_BROKER = "MAILGATE_SHARED_BROKER"
"""Set to 0: every Gateway starts its own broker (as before tests/support/shared_broker.py)."""


@pytest.fixture(scope="session", autouse=True)
def shared_broker(tmp_path_factory):
    """The broker this test process lends to one Gateway at a time; started by the first borrower, stopped at the
    end of the session. Not in the fast tier, which starts no broker."""
    from tests.support import shared_broker as sb
    if os.environ.get(FAST_TIER) == "1" or os.environ.get(SHARED_BROKER) == "0":
        yield None
        return
    from tests.support.harness import LIBS
    from tests.support.ports import free_port
    shared = sb.SharedBroker(tmp_path_factory.getbasetemp() / "shared-broker", LIBS, free_port(), free_port())
    sb.install(shared)
    yield shared
    sb.install(None)
    shared.stop()
    shared.home.mkdir(parents=True, exist_ok=True)
    (shared.home / "summary.txt").write_text(f"{shared.lends} {shared.generation}\n")


def _shared_broker_line(base: Path) -> str | None:
    """How often the run's shared brokers were lent and how many brokers were started (all workers)."""
    lends = started = 0
    for summary in base.glob("**/shared-broker/summary.txt"):
        n, g = summary.read_text().split()
        lends, started = lends + int(n), started + int(g)
    if not lends:
        return None
    return f"shared broker: lent {lends} times, {started} shared brokers started (replacement reasons: " \
           f"shared-broker/replacements.log under each worker's directory)"


@pytest.fixture
def gateway(tmp_path, kafka_jars):
    """A Gateway whose stages are stopped and whose broker is stopped or given back after the test (configure()
    and start_broker() first)."""
    from tests.support.harness import Gateway
    gw = Gateway(tmp_path)
    yield gw
    gw.stop_all()
    gw.release()


def _sweep_for_secrets(base: Path) -> tuple[int, int, list[str]]:
    """Search every stage/broker log and Kafka log segment under `base` for every form of the tests' passwords
    (plain, URL-encoded, base64 at each alignment, AUTH PLAIN blobs: tests/support/secrets.py)."""
    from tests.support.secrets import needles as secret_needles
    needles = secret_needles()
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
        hits += [f"{path}: {label}" for label, n in needles if n in data]
    return files, size, hits


def pytest_sessionfinish(session, exitstatus):
    """Invariant 5 over the whole run: no password the tests configured appears in any log or topic. And, when
    peers are required, a module skipped for a missing peer fails the run."""
    _fail_for_missing_peers(session)
    if hasattr(session.config, "workerinput"):
        return  # a pytest-xdist worker: the controller sweeps every worker's directory (its basetemp's children)
    factory = getattr(session.config, "_tmp_path_factory", None)
    if factory is None or factory._basetemp is None:
        return
    files, size, hits = _sweep_for_secrets(factory.getbasetemp())
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    line = f"secret sweep: {files} log and Kafka segment files ({size / 1e6:.1f} MB) searched, {len(hits)} hits"
    if reporter is not None:
        reporter.write_line(line + ("".join("\n  " + h for h in hits[:20])))
        if (shared_line := _shared_broker_line(factory.getbasetemp())) is not None:
            reporter.write_line(shared_line)
    if hits:
        session.exitstatus = 1
