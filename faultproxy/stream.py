"""What flows through a chain of toxics: Toxiproxy's stream.StreamChunk, and the signals a
toxic can wake up to instead of data."""

from __future__ import annotations

import enum
from dataclasses import dataclass


@dataclass(slots=True)
class Chunk:
    """Bytes read from one socket, stamped with the loop time they were read at.

    A latency toxic delays a chunk to `stamp + latency` and then advances the stamp by what it
    slept, so the next latency toxic in the chain adds its own delay (toxics/latency.go).
    """

    data: bytes
    stamp: float


class Signal(enum.Enum):
    """A toxic's wait that ended without data."""

    INTERRUPTED = "interrupted"  # the toxic was updated or removed: Toxiproxy's stub.Interrupt
    TIMED_OUT = "timed out"
