from __future__ import annotations

import pytest

from harness.core.errors import ConfigError
from harness.lab.presets import PRESETS, TimingPreset, get_preset


def preset(**overrides: object) -> TimingPreset:
    fields: dict[str, object] = {
        "name": "t",
        "description": "",
        "ttl": 20,
        "loop_wait": 1,
        "retry_timeout": 4,
        "check_inter_ms": 500,
        "check_fall": 1,
        "check_rise": 1,
        "connect_timeout_ms": 500,
    }
    fields.update(overrides)
    return TimingPreset(**fields)  # type: ignore[arg-type]


def test_every_preset_obeys_patroni_rules() -> None:
    for p in PRESETS.values():
        assert p.ttl >= 20
        assert p.loop_wait + 2 * p.retry_timeout <= p.ttl


def test_ttl_below_patroni_minimum_is_refused() -> None:
    with pytest.raises(ConfigError, match="below Patroni's minimum"):
        preset(ttl=10)


def test_retry_budget_longer_than_ttl_is_refused() -> None:
    with pytest.raises(ConfigError, match="exceeds ttl"):
        preset(ttl=20, loop_wait=10, retry_timeout=10)


def test_unknown_preset_names_the_choices() -> None:
    with pytest.raises(ConfigError) as info:
        get_preset("turbo")
    assert "turbo" in info.value.message
    assert "fast, normal, safe" in info.value.hint
