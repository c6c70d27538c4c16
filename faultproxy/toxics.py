"""Toxics: what each does to one direction of one connection.

A toxic's `process(chunk, emit, link)` passes the chunk on through `emit`, possibly
later, in pieces, partly, or not at all; chained toxics compose by emitting into the
next one. Timed toxics (timeout, reset_peer) also arm a timer on each link they apply to.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from faultproxy.errors import BAD_REQUEST_BODY, INVALID_STREAM, INVALID_TOXIC_TYPE

if TYPE_CHECKING:
    from faultproxy.proxy import Link

Emit = Callable[[bytes], Awaitable[None]]
STREAMS = ("upstream", "downstream")  # upstream: client -> server; downstream: server -> client

# Toxiproxy's attributes per type, with their defaults.
ATTRIBUTES: dict[str, dict[str, int]] = {
    "latency": {"latency": 0, "jitter": 0},
    "bandwidth": {"rate": 0},
    "slow_close": {"delay": 0},
    "timeout": {"timeout": 0},
    "reset_peer": {"timeout": 0},
    "slicer": {"average_size": 0, "size_variation": 0, "delay": 0},
    "limit_data": {"bytes": 0},
}


@dataclass
class Toxic:
    name: str
    type: str
    stream: str
    toxicity: float
    attributes: dict[str, int]
    version: int = field(default=0, compare=False)  # bumped on update: links re-decide toxicity

    @classmethod
    def from_json(cls, data: Any) -> Toxic:
        if not isinstance(data, dict):
            raise BAD_REQUEST_BODY.joined("expected a JSON object")
        stream = data.get("stream") or "downstream"
        if stream not in STREAMS:
            raise INVALID_STREAM
        kind = data.get("type", "")
        if kind not in ATTRIBUTES:
            raise INVALID_TOXIC_TYPE
        name = data.get("name") or f"{kind}_{stream}"
        toxic = cls(name=str(name), type=kind, stream=stream, toxicity=1.0, attributes={})
        toxic.update(data)
        return toxic

    def update(self, data: Any) -> None:
        """Apply `toxicity` and `attributes` from a request; unknown attributes are ignored."""
        if not isinstance(data, dict):
            raise BAD_REQUEST_BODY.joined("expected a JSON object")
        toxicity = data.get("toxicity", self.toxicity)
        attributes = data.get("attributes") or {}
        if not isinstance(toxicity, int | float) or not 0 <= toxicity <= 1:
            raise BAD_REQUEST_BODY.joined("toxicity must be a number from 0 to 1")
        if not isinstance(attributes, dict):
            raise BAD_REQUEST_BODY.joined("attributes must be an object")
        merged = {**ATTRIBUTES[self.type], **self.attributes}
        for key in ATTRIBUTES[self.type]:
            if key in attributes:
                value = attributes[key]
                if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
                    raise BAD_REQUEST_BODY.joined(f"{key} must be a non-negative number")
                merged[key] = int(value)
        self.toxicity = float(toxicity)
        self.attributes = merged
        self.version += 1

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "stream": self.stream,
            "toxicity": self.toxicity,
            "attributes": self.attributes,
        }

    def decide(self) -> bool:
        """Whether this toxic applies to a new link: decided once per link, as Toxiproxy does."""
        return random.random() < self.toxicity

    # -- the data path ---------------------------------------------------------------------

    async def process(self, chunk: bytes, emit: Emit, link: Link, arrival: float) -> None:
        a = self.attributes
        loop = asyncio.get_running_loop()
        if self.type == "latency":
            jitter = random.uniform(-a["jitter"], a["jitter"]) if a["jitter"] else 0.0
            delay = max(0.0, (a["latency"] + jitter) / 1000)
            await asyncio.sleep(max(0.0, arrival + delay - loop.time()))
            await emit(chunk)
        elif self.type == "bandwidth" and a["rate"] > 0:
            step = max(1, a["rate"] * 100)  # 100 ms worth of data per write
            for start in range(0, len(chunk), step):
                piece = chunk[start : start + step]
                await emit(piece)
                await asyncio.sleep(len(piece) / (a["rate"] * 1000))
        elif self.type == "slicer" and a["average_size"] > 0:
            start = 0
            while start < len(chunk):
                size = a["average_size"]
                if a["size_variation"]:
                    size += random.randint(-a["size_variation"], a["size_variation"])
                size = max(1, size)
                await emit(chunk[start : start + size])
                start += size
                if start < len(chunk) and a["delay"]:
                    await asyncio.sleep(a["delay"] / 1_000_000)
        elif self.type == "limit_data":
            room = a["bytes"] - link.sent[self.stream]
            if room > 0:
                await emit(chunk[:room])
            if len(chunk) >= room:
                link.close()
        elif self.type == "timeout":
            return  # data is dropped while the toxic is active
        else:
            await emit(chunk)

    async def run_timer(self, link: Link) -> None:
        """For timed toxics: what happens to a link after `timeout` ms."""
        if self.type == "timeout" and self.attributes["timeout"] == 0:
            return  # hold (drop) data until the toxic is removed
        await asyncio.sleep(self.attributes["timeout"] / 1000)
        if self.type == "timeout":
            link.close()
        else:
            link.reset()

    @property
    def timed(self) -> bool:
        return self.type in ("timeout", "reset_peer")
