"""Paced load for the latency benchmark: a steady offered rate, one new SMTP connection per message.

Used by bench/run.py --paced. Reads nothing; sends `rate` messages per second for `seconds` seconds to an SMTP
port (each one: connect, EHLO, MAIL, RCPT, DATA, QUIT; the body is `size` bytes), starting each message on its own
schedule (t0 + i / rate) whether or not earlier ones finished, as independent clients would. Emits the count of
messages that got their 250 and the errors. `stage_latencies` turns a run's events into accept -> delivered
percentiles and the same per stage (received -> routed -> attempt started -> delivered).
"""
from __future__ import annotations

import asyncio
import time
from collections import Counter


def body(size: int, n: int) -> bytes:
    head = f"From: a@src.test\r\nTo: u@example.test\r\nSubject: paced {n}\r\n\r\n".encode()
    line = b"x" * 76 + b"\r\n"
    lines = (max(0, size - len(head)) // len(line)) + 1
    return head + line * lines


async def _one(host: str, port: int, sender: str, rcpt: str, data: bytes, timeout_s: float) -> str | None:
    """One message on a new connection; None when the DATA reply was 250, else what went wrong."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout_s)
    except (OSError, asyncio.TimeoutError) as err:
        return f"connect: {type(err).__name__}"

    async def reply() -> bytes:
        while True:
            line = await asyncio.wait_for(reader.readline(), timeout_s)
            if not line:
                raise ConnectionError("closed")
            if line[3:4] != b"-":
                return line

    try:
        steps = [(None, b"220"), (b"EHLO paced.bench.test\r\n", b"250"), (f"MAIL FROM:<{sender}>\r\n".encode(), b"250"),
                 (f"RCPT TO:<{rcpt}>\r\n".encode(), b"250"), (b"DATA\r\n", b"354"), (data + b".\r\n", b"250")]
        for cmd, want in steps:
            if cmd is not None:
                writer.write(cmd)
            line = await reply()
            if not line.startswith(want):
                return f"{(cmd or b'greeting').split()[0].decode()}: {line[:60].decode(errors='replace').strip()}"
        writer.write(b"QUIT\r\n")
        return None
    except (OSError, ConnectionError, asyncio.TimeoutError) as err:
        return f"session: {type(err).__name__}"
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except OSError:
            pass


async def _paced(host: str, port: int, rate: float, seconds: float, size: int, sender: str, rcpt: str
                 ) -> tuple[int, Counter, float]:
    n = int(rate * seconds)
    data = body(size, 0)
    tasks = []
    t0 = time.monotonic()
    for i in range(n):
        delay = t0 + i / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(_one(host, port, sender, rcpt, data, 60)))
    results = await asyncio.gather(*tasks)
    errors = Counter(r for r in results if r is not None)
    return n - sum(errors.values()), errors, time.monotonic() - t0


def send_paced(host: str, port: int, rate: float, seconds: float, size: int, sender: str, rcpt: str
               ) -> tuple[int, Counter, float]:
    """(messages accepted, errors by kind, wall seconds) of one paced run."""
    return asyncio.run(_paced(host, port, rate, seconds, size, sender, rcpt))


def pcts(vals: list[int]) -> dict[str, float]:
    vals = sorted(vals)
    if not vals:
        return {}
    at = lambda p: float(vals[min(len(vals) - 1, int(round(p / 100 * (len(vals) - 1))))])  # noqa: E731
    return {"p50": at(50), "p95": at(95), "p99": at(99), "max": at(100)}


def stage_latencies(events: list) -> dict[str, dict[str, float]]:
    """Percentiles (ms) of accept -> delivered and of each stage, from the events' own timestamps:
    MessageReceived.occurred_at (ingress accepted, after Kafka's ack), MessageRouted.occurred_at (the processor
    routed it), DeliveryAttempted.occurred_at - duration_ms (egress started the SMTP attempt that delivered it) and
    MessageDelivered.occurred_at (the downstream's 250)."""
    received, routed, started, delivered = {}, {}, {}, {}
    for e in events:
        name = type(e).__name__
        mid = getattr(e, "message_id", None)
        if name == "MessageReceived":
            received[mid] = e.occurred_at
        elif name == "MessageRouted":
            routed.setdefault(mid, e.occurred_at)
        elif name == "DeliveryAttempted" and not e.error:
            started[mid] = e.occurred_at - e.duration_ms
        elif name == "MessageDelivered":
            delivered.setdefault(mid, (e.occurred_at, e.received_at))
    ids = [m for m in delivered if m in received and m in routed and m in started]
    return {
        "accept->delivered": pcts([delivered[m][0] - delivered[m][1] for m in delivered]),
        "received->routed": pcts([routed[m] - received[m] for m in ids]),
        "routed->attempt": pcts([started[m] - routed[m] for m in ids]),
        "attempt->delivered": pcts([delivered[m][0] - started[m] for m in ids]),
    }
