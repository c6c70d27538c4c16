"""`python3 -m csvimport`: the service. The database comes from libpq's PG* variables."""

from __future__ import annotations

import argparse
import os
import signal
import threading
from pathlib import Path
from types import FrameType

from csvimport.api import ImportServer
from csvimport.store import Pacing, Store
from csvimport.worker import Worker, log

DEFAULT_LIMIT = 256 * 1024 * 1024


def main() -> None:
    parser = argparse.ArgumentParser(prog="csvimport", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument(
        "--spool",
        type=Path,
        default=Path(os.environ.get("CSV_IMPORT_SPOOL", "/var/lib/csv-import")),
        help="where received files wait until imported (a volume: it outlives restarts)",
    )
    parser.add_argument(
        "--max-bytes",
        type=int,
        default=int(os.environ.get("CSV_IMPORT_MAX_BYTES") or DEFAULT_LIMIT),
        help="the largest file accepted",
    )
    parser.add_argument(
        "--merge-rows",
        type=int,
        default=int(os.environ.get("CSV_IMPORT_MERGE_ROWS") or Pacing.rows),
        help="leads per statement of the merge",
    )
    parser.add_argument(
        "--merge-duty",
        type=float,
        default=float(os.environ.get("CSV_IMPORT_MERGE_DUTY") or Pacing.duty),
        help="the share of its wall time the merge may be busy (1: no pauses)",
    )
    args = parser.parse_args()
    try:
        pacing = Pacing(args.merge_rows, args.merge_duty)
    except ValueError as exc:
        parser.error(str(exc))
    args.spool.mkdir(parents=True, exist_ok=True)
    store = Store(pacing=pacing)
    worker = Worker(store, args.spool)
    server = ImportServer((args.host, args.port), store, worker, args.spool, args.max_bytes)

    def stop(signum: int, frame: FrameType | None) -> None:
        worker.stop()
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    worker.start()
    log(
        f"listening on {args.host}:{args.port}, spool {args.spool}, limit {args.max_bytes:,} B, "
        f"merge {pacing.rows} rows a statement at duty {pacing.duty}"
    )
    server.serve_forever()
    server.server_close()


if __name__ == "__main__":
    main()
