"""What PIPELINING saves a client on a slow path: per-message time from MAIL to the 250 after the final dot, against
ingress through a proxy that adds a round-trip delay, with the client pipelining (RFC 2920) or waiting per command.

Usage: python bench/pipelining_rtt.py [--messages N] [--rtt-ms MS] [--rounds R]

Starts its own Kafka broker (bench/local_kafka.py) and one ingress process (`python -m mailgate.ops.cli ingress`,
Domain Forward for example.test; no processor or egress: the 250 needs only Kafka's acknowledgement), and a TCP
proxy on loopback that holds every segment for half the round trip in each direction (so `--rtt-ms` is added to
every round trip, as on a WAN path). Per round and mode, one connection, EHLO once, then N messages of 1 KB, one
after the other: `pipelined` writes MAIL, RCPT and DATA together and the body after 354 (two round trips),
`lockstep` waits for each reply (four). Prints per mode the median and p90 milliseconds per message.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

from bench.local_kafka import _free_port, local_kafka  # noqa: E402

BODY = b"From: <a@sender.test>\r\nSubject: rtt\r\n\r\n" + (b"x" * 78 + b"\r\n") * 12 + b".\r\n"


async def delayed_proxy(listen: int, target: int, one_way_s: float) -> asyncio.Server:
    """A loopback proxy that delivers every chunk `one_way_s` after it arrived, in order, both ways."""
    async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def send() -> None:
            while True:
                due, data = await queue.get()
                if not data:
                    writer.close()
                    return
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                writer.write(data)
                await writer.drain()

        sender = asyncio.ensure_future(send())
        while data := await reader.read(65536):
            queue.put_nowait((time.monotonic() + one_way_s, data))
        queue.put_nowait((0.0, b""))
        await sender

    async def serve(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection("127.0.0.1", target)
        try:
            await asyncio.gather(pump(client_r, server_w), pump(server_r, client_w), return_exceptions=True)
        except asyncio.CancelledError:
            pass  # the proxy is closing at the end of the run

    return await asyncio.start_server(serve, "127.0.0.1", listen)


async def reply(reader: asyncio.StreamReader) -> bytes:
    while True:
        line = await reader.readline()
        if line[3:4] != b"-":
            return line


async def run(port: int, n: int, pipelined: bool) -> list[float]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    await reply(reader)
    writer.write(b"EHLO client.test\r\n")
    assert b"250" in await reply(reader)
    times = []
    envelope = [b"MAIL FROM:<a@sender.test>\r\n", b"RCPT TO:<bob@example.test>\r\n", b"DATA\r\n"]
    for _ in range(n):
        began = time.monotonic()
        if pipelined:
            writer.write(b"".join(envelope))
            got = [await reply(reader) for _ in envelope]
        else:
            got = []
            for command in envelope:
                writer.write(command)
                got.append(await reply(reader))
        assert got[-1].startswith(b"354"), got
        writer.write(BODY)
        end = await reply(reader)
        assert end.startswith(b"250"), end
        times.append((time.monotonic() - began) * 1000)
    writer.write(b"QUIT\r\n")
    writer.close()
    return times


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=50)
    ap.add_argument("--rtt-ms", type=float, default=50)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    smtp = _free_port()
    gateways = [{"name": "home", "mode": "domain_forward", "primary_addresses": ["127.0.0.1"],
                 "primary_port": _free_port(),
                 "domain_verification": {"mode": "specified_domains", "domains": ["example.test"]}}]
    with local_kafka({"ingress": {"listen_port": smtp, "hostname": "gw.test"}}) as (cfg, data, workdir):
        data["inbound_gateways"] = gateways
        config = workdir / "mailgate.yaml"
        config.write_text(yaml.safe_dump(data))
        log = open(workdir / "ingress.log", "w")
        ingress = subprocess.Popen([sys.executable, "-m", "mailgate.ops.cli", "ingress", "--config", str(config)],
                                   cwd=str(ROOT), stdout=log, stderr=subprocess.STDOUT, env=os.environ.copy())
        try:
            print(asyncio.run(measure(smtp, args)))
        finally:
            ingress.terminate()
            ingress.wait(30)


async def measure(smtp: int, args: argparse.Namespace) -> str:
    deadline = time.monotonic() + 60
    while True:
        try:
            _, w = await asyncio.open_connection("127.0.0.1", smtp)
            w.close()
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)
    proxy_port = _free_port()
    proxy = await delayed_proxy(proxy_port, smtp, args.rtt_ms / 2000)
    await run(smtp, 20, True)  # warm-up, no delay
    results: dict[str, list[float]] = {"pipelined": [], "lockstep": []}
    for _ in range(args.rounds):
        for mode in results:
            results[mode] += await run(proxy_port, args.messages, mode == "pipelined")
    proxy.close()
    lines = [f"added round trip {args.rtt_ms:g} ms, {args.rounds} x {args.messages} messages per mode"]
    for mode, times in results.items():
        times.sort()
        lines.append(f"{mode:10} median {statistics.median(times):6.1f} ms  p90 {times[int(len(times) * 0.9)]:6.1f} ms"
                     f"  per message (MAIL to the 250 after the final dot)")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
