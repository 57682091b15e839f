"""The ingress process: binds the SMTP listener and runs until SIGTERM/SIGINT.

Reads: `ingress` config. Starts: the Kafka publisher (in the background, so the port answers 451 while Kafka is
down), the user-verification directories, the SMTP protocol (ingress.smtp_server) on `listen_host:listen_port`,
and the metrics endpoint (`/readyz` answers 200 once the publisher is connected to Kafka). The per-client limits
(ingress.limits) are one object shared by every session of the process.
"""
from __future__ import annotations

import asyncio
import logging
import ssl

from ingress.handler import IngressHandler
from ingress.limits import ClientLimits
from ingress.publisher import Publisher
from ingress.smtp_server import GatewaySMTP
from ingress.verification import RecipientVerifier
from mailgate.core import metrics
from mailgate.core.config import Config
from mailgate.core.live_config import LiveConfig
from mailgate.core.runtime import run_until_stopped
from mailgate.mail.directory.purge import follow_purges

log = logging.getLogger("mailgate.ingress")


def _tls_context(cfg: Config) -> ssl.SSLContext | None:
    t = cfg.ingress.tls
    if t is None:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(str(t.cert_file), str(t.key_file))
    return ctx


async def serve(cfg: Config, stop: asyncio.Event) -> None:
    publisher = Publisher(cfg)
    await publisher.start()
    verifier = RecipientVerifier.for_config(cfg, publisher.note)
    metrics.DIRECTORY_CACHES["ingress"].watch(lambda: verifier.directories)
    endpoint = metrics.MetricsServer("ingress", cfg.metrics, ready=lambda: publisher.ready)
    await endpoint.start()
    handler = IngressHandler(cfg, publisher, verifier)
    tls = _tls_context(cfg)
    ic = cfg.ingress
    limits = ClientLimits(ic)  # one per process: per-client counts span all its sessions

    def factory() -> GatewaySMTP:
        metrics.INGRESS_SESSIONS.inc()
        return GatewaySMTP(handler, max_errors=ic.max_errors, data_size_limit=ic.max_message_bytes,
                           limits=limits, max_messages_per_connection=ic.max_messages_per_connection,
                           max_session_s=ic.max_session_s,
                           hostname=ic.hostname, ident="mailgate", tls_context=tls, timeout=ic.idle_timeout_s,
                           enable_SMTPUTF8=True, decode_data=False)

    live = LiveConfig(cfg, "ingress")  # the process's one mail.config follower: gateways and cache purges
    follow_purges(live, lambda: verifier.directories, "ingress")
    following = asyncio.create_task(_follow_config(live, handler))
    loop = asyncio.get_running_loop()
    server = await loop.create_server(factory, host=ic.listen_host, port=ic.listen_port, reuse_address=True)
    log.info("ingress listening on %s:%d", ic.listen_host, ic.listen_port)
    try:
        await stop.wait()
    finally:
        server.close()
        await server.wait_closed()
        following.cancel()
        await asyncio.gather(following, return_exceptions=True)
        await live.close()
        await verifier.aclose()
        await publisher.close()
        await endpoint.close()
        log.info("ingress stopped")


async def _follow_config(live: LiveConfig, handler: IngressHandler) -> None:
    """Gateways from mail.config, once Kafka answers; until then the file's (the listener is up either way)."""
    delay = 1.0
    while True:
        try:
            handler.reconfigure(await live.start())
            live.on_change(handler.reconfigure)
            return
        except Exception as err:
            log.warning("cannot read %s yet (%s); using the file's gateways", "mail.config", type(err).__name__)
            await live.close()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30)


def run(cfg: Config) -> None:
    run_until_stopped(lambda stop: serve(cfg, stop))
