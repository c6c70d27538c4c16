"""The lab's secrets: generated once into the ignored .env at the root, never committed."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping
from pathlib import Path

# The secrets a cluster is initialised with; data volumes remember their fingerprint.
BOOTSTRAP_SECRETS = ("POSTGRES_PASSWORD", "REPLICATION_PASSWORD", "PATRONI_RESTAPI_PASSWORD")
# Secrets applied to a running cluster (role passwords), set again by `harness migrate`.
SECRET_KEYS = (*BOOTSTRAP_SECRETS, "CRM_APP_PASSWORD")

HEADER = """\
# gardenlab lab secrets, generated on first start. Ignored by git: never commit.
# Delete only together with the volumes (`harness down --volumes`): the data
# directories were initialised with these passwords.
# Published ports can be moved here too, e.g. GARDENLAB_RW_PORT=15000.
"""


def secrets_fingerprint(settings: Mapping[str, str]) -> str:
    """Names the set of secrets a data volume was initialised with, without revealing them."""
    joined = "\0".join(settings.get(key, "") for key in BOOTSTRAP_SECRETS)
    return hashlib.sha256(joined.encode()).hexdigest()[:16]


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines, as Compose reads them; comments and blank lines skipped."""
    if not path.exists():
        return {}
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        values[key.strip()] = value.strip().strip("'\"")
    return values


def ensure_secrets(path: Path) -> list[str]:
    """Add any missing secret to the file, keeping what is there; return the keys added."""
    existing = read_env_file(path)
    missing = [key for key in SECRET_KEYS if not existing.get(key)]
    if not missing:
        return []
    text = path.read_text() if path.exists() else HEADER
    if text and not text.endswith("\n"):
        text += "\n"
    text += "".join(f"{key}={secrets.token_urlsafe(24)}\n" for key in missing)
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text(text)
    return missing
