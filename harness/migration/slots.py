"""Logical slots on the cluster: Patroni drops every non-temporary slot it does not know
(unless `ignore_slots` matches it), so the rollback window's slot is declared a permanent
slot in Patroni's dynamic configuration. Patroni then keeps it on the leader and copies it
to the replicas, so it also survives a failover."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from harness.stack.lifecycle import Stack


class SlotKeeper(Protocol):
    def keep(self, name: str) -> None: ...

    def forget(self, name: str) -> None: ...


def permanent_slot(database: str = "postgres") -> dict[str, str]:
    return {"type": "logical", "database": database, "plugin": "pgoutput"}


@dataclass(frozen=True)
class PatroniSlots:
    """Permanent slots through Patroni's REST API (PATCH /config; null removes a key)."""

    stack: Stack

    def keep(self, name: str) -> None:
        with self.stack.patroni() as patroni:
            patroni.patch_config({"slots": {name: permanent_slot()}})

    def forget(self, name: str) -> None:
        with self.stack.patroni() as patroni:
            if name in (patroni.config().get("slots") or {}):
                patroni.patch_config({"slots": {name: None}})
