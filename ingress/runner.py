"""The ingress process: binds the SMTP listener and runs until SIGTERM/SIGINT.

Reads: `ingress` config. Starts: the Kafka publisher (in the background, so the port answers 451 while Kafka is
down), the user-verification directories, SMTP AUTH (ingress.auth) when configured, the SMTP protocol
(ingress.smtp_server) on every listener (ingress.listeners: `listen_host:listen_port` and `ingress.listeners`),
and the metrics endpoint (`/readyz` answers 200 once the publisher is connected to Kafka). The per-client limits
(ingress.limits) are one object shared by every session of every listener of the process, and so are the checks
at the door (ingress.door: the pre-greet test's pass cache, the DNS lists and their answers).
"""
from __future__ import annotations

import asyncio
import logging

from ingress.auth import SmtpAuth
from ingress.door import Door
from ingress.handler import IngressHandler
from ingress.limits import ClientLimits
from ingress.listeners import Listener, listeners
from ingress.publisher import Publisher
from ingress.smtp_server import GatewaySMTP
from ingress.recipient_lookup import RecipientVerifier
from mailgate.core import metrics
from mailgate.core.backoff import Backoff
from mailgate.core.config import Config
from mailgate.core.live_config import LiveConfig
from mailgate.core.runtime import run_until_stopped
from mailgate.mail.directory.purge import follow_purges

log = logging.getLogger("mailgate.ingress")


async def serve(cfg: Config, stop: asyncio.Event) -> None:
    publisher = Publisher(cfg)
    await publisher.start()
    verifier = RecipientVerifier.for_config(cfg, publisher.note)
    metrics.DIRECTORY_CACHES["ingress"].watch(lambda: verifier.directories)
    metrics.DOMAIN_LISTS["ingress"].watch(lambda: verifier.domain_lists)
    endpoint = metrics.MetricsServer("ingress", cfg.metrics, ready=lambda: publisher.ready)
    await endpoint.start()
    auth = SmtpAuth(cfg)  # AUTH is offered to a new session while some login is configured (live: mail.config)
    handler = IngressHandler(cfg, publisher, verifier, auth)
    limits = ClientLimits(cfg.ingress)  # one per process: per-client counts span all its sessions and listeners
    # one per process too: the pre-greet pass cache and the DNS-list answers serve every listener
    door = Door(cfg, lambda client: handler.current.policy.may_relay(client), publisher.note_until_stored)
    live = LiveConfig(cfg, "ingress")  # the process's one mail.config follower: gateways and cache purges
    follow_purges(live, lambda: verifier.directories, "ingress", lambda: verifier.domain_lists)
    following = asyncio.create_task(_follow_config(live, handler))
    servers = []
    try:
        for lst in listeners(cfg):
            servers.append(await _bind(cfg, lst, handler, limits, door))
        await stop.wait()
    finally:
        for server in servers:
            server.close()
            await server.wait_closed()
        await auth.aclose()
        following.cancel()
        await asyncio.gather(following, return_exceptions=True)
        await live.close()
        await verifier.aclose()
        await publisher.close()
        await endpoint.close()
        log.info("ingress stopped")


async def _bind(cfg: Config, lst: Listener, handler: IngressHandler, limits: ClientLimits,
                door: Door) -> asyncio.Server:
    ic = cfg.ingress

    # Built once per listener; every connection's session is spawned from it (GatewaySMTP.spawn).
    template = GatewaySMTP(handler, max_errors=ic.max_errors, data_size_limit=ic.max_message_bytes,
                           limits=limits, max_messages_per_connection=ic.max_messages_per_connection,
                           max_session_s=ic.max_session_s, hostname=ic.hostname, ident="mailgate",
                           tls_context=lst.starttls, timeout=ic.idle_timeout_s,
                           enable_SMTPUTF8=True, decode_data=False,
                           auth=lst.auth and handler.auth is not None and handler.auth.enabled,
                           implicit_tls=lst.implicit_tls is not None, auth_required=lst.auth_required,
                           require_starttls=lst.require_starttls, door=door, listener=lst.name,
                           pregreet=lst.pregreet, dnsbl=lst.dnsbl, bare_lf_trusted=lst.bare_lf_trusted)

    def factory() -> GatewaySMTP:
        metrics.INGRESS_SESSIONS.inc()
        session = template.spawn()
        # Logins are live (mail.config): whether AUTH is offered is decided per new session, not per template.
        session.mg_auth = lst.auth and handler.auth is not None and handler.auth.enabled
        return session

    server = await asyncio.get_running_loop().create_server(factory, host=lst.host, port=lst.port,
                                                            reuse_address=True, ssl=lst.implicit_tls)
    log.info("ingress listening on %s:%d (%s%s%s%s)", lst.host, lst.port, lst.name,
             ", implicit TLS" if lst.implicit_tls else ", STARTTLS" if lst.starttls else "",
             f", pregreet {lst.pregreet}" if lst.pregreet != "off" else "",
             ", AUTH" if lst.auth and handler.auth is not None and handler.auth.enabled else "")
    return server


async def _follow_config(live: LiveConfig, handler: IngressHandler) -> None:
    """Gateways from mail.config, once Kafka answers; until then the file's (the listener is up either way)."""
    backoff = Backoff(1.0, 30)
    while True:
        try:
            handler.reconfigure(await live.start())
            live.on_change(handler.reconfigure)
            return
        except Exception as err:
            log.warning("cannot read %s yet (%s); using the file's gateways", "mail.config", type(err).__name__)
            await live.close()
            await backoff.wait()


def run(cfg: Config) -> None:
    run_until_stopped(lambda stop: serve(cfg, stop))
