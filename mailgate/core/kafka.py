"""Kafka client settings for every stage, and idempotent topic creation.

Reads: `kafka` config and `mailgate.core.topics`. Emits: configured aiokafka producers, consumers and admin clients.
Producers are idempotent (acks=all); consumers never auto-commit: each stage commits after its work is durable.
"""
from __future__ import annotations

import asyncio
import logging
import ssl
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from mailgate.core.config import Config, KafkaSecurity
from mailgate.core.topics import declared_topics, max_record_bytes

log = logging.getLogger("mailgate.core.kafka")


class KafkaSecurityError(Exception):
    """The brokers refused mailgate's credentials or certificate, or their certificate is not trusted.

    Retrying cannot help (an operator must fix `kafka.security` or the cluster), so a process stops with this one line.
    """


def security_kwargs(cfg: Config) -> dict[str, Any]:
    """`kafka.security` as aiokafka client keyword arguments: the one place clients get TLS and SASL settings.

    The SASL password is read from its secret reference here, at the moment a client is built, and goes nowhere else.
    """
    sec = cfg.kafka.security
    opts: dict[str, Any] = {"security_protocol": sec.protocol}
    if sec.protocol in ("SSL", "SASL_SSL"):
        opts["ssl_context"] = _ssl_context(sec)
    if sec.protocol.startswith("SASL"):
        opts["sasl_mechanism"] = sec.sasl_mechanism
        opts["sasl_plain_username"] = sec.sasl_username
        opts["sasl_plain_password"] = sec.sasl_password.reveal() if sec.sasl_password else None
    return opts


def _ssl_context(sec: KafkaSecurity) -> ssl.SSLContext:
    """Verifies the brokers against `ca_file` (or the system CAs), host names included; offers a client cert if set."""
    ctx = ssl.create_default_context(cafile=str(sec.ca_file) if sec.ca_file else None)
    if sec.cert_file is not None:
        ctx.load_cert_chain(str(sec.cert_file), str(sec.key_file))
    return ctx


def faust_credentials(cfg: Config) -> dict[str, Any]:
    """`kafka.security` as faust App settings (`broker_credentials`), the same settings `security_kwargs` gives."""
    import faust  # only the processor needs faust
    sec = cfg.kafka.security
    if sec.protocol == "PLAINTEXT":
        return {}
    if sec.protocol == "SSL":
        return {"broker_credentials": faust.SSLCredentials(_ssl_context(sec))}
    kw = security_kwargs(cfg)
    return {"broker_credentials": faust.SASLCredentials(
        username=kw["sasl_plain_username"], password=kw["sasl_plain_password"], mechanism=sec.sasl_mechanism,
        ssl_context=kw.get("ssl_context"))}


def _common(cfg: Config, client_id: str) -> dict[str, Any]:
    return {"bootstrap_servers": cfg.kafka.bootstrap_servers, "client_id": client_id, **security_kwargs(cfg)}


_CERT_HINT = " (does it require a client certificate? see kafka.security.cert_file)"


async def check_security(cfg: Config, timeout_s: float = 15) -> None:
    """Log in to the first answering bootstrap broker once; raise `KafkaSecurityError` if it refuses us.

    Start-up calls this so that a wrong password or an untrusted certificate stops a process with one clear line
    instead of clients retrying forever. An unreachable broker is not an error here (a stage waits for it as usual).
    """
    sec = cfg.kafka.security
    if sec.protocol == "PLAINTEXT":
        return
    from aiokafka.conn import create_conn
    from aiokafka.errors import (AuthenticationFailedError, KafkaConnectionError, SaslAuthenticationFailed,
                                 UnsupportedSaslMechanismError)
    kw = security_kwargs(cfg)
    for server in cfg.kafka.bootstrap_servers:
        host, _, port = server.rpartition(":")
        who = f"Kafka at {server} ({sec.protocol}"
        who += f", {sec.sasl_mechanism} as {sec.sasl_username!r})" if sec.protocol.startswith("SASL") else ")"
        try:
            conn = await asyncio.wait_for(create_conn(host, int(port), client_id="mailgate-login-check",
                                                      request_timeout_ms=int(timeout_s * 1000), **kw), timeout_s)
        except ssl.SSLCertVerificationError as err:
            raise KafkaSecurityError(f"{who}: broker certificate not trusted: {err.verify_message}") from None
        except ssl.SSLError as err:
            raise KafkaSecurityError(f"{who}: TLS handshake failed: {err.reason or err}") from None
        except (SaslAuthenticationFailed, AuthenticationFailedError, UnsupportedSaslMechanismError) as err:
            reason = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise KafkaSecurityError(f"{who}: login refused: {reason}") from None
        except KafkaConnectionError as err:  # closed after the handshake: a TLS alert (no client cert) or a hiccup
            if isinstance(err.__cause__, ssl.SSLError):
                raise KafkaSecurityError(f"{who}: TLS refused by the broker: {err.__cause__.reason or err.__cause__}"
                                         f"{_CERT_HINT if sec.cert_file is None else ''}") from None
            log.info("login check: %s closed the connection (%s); clients will retry", server, err)
            continue
        except (OSError, asyncio.TimeoutError) as err:
            log.info("login check: %s not reachable (%s); clients will retry", server, err)
            continue
        conn.close()
        return


def producer(cfg: Config, client_id: str, **overrides: Any) -> AIOKafkaProducer:
    """An idempotent producer (acks=all) whose request size matches the topics' max.message.bytes."""
    k = cfg.kafka
    opts = {**_common(cfg, client_id), "enable_idempotence": True, "acks": "all",
            "compression_type": None if k.compression == "none" else k.compression,
            "max_request_size": max_record_bytes(cfg), "linger_ms": 2,
            "request_timeout_ms": 15000, **overrides}
    return AIOKafkaProducer(**opts)


def consumer(cfg: Config, client_id: str, group_id: str | None, *topics: str, **overrides: Any) -> AIOKafkaConsumer:
    """A consumer that commits only when told, reads committed records, and fetches records up to the max size."""
    opts = {**_common(cfg, client_id), "group_id": group_id, "enable_auto_commit": False,
            "auto_offset_reset": "earliest", "isolation_level": "read_committed",
            "max_partition_fetch_bytes": max_record_bytes(cfg), "fetch_max_bytes": max(max_record_bytes(cfg),
                                                                                      50 * 1024 * 1024),
            **overrides}
    return AIOKafkaConsumer(*topics, **opts)


def faust_settings(cfg: Config, client_id: str) -> dict[str, Any]:
    """faust App settings from the same figures as the aiokafka clients above: bootstrap servers, TLS and SASL (as
    faust credentials, `faust_credentials`), compression, acks=all and the max record size, so the processor joins
    any cluster the other stages can."""
    k = cfg.kafka
    return {"broker": [f"kafka://{s}" for s in k.bootstrap_servers], "broker_client_id": client_id,
            "producer_acks": -1, "producer_compression_type": None if k.compression == "none" else k.compression,
            "producer_max_request_size": max_record_bytes(cfg), "consumer_max_fetch_size": max_record_bytes(cfg),
            "broker_credentials": None, **faust_credentials(cfg)}


async def ensure_topics(cfg: Config, attempts: int = 30) -> list[str]:
    """Create every declared topic that does not exist yet; return the names created."""
    admin = AIOKafkaAdminClient(**_common(cfg, "mailgate-admin"))
    for i in range(attempts):
        try:
            await admin.start()
            break
        except Exception as err:  # broker still starting
            if i == attempts - 1:
                raise
            log.info("waiting for Kafka at %s: %s", cfg.kafka.bootstrap_servers, err)
            await asyncio.sleep(1)
    try:
        existing = set(await admin.list_topics())
        wanted = [NewTopic(s.name, s.partitions, cfg.kafka.replication_factor, topic_configs=s.config)
                  for s in declared_topics(cfg) if s.name not in existing]
        if not wanted:
            return []
        try:
            await admin.create_topics(wanted)
        except TopicAlreadyExistsError:
            pass
        return [t.name for t in wanted]
    finally:
        await admin.close()


async def assign_whole_topic(c: AIOKafkaConsumer, topic: str, from_beginning: bool = True) -> list:
    """Assign every partition of `topic` to a group-less consumer (after fetching metadata) and seek."""
    from aiokafka import TopicPartition
    cluster = await c._client.fetch_all_metadata()  # aiokafka has no public "metadata of topic X" call
    parts = cluster.partitions_for_topic(topic) or set()
    if not parts:
        raise RuntimeError(f"topic {topic} does not exist: run `mailgate topics`")
    tps = [TopicPartition(topic, p) for p in sorted(parts)]
    c.assign(tps)
    if from_beginning:
        await c.seek_to_beginning(*tps)
    else:
        await c.seek_to_end(*tps)
    return tps
