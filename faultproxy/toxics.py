"""Toxics: what each does to one direction of one connection, as Toxiproxy 2.12's toxics/*.go.

Each toxic runs on a stub (Toxiproxy's ToxicStub: its input, its output, an interrupt) as a
pipe coroutine that reads chunks, passes them on later, in pieces, partly or not at all, and
returns True once it has closed its output (ending the connection's direction) or False when
interrupted, to be run again with the toxic's new settings and a new toxicity roll.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Container, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, cast, get_args

from faultproxy import gojson
from faultproxy.errors import INVALID_STREAM, INVALID_TOXIC_TYPE, TOXIC_EXISTS
from faultproxy.stream import Chunk, Signal

if TYPE_CHECKING:
    from faultproxy.link import Stub

ToxicType = Literal[
    "noop", "latency", "bandwidth", "slow_close", "timeout", "reset_peer", "slicer", "limit_data"
]
Direction = Literal["upstream", "downstream"]  # upstream: client -> server
DIRECTIONS: tuple[Direction, ...] = get_args(Direction)
Pipe = Callable[["Stub", "Toxic"], Awaitable[bool]]

WRAPPER: Mapping[str, gojson.GoType] = {
    "name": "string",
    "type": "string",
    "stream": "string",
    "toxicity": "float32",
}
UPDATE: Mapping[str, gojson.GoType] = {"toxicity": "float32"}
UPDATE_TYPE = (  # the anonymous struct UpdateToxicJson decodes into, as Go names it
    'struct { Attributes interface {} "json:\\"attributes\\""; '
    'Toxicity float32 "json:\\"toxicity\\"" }'
)


@dataclass(frozen=True)
class Kind:
    """A toxic type: its Go struct (attribute names, in field order, and Go types) and pipe."""

    struct: str
    attributes: Mapping[str, gojson.GoType]
    pipe: Pipe
    buffer: int = 0  # BufferedToxic.GetBufferSize: chunks it takes in while busy
    closes_when_removed: bool = False  # CleanupToxic: removing it ends the connection


@dataclass(eq=False)
class Toxic:
    name: str
    type: ToxicType
    stream: str  # as the request spelled it (any case); Toxiproxy echoes it
    direction: Direction
    toxicity: float  # float32, as ToxicWrapper.Toxicity; any value, compared with a roll in [0, 1)
    attributes: dict[str, int]

    @property
    def kind(self) -> Kind:
        return KINDS[self.type]

    @classmethod
    def create(cls, body: bytes, taken: Container[str]) -> Toxic:
        """ToxicCollection.AddToxicJson: checks in its order, defaults, `<type>_<stream>` name."""
        data = gojson.read(body)
        head = gojson.fields(data, WRAPPER, "ToxicWrapper.", "Go value of type toxics.ToxicWrapper")
        stream = head.get("stream", "downstream")
        direction = stream.lower()  # stream.ParseDirection ignores case; "" is invalid
        if direction not in DIRECTIONS:
            raise INVALID_STREAM
        kind = head.get("type", "")
        name = head.get("name") or f"{kind}_{stream}"
        if kind not in KINDS:
            raise INVALID_TOXIC_TYPE
        if name in taken:
            raise TOXIC_EXISTS
        attributes = dict.fromkeys(KINDS[kind].attributes, 0)
        toxic = cls(
            name,
            cast(ToxicType, kind),
            stream,
            cast(Direction, direction),
            head.get("toxicity", 1.0),
            attributes,
        )
        toxic.attributes.update(toxic.parse_attributes(data))
        return toxic

    def update(self, body: bytes) -> None:
        """ToxicCollection.UpdateToxicJson: only attributes (merged) and toxicity change."""
        data = gojson.read(body)
        head = gojson.fields(data, UPDATE, ".", f"Go value of type {UPDATE_TYPE}")
        self.attributes.update(self.parse_attributes(data))
        self.toxicity = head.get("toxicity", self.toxicity)

    def parse_attributes(self, data: Any) -> dict[str, int]:
        kind = self.kind
        return gojson.fields(
            gojson.member(data, "attributes"),
            kind.attributes,
            f"{kind.struct}.attributes.",
            f"Go struct field .attributes of type toxics.{kind.struct}",
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "attributes": dict(self.attributes),
            "name": self.name,
            "type": self.type,
            "stream": self.stream,
            "toxicity": gojson.float32_json(self.toxicity),
        }


def milliseconds(value: int) -> float:
    return value / 1000


# -- the pipes (toxics/*.go, Pipe) -------------------------------------------------------------
#
# Each reads chunks while `stub.receive()` gives one; what ends that loop is the end of the
# stream (None: the pipe closes its output and is done) or an interrupt (it returns False).


async def finish(stub: Stub, last: Chunk | Signal | None) -> bool:
    """The end of a pipe: at the end of the stream, close the output (True); else False."""
    return last is None and await stub.close()


async def noop(stub: Stub, toxic: Toxic) -> bool:
    """Passes everything on; also what a toxic does on a link its toxicity roll spared."""
    while isinstance(chunk := await stub.receive(), Chunk):
        await stub.send(chunk)
    return await finish(stub, chunk)


async def latency(stub: Stub, toxic: Toxic) -> bool:
    """Delays each chunk to its stamp + latency ± jitter, so chained latencies add up; it takes
    in up to 1024 chunks while waiting, so a delay does not throttle throughput."""
    loop = asyncio.get_running_loop()
    while isinstance(chunk := await stub.receive(), Chunk):
        delay, jitter = toxic.attributes["latency"], toxic.attributes["jitter"]
        if jitter > 0:
            delay += random.randrange(-jitter, jitter)  # rand.Int63n(jitter*2) - jitter
        sleep = milliseconds(delay) - (loop.time() - chunk.stamp)
        if not await stub.sleep(sleep):
            await stub.send(chunk)  # interrupted: on at once, "don't drop any data on the floor"
            return False
        chunk.stamp += sleep
        await stub.send(chunk)
    return await finish(stub, chunk)


async def bandwidth(stub: Stub, toxic: Toxic) -> bool:
    """Holds each chunk for its transmission time at `rate` KB/s before passing it on, sending a
    chunk longer than 100 ms' worth in 100 ms pieces; oversleeping is paid back on the next.

    A rate of 0 or less passes data through: there Toxiproxy 2.12 stalls or panics (fixed in
    2.13), which no test can want.
    """
    loop = asyncio.get_running_loop()
    owed = 0.0  # seconds of transmission time not yet waited: Toxiproxy's `sleep`
    while isinstance(chunk := await stub.receive(), Chunk):
        rate = toxic.attributes["rate"]
        if rate <= 0:
            owed = 0.0
            await stub.send(chunk)
            continue
        data, start, piece = chunk.data, 0, rate * 100
        owed += len(data) / (rate * 1000)
        while len(data) - start > piece:
            if not await stub.sleep(0.1):
                await stub.send(Chunk(data[start:], chunk.stamp))
                return False
            await stub.send(Chunk(data[start : start + piece], chunk.stamp))
            start += piece
            owed -= 0.1
        began = loop.time()
        waited = await stub.sleep(owed)
        owed -= loop.time() - began
        await stub.send(Chunk(data[start:], chunk.stamp))
        if not waited:
            return False
    return await finish(stub, chunk)


async def slow_close(stub: Stub, toxic: Toxic) -> bool:
    """Passes data on, and the end of the stream only `delay` ms after it came."""
    while isinstance(chunk := await stub.receive(), Chunk):
        await stub.send(chunk)
    if chunk is None and not await stub.sleep(milliseconds(toxic.attributes["delay"])):
        return False
    return await finish(stub, chunk)


async def timeout(stub: Stub, toxic: Toxic) -> bool:
    """Drops all data, and ends the direction `timeout` ms after the last chunk (or after it
    started): each chunk restarts the wait. With a timeout of 0 or less it never ends it; only
    removing the toxic does (Kind.closes_when_removed)."""
    wait = milliseconds(toxic.attributes["timeout"])
    while isinstance(chunk := await stub.receive(wait if wait > 0 else None), Chunk):
        pass  # dropped
    return await finish(stub, None if chunk is Signal.TIMED_OUT else chunk)


async def reset_peer(stub: Stub, toxic: Toxic) -> bool:
    """On the first chunk (dropped) or the end of the stream, waits `timeout` ms, not to be
    interrupted, then ends the direction. The connection is reset (RST) only if the toxic was
    there when it was accepted, since Toxiproxy sets SO_LINGER 0 in ToxicLink.Start only."""
    if await stub.receive() is Signal.INTERRUPTED:
        return False
    await asyncio.sleep(max(0.0, milliseconds(toxic.attributes["timeout"])))
    return await stub.close()


def slices(start: int, end: int, average: int, variation: int) -> Iterator[tuple[int, int]]:
    """SlicerToxic.chunk: halves a range around its middle ± `variation` until each part is
    within `variation` of `average`. The split point is kept inside the range, where sizes
    Toxiproxy 2.12 cannot slice (it recurses forever or panics) would put it outside."""
    if (end - start) - average <= variation:
        yield start, end
        return
    middle = start + (end - start) // 2 + random.randint(-variation, variation)
    middle = min(max(middle, start + 1), end - 1)
    yield from slices(start, middle, average, variation)
    yield from slices(middle, end, average, variation)


async def slicer(stub: Stub, toxic: Toxic) -> bool:
    """Splits each chunk into pieces of about `average_size` bytes, waiting `delay` µs after
    each. An average size of 0 or less passes chunks whole (Toxiproxy 2.12 crashes there)."""
    while isinstance(chunk := await stub.receive(), Chunk):
        a = toxic.attributes
        if a["average_size"] <= 0:
            await stub.send(chunk)
            continue
        for start, end in slices(
            0, len(chunk.data), a["average_size"], max(0, a["size_variation"])
        ):
            await stub.send(Chunk(chunk.data[start:end], chunk.stamp))
            if not await stub.sleep(a["delay"] / 1_000_000):
                if end < len(chunk.data):
                    await stub.send(Chunk(chunk.data[end:], chunk.stamp))
                return False
    return await finish(stub, chunk)


async def limit_data(stub: Stub, toxic: Toxic) -> bool:
    """Passes `bytes` bytes, counted on this link from when the toxic was added, then ends the
    direction."""
    while isinstance(chunk := await stub.receive(), Chunk):
        room = max(0, toxic.attributes["bytes"] - stub.transmitted)
        if room < len(chunk.data):
            chunk = Chunk(chunk.data[:room], chunk.stamp)
        if chunk.data:
            await stub.send(chunk)
            stub.transmitted += len(chunk.data)
        if toxic.attributes["bytes"] - stub.transmitted <= 0:
            return await stub.close()
    return await finish(stub, chunk)


KINDS: dict[ToxicType, Kind] = {
    "noop": Kind("NoopToxic", {}, noop),
    "latency": Kind("LatencyToxic", {"latency": "int64", "jitter": "int64"}, latency, buffer=1024),
    "bandwidth": Kind("BandwidthToxic", {"rate": "int64"}, bandwidth),
    "slow_close": Kind("SlowCloseToxic", {"delay": "int64"}, slow_close),
    "timeout": Kind("TimeoutToxic", {"timeout": "int64"}, timeout, closes_when_removed=True),
    "reset_peer": Kind("ResetToxic", {"timeout": "int64"}, reset_peer),
    "slicer": Kind(
        "SlicerToxic", {"average_size": "int", "size_variation": "int", "delay": "int"}, slicer
    ),
    "limit_data": Kind("LimitDataToxic", {"bytes": "int64"}, limit_data),
}
