"""Every stage's Prometheus metrics, defined in one place, and the small HTTP server each stage runs for them.

Reads: what the stages report — counters they bump, the records they appended (`observe_*`), the
`CachedDirectory` counters, egress's consumer positions. Emits: on the stage's `metrics` port, `/metrics`
(Prometheus text format), `/healthz` (200 while the process runs) and `/readyz` (200 when the stage can do its
job, 503 otherwise). Each stage has its own registry, so a scrape shows only that stage's metrics. Labels take
values from small fixed sets (reasons and outcomes named in code, configured gateway names, partitions).
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from aiohttp import web
from prometheus_client import (CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, GCCollector, Histogram,
                               ProcessCollector, generate_latest)
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from mailgate.core import topics
from mailgate.core.config import MetricsConfig
from mailgate.core.topology import STAGES
from schemas import (DeliveryDeferred, MessageBounced, MessageClassified, MessageScanned,
                     MessageDelivered, MessageDiscarded, MessageExpired, MessageQuarantined, MessageRouted,
                     RecipientRejected, RecipientVerified)

log = logging.getLogger("mailgate.core.metrics")

REGISTRIES: dict[str, CollectorRegistry] = {stage: CollectorRegistry() for stage in STAGES}
for _registry in REGISTRIES.values():
    ProcessCollector(registry=_registry)
    GCCollector(registry=_registry)
_ingress, _processor, _egress = (REGISTRIES[s] for s in STAGES)

# every stage: the live configuration it applies
CONFIG_VERSION = {stage: Gauge("mailgate_config_version_info",
                               "1 for the version (hash) of the live configuration this process applies.",
                               ["version"], registry=REGISTRIES[stage]) for stage in STAGES}
CONFIG_APPLY_SECONDS = {stage: Histogram("mailgate_config_apply_delay_seconds",
                                         "From a configuration event's write to mail.config until this process "
                                         "applied it.", buckets=(.05, .1, .25, .5, 1, 2, 5, 10, 30),
                                         registry=REGISTRIES[stage]) for stage in STAGES}


def config_applied(stage: str, previous: str, version: str, delay_ms: int | None) -> None:
    """The process now applies `version` (it replaced `previous`)."""
    if previous != version:
        try:
            CONFIG_VERSION[stage].remove(previous)
        except KeyError:
            pass
    CONFIG_VERSION[stage].labels(version).set(1)
    if delay_ms is not None:
        CONFIG_APPLY_SECONDS[stage].observe(delay_ms / 1000)


# ingress
INGRESS_SESSIONS = Counter("mailgate_ingress_sessions", "SMTP sessions (client connections) opened.",
                           registry=_ingress)
INGRESS_ACCEPTED = Counter("mailgate_ingress_messages_accepted",
                           "Messages answered 250 after DATA (Kafka acknowledged them), by direction.",
                           ["direction"], registry=_ingress)
INGRESS_REJECTED_RECIPIENTS = Counter("mailgate_ingress_recipients_rejected",
                                      "Recipients refused at RCPT, by reason (relay_denied, user_unknown, ...).",
                                      ["reason"], registry=_ingress)
INGRESS_REJECTED_MESSAGES = Counter("mailgate_ingress_messages_rejected",
                                    "Messages refused at the end of DATA (bare_lf, too_big, virus, "
                                    "virus_scanner_unavailable).", ["reason"],
                                    registry=_ingress)
INGRESS_QUEUE_UNAVAILABLE = Counter("mailgate_ingress_queue_unavailable",
                                    "Messages answered 451 4.3.0 because Kafka did not acknowledge them.",
                                    registry=_ingress)
INGRESS_LIMITED = Counter("mailgate_ingress_limit_exceeded",
                          "Clients answered 421 4.7.0 for going over a limit, by limit (connection_count, "
                          "message_rate, messages_per_connection, session_time).", ["limit"], registry=_ingress)
INGRESS_CHECKS = Counter("mailgate_ingress_door_checks",
                         "Checks at the SMTP door, by check (pregreet, dnsbl, limit, pipelining, errors) and result: "
                         "pass, cached (pregreet: passed before), exempt (relay network), listed / over (dnsbl: under "
                         "or at the threshold), ignored (pregreet failed, action ignore), enforced (refused at RCPT), "
                         "refused (connection refused).", ["check", "result"], registry=_ingress)
INGRESS_AUDIT_DROPPED = Counter("mailgate_ingress_audit_dropped",
                                "Refused-connection events given up because too many already waited for Kafka.",
                                registry=_ingress)
INGRESS_PUBLISH_SECONDS = Histogram("mailgate_ingress_publish_seconds",
                                    "Time from the end of DATA until Kafka acknowledged the message (acks=all).",
                                    buckets=(.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30),
                                    registry=_ingress)

# processor
PROCESSOR_MESSAGES = Counter("mailgate_processor_messages",
                             "mail.received records processed, by outcome (routed, discarded, quarantined, "
                             "dead_lettered).", ["outcome"], registry=_processor)
PROCESSOR_SPAM_LEVELS = Counter("mailgate_processor_spam_classified", "Messages scored, by spam level.", ["level"],
                                registry=_processor)
PROCESSOR_VERIFICATIONS = Counter("mailgate_processor_recipient_verifications",
                                  "Inbound recipients re-verified against the directory, by decision (verified, "
                                  "rejected, fail_open).", ["decision"], registry=_processor)
PROCESSOR_VIRUS_VERDICTS = Counter("mailgate_processor_virus_verdicts",
                                   "Messages through the scan step, by result (clean, infected, unscannable, error) "
                                   "and action.", ["result", "action"], registry=_processor)

# ingress (scan_at_data) and processor: every try of one clamd host
_SCANNING = ("ingress", "processor")
CLAMD_SCANS = {stage: Counter("mailgate_clamd_scans", "Scans sent to a clamd host, by host and outcome (clean, "
                              "infected, unscannable, error).", ["host", "outcome"], registry=REGISTRIES[stage])
               for stage in _SCANNING}
CLAMD_SECONDS = {stage: Histogram("mailgate_clamd_scan_seconds", "How long one clamd host took to answer a scan "
                                  "(errors included), by host.", ["host"],
                                  buckets=(.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30),
                                  registry=REGISTRIES[stage]) for stage in _SCANNING}


def clamd_try(stage: str) -> Callable[[str, str, float], None]:
    """The ClamdClient hook that counts each try of `stage` (ingress or processor) per host."""
    def observe(host: str, outcome: str, seconds: float) -> None:
        CLAMD_SCANS[stage].labels(host, outcome).inc()
        CLAMD_SECONDS[stage].labels(host).observe(seconds)
    return observe


# egress
EGRESS_ATTEMPTS = Counter("mailgate_egress_attempts",
                          "Delivery attempts (one SMTP transaction through one gateway), by gateway and result: "
                          "error (no transaction: connect, TLS, AUTH...), else the worst recipient reply: "
                          "deferred (4xx), bounced (5xx), delivered.", ["gateway", "result"], registry=_egress)
EGRESS_RECIPIENTS = Counter("mailgate_egress_recipients",
                            "Recipients by the outcome recorded after an attempt (delivered, deferred, bounced, "
                            "expired).", ["outcome"], registry=_egress)
EGRESS_DELIVERY_SECONDS = Histogram("mailgate_egress_delivery_latency_seconds",
                                    "From ingress accepting a message to its delivery (the server's 250), per "
                                    "MessageDelivered.",
                                    buckets=(.1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 86400),
                                    registry=_egress)
EGRESS_DUPLICATES = Counter("mailgate_egress_duplicates_suppressed",
                            "Recipients not delivered again because mail.delivered says they were.",
                            registry=_egress)
EGRESS_DEAD_LETTERED = Counter("mailgate_egress_dead_lettered", "Records egress could not decode (sent to mail.dlq).",
                               registry=_egress)
EGRESS_LAG = Gauge("mailgate_egress_consumer_lag",
                   "Records not yet consumed in each assigned partition (end offset minus position), sampled every "
                   "few seconds; on a mail.retry.<delay>s topic it is that retry tier's depth.",
                   ["topic", "partition"], registry=_egress)

LAG_SAMPLE_EVERY_S = 5.0
"""How often egress and the tracker (mailgate/ops/tracking/metrics.py) sample their consumer lag."""


def reason_label(reason: str) -> str:
    """A reason as a label value: the code before any detail (`bad_address:why` → `bad_address`)."""
    return reason.split(":", 1)[0] or "unknown"


class CacheCollector(Collector):
    """The counters of a stage's caches of a directory's answers (hits, misses, stale answers, requests made), read
    at scrape time: the user-verification caches (`CachedDirectory`) and the cached SmarterMail domain lists."""

    def __init__(self, lookups: tuple[str, str], requests: tuple[str, str]) -> None:
        self.lookups, self.requests = lookups, requests
        """(metric name, help) of the lookups counter (labels gateway, result) and of the requests counter."""
        self.source: Callable[[], Mapping[str, Any]] = dict

    def watch(self, caches: Callable[[], Mapping[str, object]]) -> None:
        """Report the caches `caches()` returns (gateway name → cache) from now on."""
        self.source = caches

    def collect(self) -> Iterable[CounterMetricFamily]:
        lookups = CounterMetricFamily(*self.lookups, labels=["gateway", "result"])
        requests = CounterMetricFamily(*self.requests, labels=["gateway"])
        for gateway, cache in sorted(self.source().items()):
            for result, attr in (("hit", "hits"), ("miss", "misses"), ("stale", "stale_answers")):
                lookups.add_metric([gateway, result], getattr(cache, attr))
            requests.add_metric([gateway], cache.calls)
        yield lookups
        yield requests


DIRECTORY_CACHES = {stage: CacheCollector(
    ("mailgate_directory_cache_lookups", "Recipient lookups in the user-verification cache, by gateway and result "
                                         "(hit, miss, stale: last known answer given while the directory was down)."),
    ("mailgate_directory_requests", "Requests made to a gateway's directory (web service).")
) for stage in ("ingress", "processor")}
DOMAIN_LISTS = {stage: CacheCollector(
    ("mailgate_domain_list_lookups", "Domain lookups in a gateway's cached SmarterMail domain list (domain "
                                     "verification web_service), by gateway and result (hit: a fresh list; miss: "
                                     "none, so fetched or not known; stale: the last list used while the server "
                                     "could not be reached)."),
    ("mailgate_domain_list_requests", "Fetches of a gateway's domain list from its SmarterMail server (background "
                                      "refreshes included).")
) for stage in ("ingress", "processor")}
for _stage in ("ingress", "processor"):
    REGISTRIES[_stage].register(DIRECTORY_CACHES[_stage])
    REGISTRIES[_stage].register(DOMAIN_LISTS[_stage])


def appended_events(outputs: Iterable) -> Iterable[Any]:
    """The events among what a stage appended (not bytes, not tombstones)."""
    for out in outputs:
        record = getattr(out, "record", None)
        if record is not None and not isinstance(record, bytes):
            yield record


_PIPELINE_COUNTS: dict[type, Callable[[Any], None]] = {
    MessageRouted: lambda r: PROCESSOR_MESSAGES.labels("routed").inc(),
    MessageDiscarded: lambda r: PROCESSOR_MESSAGES.labels("discarded").inc(),
    MessageQuarantined: lambda r: PROCESSOR_MESSAGES.labels("quarantined").inc(),
    MessageClassified: lambda r: PROCESSOR_SPAM_LEVELS.labels(r.level).inc(),
    RecipientVerified: lambda r: PROCESSOR_VERIFICATIONS.labels(
        "fail_open" if r.method == "fail_open" else "verified").inc(),
    RecipientRejected: lambda r: PROCESSOR_VERIFICATIONS.labels("rejected").inc(),
    MessageScanned: lambda r: PROCESSOR_VIRUS_VERDICTS.labels(r.result, r.action).inc(),
}
"""Event type → what counting it in the processor's metrics means."""


def observe_pipeline(outputs: Iterable) -> None:
    """Count what the processor appended for one mail.received record (audit copies only, so nothing twice)."""
    for record in appended_events(o for o in outputs if o.topic == topics.EVENTS):
        count = _PIPELINE_COUNTS.get(type(record))
        if count is not None:
            count(record)


RECIPIENT_OUTCOMES = {MessageDelivered: "delivered", DeliveryDeferred: "deferred", MessageBounced: "bounced",
                      MessageExpired: "expired"}
"""Egress's recipient outcome events → their `mailgate_egress_recipients` outcome label."""


async def consumer_lag(consumer) -> dict[tuple[str, str], int]:
    """(topic, partition) → end offset minus position, for each partition assigned to `consumer` (aiokafka)."""
    tps = sorted(consumer.assignment())
    if not tps:
        return {}
    ends = await consumer.end_offsets(tps)
    lag = {}
    for tp in tps:
        try:
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for loses a cancellation that arrives as the
            # awaited call finishes, and the sampler then never stopped (a hang seen in the fast tier).
            async with asyncio.timeout(2):
                position = await consumer.position(tp)
        except Exception:  # revoked meanwhile, or no position yet: sampled next time
            continue
        lag[(tp.topic, str(tp.partition))] = max(ends[tp] - position, 0)
    return lag


async def sample_lag(consumer, every_s: float = LAG_SAMPLE_EVERY_S, gauge: Gauge | None = None) -> None:
    """Keep `gauge` (`mailgate_egress_consumer_lag` unless given; the tracker gives its own) current until
    cancelled; partitions no longer assigned are dropped. Egress and `mailgate tracker` both sample with this."""
    gauge = EGRESS_LAG if gauge is None else gauge
    shown: set[tuple[str, str]] = set()
    while True:
        try:
            lag = await consumer_lag(consumer)
        except Exception as err:  # the broker is away: keep the last values, try again
            log.debug("consumer lag not sampled: %s", type(err).__name__)
        else:
            for labels, n in lag.items():
                gauge.labels(*labels).set(n)
            for labels in shown - lag.keys():
                gauge.remove(*labels)
            shown = set(lag)
        await asyncio.sleep(every_s)


class MetricsServer:
    """`/metrics`, `/healthz` and `/readyz` of one stage, served on the stage's own event loop (aiohttp)."""

    def __init__(self, stage: str, cfg: MetricsConfig, ready: Callable[[], bool],
                 registry: CollectorRegistry | None = None) -> None:
        """`stage`: a pipeline stage (its registry here) or a follower that brings its own `registry`."""
        self.stage = stage
        self.cfg = cfg
        self.ready = ready
        self.registry = REGISTRIES[stage] if registry is None else registry
        self.port: int | None = None
        self._runner: web.AppRunner | None = None

    async def start(self) -> int | None:
        """Bind and serve; the bound port, or None when disabled or the port is taken (mail flows on either way)."""
        if not self.cfg.enabled:
            return None
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        host, port = self.cfg.listen_host, self.cfg.port(self.stage)
        try:
            await web.TCPSite(runner, host, port).start()
        except OSError as err:
            log.error("%s metrics: cannot bind %s:%d (%s); serving no /metrics, /healthz or /readyz",
                      self.stage, host, port, err.strerror or err)
            await runner.cleanup()
            return None
        self._runner = runner
        self.port = runner.addresses[0][1]
        log.info("%s metrics on http://%s:%d/metrics (/healthz, /readyz)", self.stage, host, self.port)
        return self.port

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(self.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def _readyz(self, request: web.Request) -> web.Response:
        try:
            ready = bool(self.ready())
        except Exception:
            ready = False
        return web.Response(text="ready\n" if ready else "not ready\n", status=200 if ready else 503)
