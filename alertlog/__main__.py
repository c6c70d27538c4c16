"""python3 -m alertlog --host 0.0.0.0 --port 9095 [--file PATH]"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from alertlog.log import Log
from alertlog.server import make_server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="alertlog", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9095)
    parser.add_argument("--file", type=Path, default=None, help="also append JSON lines here")
    args = parser.parse_args(argv)
    server = make_server(args.host, args.port, Log(args.file))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
