"""A Toxiproxy-compatible fault proxy: Toxiproxy's HTTP API and toxics, in stdlib asyncio.

No Toxiproxy server can be installed where the lab runs, so this speaks its API
(any Toxiproxy client works unchanged) and reproduces its toxics' effects.
"""

VERSION = "2.12.0-gardenlab"
