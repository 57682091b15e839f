"""The local Apache Kafka broker for development and tests: fetch jars, format, start, stop, status.

Reads: `local_broker` config, `mailgate/ops/kafka/kafka-broker-pom.xml` (package data). Writes: jars under
`local_broker.libs` (fetched once with mvn), `server.properties`, data dir, `kafka.log` and `kafka.pid` under
`local_broker.home`. Both default to the per-user cache (~/.cache/mailgate, or $MAILGATE_CACHE_DIR), never to
the current directory.
One node in KRaft mode with combined broker and controller roles.
"""
from __future__ import annotations

import base64
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from mailgate.core import topics
from mailgate.core.config import Config, LocalBrokerConfig

POM = Path(__file__).resolve().parent / "kafka-broker-pom.xml"
READY_LINE = "Kafka Server started"
_children: dict[int, subprocess.Popen] = {}
"""Brokers this process started, kept so that stop() can reap them (and Python does not warn about them)."""


class BrokerError(Exception):
    """The local broker could not be fetched, formatted or started (reason in the message)."""


@dataclass(frozen=True)
class BrokerStatus:
    running: bool
    pid: int | None
    port: int


def _paths(lb: LocalBrokerConfig) -> dict[str, Path]:
    home = lb.home.resolve()
    return {"home": home, "data": home / "data", "props": home / "server.properties",
            "log": home / "kafka.log", "pid": home / "kafka.pid", "log4j": home / "log4j2.properties"}


def fetch_jars(lb: LocalBrokerConfig) -> Path:
    """Copy Kafka's runtime jars into `lb.libs` with mvn, once; later calls reuse them."""
    libs = lb.libs.resolve()
    if libs.is_dir() and any(libs.glob("kafka_2.13-*.jar")):
        return libs
    if shutil.which("mvn") is None:
        raise BrokerError("mvn is not on PATH: install Maven to fetch the Kafka jars")
    libs.parent.mkdir(parents=True, exist_ok=True)
    tmp = libs.with_name(libs.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    cmd = ["mvn", "-B", "-q", "-f", str(POM), "dependency:copy-dependencies", "-DincludeScope=runtime",
           f"-DoutputDirectory={tmp}"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise BrokerError(f"mvn could not fetch the Kafka jars:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    tmp.rename(libs)
    return libs


def _cluster_id() -> str:
    """22 characters of base64url for 16 random bytes; never starting with '-' (the tool would read an option)."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


def _write_properties(cfg: Config, p: dict[str, Path], extra: dict[str, str] | None = None) -> None:
    lb = cfg.local_broker
    max_bytes = topics.max_record_bytes(cfg)
    props = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@127.0.0.1:{lb.controller_port}",
        "listeners": f"PLAINTEXT://127.0.0.1:{lb.port},CONTROLLER://127.0.0.1:{lb.controller_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{lb.port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(p["data"]),
        "num.partitions": "1",
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "4",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "4",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        "auto.create.topics.enable": "false",
        "message.max.bytes": str(max_bytes),
        "replica.fetch.max.bytes": str(max_bytes),
        "log.retention.check.interval.ms": "60000",
    }
    if lb.sasl_ssl is not None:
        props.update(_sasl_ssl_properties(cfg, p))
    props.update(extra or {})
    p["props"].write_text("")
    p["props"].chmod(0o600)  # the inter-broker login's password is in it when the listener is SASL_SSL
    p["props"].write_text("".join(f"{k}={v.replace(chr(92), chr(92) * 2)}\n" for k, v in props.items()))
    p["log4j"].write_text(
        "rootLogger.level = INFO\nrootLogger.appenderRef.stdout.ref = STDOUT\n"
        "appender.stdout.type = Console\nappender.stdout.name = STDOUT\n"
        "appender.stdout.layout.type = PatternLayout\nappender.stdout.layout.pattern = [%d] %p %m (%c)%n\n"
        "logger.kafka.name = kafka\nlogger.kafka.level = INFO\n"
        "logger.apache.name = org.apache.kafka\nlogger.apache.level = WARN\n")


def _check_sasl_ssl(cfg: Config) -> None:
    sec = cfg.kafka.security
    if sec.protocol != "SASL_SSL" or sec.sasl_mechanism != "SCRAM-SHA-512":
        raise BrokerError("local_broker.sasl_ssl needs kafka.security.protocol SASL_SSL with sasl_mechanism "
                          "SCRAM-SHA-512 (the clients' login is the broker's SCRAM user)")
    if cfg.local_broker.sasl_ssl and cfg.local_broker.sasl_ssl.require_client_cert and not (
            sec.ca_file and sec.cert_file):
        raise BrokerError("local_broker.sasl_ssl.require_client_cert needs kafka.security.ca_file (the CA that "
                          "signed the client certificates) and cert_file/key_file")


def _sasl_ssl_properties(cfg: Config, p: dict[str, Path]) -> dict[str, str]:
    """The client port as a SASL_SSL listener (SCRAM-SHA-512); the broker logs in to itself as the same user.

    The key and certificate are written as one PEM keystore (Kafka wants PKCS#8); clients and the broker's own
    inter-broker client verify the certificate against `kafka.security.ca_file`."""
    lb, sec = cfg.local_broker, cfg.kafka.security
    assert lb.sasl_ssl is not None and sec.sasl_password is not None
    key = serialization.load_pem_private_key(lb.sasl_ssl.key_file.read_bytes(), password=None)
    keystore = p["home"] / "keystore.pem"
    keystore.write_text("")
    keystore.chmod(0o600)
    keystore.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()) + lb.sasl_ssl.cert_file.read_bytes())
    jaas = (f'org.apache.kafka.common.security.scram.ScramLoginModule required '
            f'username="{_jaas_quote(sec.sasl_username or "")}" password="{_jaas_quote(sec.sasl_password.reveal())}";')
    props = {
        "listeners": f"SASL_SSL://127.0.0.1:{lb.port},CONTROLLER://127.0.0.1:{lb.controller_port}",
        "advertised.listeners": f"SASL_SSL://127.0.0.1:{lb.port}",
        "inter.broker.listener.name": "SASL_SSL",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL",
        "sasl.enabled.mechanisms": "SCRAM-SHA-512",
        "sasl.mechanism.inter.broker.protocol": "SCRAM-SHA-512",
        "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config": jaas,
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(keystore),
        # Kafka ignores the broker-wide ssl.client.auth on SASL_SSL listeners; the listener-prefixed one counts
        # (KIP-684).
        "listener.name.sasl_ssl.ssl.client.auth": "required" if lb.sasl_ssl.require_client_cert else "none",
    }
    if sec.ca_file is not None:
        props.update({"ssl.truststore.type": "PEM", "ssl.truststore.location": str(sec.ca_file.resolve())})
    return props


def _jaas_quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _scram_credential(cfg: Config, iterations: int = 8192) -> str:
    """The `--add-scram` argument for the SCRAM-SHA-512 user, salted here so that no clear password is on a command
    line (SaltedPassword = PBKDF2-HMAC-SHA-512(password, salt, iterations), RFC 5802)."""
    sec = cfg.kafka.security
    assert sec.sasl_password is not None
    salt = os.urandom(16)
    salted = hashlib.pbkdf2_hmac("sha512", sec.sasl_password.reveal().encode(), salt, iterations)
    b64 = lambda b: base64.b64encode(b).decode()  # noqa: E731
    return (f'SCRAM-SHA-512=[name={sec.sasl_username},iterations={iterations},salt="{b64(salt)}",'
            f'saltedpassword="{b64(salted)}"]')


def _java(libs: Path, main: list[str], lb: LocalBrokerConfig, p: dict[str, Path], quick: bool = True) -> list[str]:
    """The JVM command line; `quick`: C1 only (a short tool run, or `local_broker.jit: quick_start`)."""
    return ["java", *lb.heap.split(), "-XX:+UseSerialGC", *(["-XX:TieredStopAtLevel=1"] if quick else []),
            f"-Dlog4j2.configurationFile={p['log4j']}", "-cp", f"{libs}/*", *main]


def server_command(libs: Path, lb: LocalBrokerConfig, p: dict[str, Path], cds: list[str] | None = None) -> list[str]:
    """The broker's command line: C1 only under `jit: quick_start`, the JVM's whole JIT under `jit: full`; `cds`:
    the class-data-sharing options of _class_archive()."""
    cmd = _java(libs, ["kafka.Kafka", str(p["props"])], lb, p, quick=lb.jit == "quick_start")
    return [cmd[0], *(cds or []), *cmd[1:]]


CDS_PENDING = "cds-pending"
"""In a broker's home: the path of the class archive its JVM writes when it exits (the first start of these jars)."""


def _class_archive(libs: Path, p: dict[str, Path]) -> list[str]:
    """JVM options for a class-data-sharing archive of the broker's classes (JDK 13+ dynamic CDS), kept next to the
    jars. A start maps the archive instead of loading and verifying some 4,000 classes from the jars: measured here,
    about 2.5 s of CPU to "Kafka Server started" instead of 4.5-5 s. The first start of these jars with this JVM
    writes it when the broker exits (stop() renames it into place, so a half-written archive is never mapped); a
    JVM that finds the archive unusable (another Java, changed jars) ignores it and loads classes as usual."""
    java = shutil.which("java")
    if java is None:
        return []
    st = Path(java).resolve().stat()
    jars = sorted(j.name for j in libs.glob("*.jar"))
    key = hashlib.sha256(f"{Path(java).resolve()}:{st.st_size}:{st.st_mtime_ns}:{jars}".encode()).hexdigest()[:12]
    archive = libs.parent / f"{libs.name}-classes-{key}.jsa"
    if archive.exists():
        return [f"-XX:SharedArchiveFile={archive}", "-Xlog:cds=off", "-Xlog:cds+dynamic=off"]
    pending = archive.with_name(f".{archive.name}.{uuid.uuid4().hex[:8]}")
    (p["home"] / CDS_PENDING).write_text(str(pending))
    return [f"-XX:ArchiveClassesAtExit={pending}", "-Xlog:cds=off", "-Xlog:cds+dynamic=off"]


def _settle_class_archive(p: dict[str, Path], complete: bool) -> None:
    """After the broker exited: move the archive its JVM wrote into place (the first one wins); a JVM that was
    killed (`complete` false) may have left half an archive, which is deleted."""
    marker = p["home"] / CDS_PENDING
    try:
        pending = Path(marker.read_text())
        marker.unlink()
    except OSError:
        return
    final = pending.with_name(pending.name[1:].rsplit(".", 1)[0])
    try:
        if complete and pending.exists() and not final.exists():
            pending.rename(final)
    except OSError:
        pass
    pending.unlink(missing_ok=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def status(cfg: Config) -> BrokerStatus:
    p = _paths(cfg.local_broker)
    pid = int(p["pid"].read_text()) if p["pid"].exists() else None
    running = pid is not None and _pid_alive(pid)
    return BrokerStatus(running, pid if running else None, cfg.local_broker.port)


FORMATTED_FILES = ("meta.properties", "bootstrap.checkpoint")
"""What `kafka-storage format` writes into a new KRaft data dir."""


def _storage_format(libs: Path, lb: LocalBrokerConfig, p: dict[str, Path], props: Path, extra: list[str]) -> None:
    fmt = subprocess.run(_java(libs, ["kafka.tools.StorageTool", "format", "-t", _cluster_id(), "-c", str(props),
                                      "-g", *extra], lb, p), capture_output=True, text=True)
    if fmt.returncode != 0:
        raise BrokerError(f"formatting the data dir failed:\n{fmt.stdout[-2000:]}{fmt.stderr[-2000:]}")


def _format_data_dir(cfg: Config, libs: Path, p: dict[str, Path]) -> None:
    """Format a new data dir. A plaintext broker's formatted dir is the same for every local broker of these jars
    (node 1, the jars' metadata version, its random cluster and directory ids), so it is made once, next to the
    jars (a JVM start, 1-2 s), and copied into each new data dir. A SASL_SSL broker's bootstrap records hold its
    SCRAM user: it is formatted itself, as is any broker when the template cannot be written."""
    lb = cfg.local_broker
    if lb.sasl_ssl is not None:
        _storage_format(libs, lb, p, p["props"], ["--add-scram", _scram_credential(cfg)])
        return
    kafka_jar = min(j.stem for j in libs.glob("kafka_2.13-*.jar"))  # the Kafka version: its metadata version
    template = libs.parent / f"{libs.name}-formatted-{kafka_jar}"
    try:
        if not all((template / f).exists() for f in FORMATTED_FILES):
            work = Path(tempfile.mkdtemp(prefix=f".{libs.name}-formatting-", dir=libs.parent))
            try:
                props = work / "server.properties"
                props.write_text("".join(f"log.dirs={work / 'data'}\n" if line.startswith("log.dirs=") else line
                                         for line in p["props"].read_text().splitlines(keepends=True)))
                _storage_format(libs, lb, p, props, [])
                try:
                    (work / "data").rename(template)
                except OSError:
                    pass  # another start made it first
            finally:
                shutil.rmtree(work, ignore_errors=True)
        p["data"].mkdir(parents=True, exist_ok=True)
        for name in FORMATTED_FILES:
            shutil.copyfile(template / name, p["data"] / name)
    except OSError:
        for name in FORMATTED_FILES:
            (p["data"] / name).unlink(missing_ok=True)
        _storage_format(libs, lb, p, p["props"], [])


def start(cfg: Config, extra_properties: dict[str, str] | None = None) -> BrokerStatus:
    """Start the local broker if it is not running and wait until it is ready; `extra_properties` are added to its
    server.properties (the tests' shared broker keeps deleted topics' files for their secret sweep)."""
    lb = cfg.local_broker
    current = status(cfg)
    if current.running:
        return current
    if _port_open(lb.port):
        raise BrokerError(f"port {lb.port} is in use by another process; set local_broker.port")
    if lb.sasl_ssl is not None:
        _check_sasl_ssl(cfg)
    libs = fetch_jars(lb)
    if shutil.which("java") is None:
        raise BrokerError("java is not on PATH: install a Java 17+ runtime to run the local Kafka broker")
    p = _paths(lb)
    p["home"].mkdir(parents=True, exist_ok=True)
    _write_properties(cfg, p, extra_properties)
    if not (p["data"] / "meta.properties").exists():
        _format_data_dir(cfg, libs, p)
    with open(p["log"], "ab") as log:
        offset = log.tell()
        proc = subprocess.Popen(server_command(libs, lb, p, _class_archive(libs, p)), stdout=log,
                                stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    p["pid"].write_text(str(proc.pid))
    _children[proc.pid] = proc
    deadline = time.monotonic() + lb.start_timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            _children.pop(proc.pid, None)
            raise BrokerError(f"the broker exited with code {proc.returncode}; see {p['log']}")
        with open(p["log"], "rb") as f:
            f.seek(offset)
            if READY_LINE.encode() in f.read():
                return BrokerStatus(True, proc.pid, lb.port)
        time.sleep(0.2)
    proc.kill()
    proc.wait()
    raise BrokerError(f"the broker did not print '{READY_LINE}' within {lb.start_timeout_s}s; see {p['log']}")


def stop(cfg: Config, timeout_s: float = 30) -> bool:
    """SIGTERM (controlled shutdown), then SIGKILL after `timeout_s`. True if a broker was running."""
    st = status(cfg)
    p = _paths(cfg.local_broker)
    if not st.running or st.pid is None:
        p["pid"].unlink(missing_ok=True)
        return False
    os.kill(st.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and _pid_alive(st.pid):
        _reap(st.pid)
        time.sleep(0.1)
    killed = _pid_alive(st.pid)
    if killed:
        os.kill(st.pid, signal.SIGKILL)
    _reap(st.pid)
    p["pid"].unlink(missing_ok=True)
    _settle_class_archive(p, complete=not killed)
    return True


def _reap(pid: int) -> None:
    child = _children.get(pid)
    if child is not None:
        if child.poll() is not None:
            _children.pop(pid, None)
        return
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
