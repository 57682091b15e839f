"""A caching DNS resolver for mail authentication (SPF, DKIM, DMARC), built on dnspython.

Reads: `DnsConfig` (nameservers, port, timeout, cache size). Emits: answers as plain Python values — TXT records as
bytes (a record's strings joined), addresses as text, MX as (preference, name) — an empty list when the name or
the type does not exist, or `DnsTempError` when no nameserver answered (timeout, SERVFAIL, refused).
Answers, positive and negative, are kept by dnspython's LRU cache for their TTLs (negative ones for the SOA
minimum). Lookups block: callers run them in a worker thread (asyncio.to_thread); the cache is thread-safe.
"""
from __future__ import annotations

import dns.exception
import dns.name
import dns.resolver

from mailgate.core.config import DnsConfig


class DnsTempError(Exception):
    """No nameserver gave an answer now; the same lookup may succeed later."""

    retriable = True


class Resolver:
    def __init__(self, cfg: DnsConfig) -> None:
        if cfg.nameservers:
            self._r = dns.resolver.Resolver(configure=False)
            self._r.nameservers = list(cfg.nameservers)
        else:
            self._r = dns.resolver.Resolver()
        self._r.port = cfg.port
        self._r.lifetime = cfg.timeout_s
        self._r.timeout = min(cfg.timeout_s, 2.0)
        if cfg.cache_entries:
            self._r.cache = dns.resolver.LRUCache(cfg.cache_entries)

    def records(self, name: str, qtype: str) -> list:
        """The rdata of `name`/`qtype`; [] for NXDOMAIN or no data; DnsTempError when DNS did not answer."""
        try:
            return list(self._r.resolve(name, qtype, search=False))
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer, dns.name.EmptyLabel, dns.name.LabelTooLong,
                dns.name.NameTooLong):
            return []
        except dns.resolver.YXDOMAIN:
            return []
        except (dns.exception.Timeout, dns.resolver.NoNameservers, dns.resolver.LifetimeTimeout) as err:
            raise DnsTempError(f"DNS {qtype} {name}: {type(err).__name__}") from None

    def txt(self, name: str) -> list[bytes]:
        """Each TXT record of `name`, its character-strings joined (RFC 7208 3.3, RFC 6376 3.6.2.2)."""
        return [b"".join(r.strings) for r in self.records(name, "TXT")]

    def cached_entries(self) -> int:
        cache = self._r.cache
        return len(getattr(cache, "data", {})) if cache is not None else 0
