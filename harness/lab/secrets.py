"""The lab's secrets: generated once into the ignored .env at the root, never committed."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Mapping
from pathlib import Path

# The secrets a cluster is initialised with; data volumes remember their fingerprint.
BOOTSTRAP_SECRETS = ("POSTGRES_PASSWORD", "REPLICATION_PASSWORD", "PATRONI_RESTAPI_PASSWORD")
# Secrets applied to a running cluster (role passwords), set again by `harness migrate`,
# and those of the Supabase services (JWT secret, Realtime's key base, Studio's login).
SECRET_KEYS = (
    *BOOTSTRAP_SECRETS,
    "CRM_APP_PASSWORD",
    "PGBACKREST_CIPHER_PASS",  # the backup repository's encryption passphrase
    "S3_ACCESS_KEY",  # the S3 repository's credentials: the lab's S3 server accepts these only
    "S3_SECRET_KEY",
    "AUTHENTICATOR_PASSWORD",
    "SUPABASE_ADMIN_PASSWORD",
    "SUPABASE_AUTH_ADMIN_PASSWORD",
    "SUPABASE_STORAGE_ADMIN_PASSWORD",
    "JWT_SECRET",
    "SECRET_KEY_BASE",
    "DASHBOARD_PASSWORD",
)
# The API keys Supabase clients send: HS256 JWTs for a role, signed with JWT_SECRET.
API_KEYS = {"ANON_KEY": "anon", "SERVICE_ROLE_KEY": "service_role"}
API_KEY_LIFETIME = 10 * 365 * 86400  # s; the lab's keys outlive any lab


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _signature(signed: str, secret: str) -> str:
    return _b64(hmac.new(secret.encode(), signed.encode(), hashlib.sha256).digest())


def sign_jwt(claims: Mapping[str, object], secret: str) -> str:
    """A compact HS256 JWT, as Supabase's API keys are."""
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    body = _b64(json.dumps(dict(claims), separators=(",", ":")).encode())
    return f"{header}.{body}.{_signature(f'{header}.{body}', secret)}"


def api_key_valid(token: str, secret: str) -> bool:
    """Whether the token was signed with this secret."""
    signed, _, signature = token.rpartition(".")
    return bool(signed) and hmac.compare_digest(_signature(signed, secret), signature)


def api_key(role: str, secret: str, issued_at: int) -> str:
    claims = {
        "role": role,
        "iss": "supabase",
        "iat": issued_at,
        "exp": issued_at + API_KEY_LIFETIME,
    }
    return sign_jwt(claims, secret)


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
    """Add any missing secret to the file, keeping what is there; return the keys added.

    API keys are signed with the JWT secret the file ends up with; a key made with
    another secret is made again."""
    existing = read_env_file(path)
    added = {key: secrets.token_urlsafe(32) for key in SECRET_KEYS if not existing.get(key)}
    jwt_secret = existing.get("JWT_SECRET") or added["JWT_SECRET"]
    now = int(time.time())
    for key, role in API_KEYS.items():
        if not existing.get(key) or not api_key_valid(existing[key], jwt_secret):
            added[key] = api_key(role, jwt_secret, now)
    if not added:
        return []
    text = path.read_text() if path.exists() else HEADER
    if text and not text.endswith("\n"):
        text += "\n"
    text = "".join(
        line + "\n" for line in text.splitlines() if line.partition("=")[0].strip() not in added
    )
    text += "".join(f"{key}={value}\n" for key, value in added.items())
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text(text)
    return list(added)
