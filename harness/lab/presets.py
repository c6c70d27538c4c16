"""Timing presets: one source of truth for how fast the cluster notices and routes around failure.

Patroni's DCS timings and HAProxy's health checks must agree, so both are rendered
from the same preset (see harness.config.render) and Patroni's live configuration is
patched to it on every `up`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harness.core.errors import ConfigError

PATRONI_MIN_TTL = 20  # Patroni 4 raises any lower ttl to 20 with a warning


@dataclass(frozen=True)
class TimingPreset:
    name: str
    description: str
    ttl: int  # s: leader lock lifetime; a hard-killed leader is replaced after ~ttl
    loop_wait: int  # s: Patroni's HA loop period
    retry_timeout: int  # s: DCS and PostgreSQL retry budget before demoting
    check_inter_ms: int  # HAProxy health-check interval
    check_fall: int  # failed checks before a backend is marked down
    check_rise: int  # passed checks before a backend is marked up
    connect_timeout_ms: int  # HAProxy's connect timeout to a node
    # HAProxy's interval for checks on a server that is down (a replica on rw): how soon a
    # new leader is found; None checks it every check_inter_ms like the others
    check_downinter_ms: int | None = None

    def __post_init__(self) -> None:
        if self.ttl < PATRONI_MIN_TTL:
            raise ConfigError(
                f"preset {self.name!r}: ttl {self.ttl} s is below Patroni's minimum of "
                f"{PATRONI_MIN_TTL} s",
                f"use ttl >= {PATRONI_MIN_TTL}",
            )
        if self.loop_wait + 2 * self.retry_timeout > self.ttl:
            raise ConfigError(
                f"preset {self.name!r}: loop_wait + 2 * retry_timeout "
                f"({self.loop_wait} + 2 * {self.retry_timeout}) exceeds ttl {self.ttl}",
                "a leader could lose its lock while still retrying; lower them or raise ttl",
            )

    def dcs_settings(self) -> dict[str, Any]:
        """The subset of Patroni's dynamic configuration this preset owns."""
        return {"ttl": self.ttl, "loop_wait": self.loop_wait, "retry_timeout": self.retry_timeout}


PRESETS: dict[str, TimingPreset] = {
    p.name: p
    for p in (
        TimingPreset(
            name="fast",
            description="lab default: failover in ~ttl (20 s), HAProxy follows within ~0.5 s",
            ttl=20,
            loop_wait=1,
            retry_timeout=4,
            check_inter_ms=500,
            check_fall=1,
            check_rise=1,
            connect_timeout_ms=500,
        ),
        TimingPreset(
            name="normal",
            description="Patroni's defaults (ttl 30, loop_wait 10), HAProxy checks every 1 s",
            ttl=30,
            loop_wait=10,
            retry_timeout=10,
            check_inter_ms=1000,
            check_fall=2,
            check_rise=1,
            connect_timeout_ms=1000,
        ),
        TimingPreset(
            name="safe",
            description="tolerates slow networks and DCS hiccups; slower failover (~45 s)",
            ttl=45,
            loop_wait=10,
            retry_timeout=15,
            check_inter_ms=2000,
            check_fall=3,
            check_rise=2,
            connect_timeout_ms=2000,
        ),
    )
}

DEFAULT_PRESET = "fast"


def get_preset(name: str) -> TimingPreset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(
            f"unknown preset {name!r}", f"choose one of: {', '.join(PRESETS)}"
        ) from None
