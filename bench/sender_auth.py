"""Time of the processor's SPF + DKIM + DMARC step per message, against dnsmasq on loopback (cold, then cached DNS).

Run from the repository root: `python bench/sender_auth.py` (needs dnsmasq, as scripts/install sets up).
"""
from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mailgate.core.config import parse_config  # noqa: E402
from processors.sender_auth import SenderAuthPolicy  # noqa: E402
from tests.integration.test_sender_auth_dns import RECORDS, _received, _signed  # noqa: E402
from tests.support.dns_server import DnsServer  # noqa: E402


async def main(n: int = 200) -> None:
    with DnsServer(RECORDS) as dns_server:
        cfg = parse_config({"ingress": {"hostname": "gw.test"},
                            "sender_auth": {"enabled": True, "dns": dns_server.config()}})
        policy = SenderAuthPolicy(cfg, "bench")
        message = _received(_signed(), "alice@signed.test")
        began = time.perf_counter()
        await policy(message)
        cold = time.perf_counter() - began
        began = time.perf_counter()
        for _ in range(n):
            await policy(message)
        cached = (time.perf_counter() - began) / n
    print(f"first message (cold DNS cache): {cold * 1000:.1f} ms; then {cached * 1000:.2f} ms per message "
          f"(SPF + DKIM verify of one 2048-bit signature + DMARC), {n} messages")


if __name__ == "__main__":
    asyncio.run(main())
