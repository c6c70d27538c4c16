"""The notifications, one entry per alert per notification, with the time it was received."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Bounded: a lab that fires for days must not fill the container's memory.
MAX_ENTRIES = 20_000


class Log:
    """In memory, and appended as JSON lines to `path` when given (survives nothing else)."""

    def __init__(self, path: Path | None = None, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self.clock = clock
        self._entries: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def record(self, payload: Any) -> int:
        """Entries from one webhook body (Alertmanager's version 4 payload); raises ValueError."""
        if not isinstance(payload, dict) or not isinstance(payload.get("alerts"), list):
            raise ValueError("not an Alertmanager webhook payload: no list of alerts")
        received = self.clock()
        entries = []
        for alert in payload["alerts"]:
            if not isinstance(alert, dict) or not isinstance(alert.get("labels"), dict):
                raise ValueError("an alert without labels")
            entries.append(
                {
                    "received": received,
                    "status": str(alert.get("status", payload.get("status", ""))),
                    "labels": {str(k): str(v) for k, v in alert["labels"].items()},
                    "startsAt": str(alert.get("startsAt", "")),
                    "endsAt": str(alert.get("endsAt", "")),
                }
            )
        with self._lock:
            self._entries.extend(entries)
            del self._entries[:-MAX_ENTRIES]
            if self.path is not None:
                with self.path.open("a", encoding="utf-8") as out:
                    out.writelines(json.dumps(e) + "\n" for e in entries)
        return len(entries)

    def since(self, at: float) -> list[dict[str, Any]]:
        with self._lock:
            return [e for e in self._entries if e["received"] >= at]
