"""Helpers for the security suite: the lab's secrets, and where each turns up. The real stack's
fixtures (`stack`, `test_env`) come from tests/conftest.py, shared with the integration and
chaos suites, so this suite adds no bring-up of its own."""

from __future__ import annotations

from collections.abc import Mapping

from harness.lab.project import PUBLISHED_PORTS, SQL_PORTS, Lab
from harness.lab.secrets import API_KEYS, SECRET_KEYS

# The PostgreSQL endpoints the core stack publishes (the `source` profile's are not up).
CORE_PROFILE_PORTS = {p.name for p in PUBLISHED_PORTS if p.profile is None}
SQL_ENDPOINTS = tuple(name for name in SQL_PORTS if name in CORE_PROFILE_PORTS)


def lab_secrets(lab: Lab) -> dict[str, str]:
    """Every secret .env holds, by key; a check with none to look for would prove nothing."""
    found = {key: lab.settings.get(key, "") for key in (*SECRET_KEYS, *API_KEYS)}
    missing = [key for key, value in found.items() if len(value) < 16]
    assert not missing, f"secrets missing from .env: {missing}"
    return found


def leaked(text: str, secrets: Mapping[str, str]) -> list[str]:
    """The names (never the values) of the secrets that appear in the text."""
    return sorted(key for key, value in secrets.items() if value in text)
