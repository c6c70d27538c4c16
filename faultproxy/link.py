"""A connection through a proxy, piped as Toxiproxy's link.go pipes it.

Each direction (a Flow, Toxiproxy's ToxicLink) reads one socket and passes what it reads through
a chain of stubs, one per toxic in the order they were added, to the other socket. With no toxic
on a direction the reader writes straight to the other socket: no per-chunk work beyond the read
and the write. When a direction's stream ends, its destination socket is closed (not half-closed),
which ends the other direction's read: Toxiproxy does not carry a TCP half-close.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
from collections import deque
from typing import TYPE_CHECKING, Protocol

from faultproxy.address import AddressError, dial
from faultproxy.stream import Chunk, Signal
from faultproxy.toxics import Direction, Toxic, noop

if TYPE_CHECKING:
    from faultproxy.proxy import Proxy

READ_SIZE = 65536


class Outlet(Protocol):
    """Where a stub, or a flow's reader, passes chunks: the next stub or the socket."""

    async def put(self, chunk: Chunk | None) -> None: ...


class Stub:
    """Toxiproxy's ToxicStub: one toxic on one direction of one connection.

    Its input is a buffer of the toxic's size (Toxiproxy's channel; at least one slot), its
    output the next stub or the socket, and an interrupt ends the toxic's waits so it can be run
    again (updated: new settings, new toxicity roll) or removed (what it holds goes on at once).
    """

    def __init__(self, toxic: Toxic, flow: Flow, output: Outlet) -> None:
        self.toxic = toxic
        self.flow = flow
        self.output = output
        self.transmitted = 0  # what limit_data let through on this link (LimitDataToxicState)
        self.removing = False
        self.gone = False
        self._capacity = max(1, toxic.kind.buffer)
        self._buffer: deque[Chunk | None] = deque()
        self._ended = False
        self._interrupted = False
        self._wake: asyncio.Future[bool] | None = None
        self._wants_input = False
        self._producers: deque[asyncio.Future[None]] = deque()
        self.task = asyncio.create_task(self._run())

    # -- the input side ---------------------------------------------------------------------

    async def put(self, chunk: Chunk | None) -> None:
        """Takes a chunk in, waiting while the buffer is full or the stub is being removed."""
        while not self.gone and (self.removing or len(self._buffer) >= self._capacity):
            room = asyncio.get_running_loop().create_future()
            self._producers.append(room)
            await room
        if self.gone:  # removed while we waited: straight on, still in order
            await self.output.put(chunk)
            return
        self._buffer.append(chunk)
        if self._wants_input:
            self._resolve(True)

    def interrupt(self) -> None:
        self._interrupted = True
        self._resolve(True)

    def remove(self) -> None:
        """ToxicLink.RemoveToxic: interrupt the toxic, then flush and unlink (see _leave). A stub
        that already closed stays as it is: its stream has ended."""
        self.removing = True
        self.interrupt()

    # -- what a toxic's pipe uses -----------------------------------------------------------

    async def receive(self, timeout: float | None = None) -> Chunk | Signal | None:
        """The next chunk; None at the end of the stream (and after it); or why the wait
        (limited to `timeout` seconds, if given) ended without one."""
        while not self._interrupted:
            if self._buffer:
                chunk = self._buffer.popleft()
                self._let_in(1)
                self._ended = chunk is None
                return chunk
            if self._ended:
                return None
            self._wants_input = True
            try:
                if not await self._wait(timeout):
                    return Signal.TIMED_OUT
            finally:
                self._wants_input = False
        return Signal.INTERRUPTED

    async def sleep(self, seconds: float) -> bool:
        """Waits `seconds`: False if interrupted first (at once if it already was)."""
        if self._interrupted:
            return False
        if seconds > 0:
            await self._wait(seconds)
        return not self._interrupted

    async def send(self, chunk: Chunk) -> None:
        await self.output.put(chunk)

    async def close(self) -> bool:
        """Ends the stream here (Toxiproxy's stub.Close); True, what a pipe returns once done."""
        await self.output.put(None)
        return True

    # -- running ----------------------------------------------------------------------------

    async def _run(self) -> None:
        """ToxicStub.Run: the toxic, or noop when the toxicity roll spares this link; rerun on
        each interrupt until it closes or is removed."""
        while True:
            toxic = self.toxic
            pipe = toxic.kind.pipe if random.random() < toxic.toxicity else noop
            if await pipe(self, toxic):
                return
            self._interrupted = False
            if self.removing:
                await self._leave()
                return

    async def _leave(self) -> None:
        """A toxic that ends the connection when removed (timeout) does; any other passes on
        what it holds, then the chain closes over it."""
        if self.toxic.kind.closes_when_removed:
            await self.close()
            return
        while self._buffer:
            await self.output.put(self._buffer.popleft())
        self.flow.unlink(self)
        self.gone = True
        self._let_in(len(self._producers))

    async def _wait(self, timeout: float | None) -> bool:
        """Until woken (True) or `timeout` seconds pass (False)."""
        loop = asyncio.get_running_loop()
        wake: asyncio.Future[bool] = loop.create_future()
        self._wake = wake
        timer = None if timeout is None else loop.call_later(timeout, self._resolve, False)
        try:
            return await wake
        finally:
            self._wake = None
            if timer is not None:
                timer.cancel()

    def _let_in(self, count: int) -> None:
        """Wakes up to `count` producers waiting for room (skipping any that gave up)."""
        while count and self._producers:
            room = self._producers.popleft()
            if not room.done():
                room.set_result(None)
                count -= 1

    def _resolve(self, woken: bool) -> None:
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(woken)


class Sink:
    """A chain's end: writes to the destination socket, and closes it at the end of the stream
    (ToxicLink.write)."""

    def __init__(self, link: Link, writer: asyncio.StreamWriter) -> None:
        self.link = link
        self.writer = writer
        self.done = False

    async def put(self, chunk: Chunk | None) -> None:
        if chunk is None:
            self.finish()
        else:
            await self.write(chunk.data)

    async def write(self, data: bytes) -> bool:
        """False once the socket is closed or failed, which finishes this direction."""
        if self.done:
            return False
        try:
            self.writer.write(data)
            await self.writer.drain()
        except (ConnectionError, OSError):
            self.finish()
            return False
        return True

    def finish(self) -> None:
        if not self.done:
            self.done = True
            self.link.finished(self.writer)


class Flow:
    """One direction of a connection: Toxiproxy's ToxicLink."""

    def __init__(self, link: Link, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader = reader
        self.sink = Sink(link, writer)
        self.output: Outlet = self.sink
        self.stubs: list[Stub] = []

    async def pump(self) -> None:
        """ToxicLink.read: what the source sends, into the chain; a read error ends it too."""
        loop = asyncio.get_running_loop()
        sink = self.sink
        while True:
            try:
                data = await self.reader.read(READ_SIZE)
            except OSError:
                break
            if not data:
                break
            if self.output is sink:  # no toxic: the fast path
                if not await sink.write(data):
                    return
            else:
                await self.output.put(Chunk(data, loop.time()))
        await self.output.put(None)

    def add(self, toxic: Toxic) -> None:
        """ToxicLink.AddToxic: at the end of the chain, unless this direction already ended."""
        if self.sink.done:
            return
        stub = Stub(toxic, self, self.sink)
        (self.stubs[-1] if self.stubs else self).output = stub
        self.stubs.append(stub)

    def stub(self, toxic: Toxic) -> Stub | None:
        return next((stub for stub in self.stubs if stub.toxic is toxic), None)

    def unlink(self, stub: Stub) -> None:
        """Takes a stub out of the chain: what fed it now feeds its output."""
        index = self.stubs.index(stub)
        (self.stubs[index - 1] if index else self).output = stub.output
        del self.stubs[index]

    def cancel(self) -> None:
        for stub in self.stubs:
            stub.task.cancel()


class Link:
    """A client connection and its upstream connection: Toxiproxy's pair of ToxicLinks."""

    def __init__(
        self, proxy: Proxy, client: tuple[asyncio.StreamReader, asyncio.StreamWriter]
    ) -> None:
        self.proxy = proxy
        self.client = client
        self.writers = [client[1]]
        self.flows: dict[Direction, Flow] = {}
        self.reset = False
        self._open = 2
        self._done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        """Runs the link in a task of its own, which closing the link cancels."""
        self._tasks.append(asyncio.create_task(self.run()))

    async def run(self) -> None:
        """Proxy.accept: dial upstream (the client is closed if that fails), then pipe both
        directions through the proxy's toxics until both have ended."""
        try:
            try:
                server = await dial(self.proxy.upstream)
            except (OSError, AddressError):
                return
            self.writers.append(server[1])
            # ToxicLink.Start sets SO_LINGER 0 when a reset_peer toxic is in the chain: every
            # close of this connection is then a reset.
            self.reset = any(t.type == "reset_peer" for t in self.proxy.toxics.values())
            self.flows = {
                "upstream": Flow(self, self.client[0], server[1]),
                "downstream": Flow(self, server[0], self.client[1]),
            }
            for toxic in self.proxy.toxics.values():
                self.flows[toxic.direction].add(toxic)
            self._tasks += [asyncio.create_task(flow.pump()) for flow in self.flows.values()]
            await self._done
        finally:
            self.close()

    def add(self, toxic: Toxic) -> None:
        if flow := self.flows.get(toxic.direction):
            flow.add(toxic)

    def update(self, toxic: Toxic) -> None:
        if (flow := self.flows.get(toxic.direction)) and (stub := flow.stub(toxic)):
            stub.interrupt()

    def remove(self, toxic: Toxic) -> None:
        if (flow := self.flows.get(toxic.direction)) and (stub := flow.stub(toxic)):
            stub.remove()

    def finished(self, writer: asyncio.StreamWriter) -> None:
        """One direction's stream ended: its destination is closed; both, the link is done."""
        self._shut(writer)
        self._open -= 1
        if self._open == 0 and not self._done.done():
            self._done.set_result(None)

    def close(self) -> None:
        """Both sockets closed now (Proxy.stop closes every connection), every task ended."""
        for writer in self.writers:
            self._shut(writer)
        current = asyncio.current_task()
        for task in self._tasks:
            if task is not current:
                task.cancel()
        for flow in self.flows.values():
            flow.cancel()
        self.proxy.links.discard(self)

    def _shut(self, writer: asyncio.StreamWriter) -> None:
        if writer.transport.is_closing():
            return
        if self.reset:
            sock = writer.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
        else:
            writer.close()
