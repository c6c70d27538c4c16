"""A Toxiproxy-compatible fault proxy: Toxiproxy 2.12's HTTP API and toxics, in stdlib asyncio.

No Toxiproxy server can be installed where the lab runs, so this serves its API (any Toxiproxy
client works unchanged) and pipes connections through toxics as Toxiproxy does. Where
Toxiproxy 2.12 would hang or crash, it does not: a bandwidth rate of 0 or less and a slicer
average size of 0 or less pass data through, and a slicer never splits outside a chunk.
"""

VERSION = "2.12.0-gardenlab"
"""The Toxiproxy version it behaves as, marked so that a user can tell which server answers."""
