"""The lab on this machine: its files, its settings, and the ports it publishes on loopback."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from harness.clients.addresses import conninfo, http_url
from harness.clients.s3 import S3Client
from harness.core.errors import ConfigError
from harness.lab.secrets import read_env_file, secrets_fingerprint
from harness.lab.tls import LabTls
from harness.lab.topology import (
    ALERT_LOG,
    ALERT_LOG_PORT,
    CSV_IMPORT,
    CSV_IMPORT_PORT,
    ENDPOINTS,
    EXTRA_NODES,
    MEMBERS,
    NODES,
    S3,
    S3_PORT,
    S3_REGION,
    SCALE_PROFILE,
    SOURCE,
    SUPABASE,
)

DEFAULT_PROJECT = "gardenlab"
LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class PublishedPort:
    name: str  # what a user calls it: rw, ro, pooler, stats, or a node name for its REST API
    env_var: str  # the variable that moves it, in .env or the environment
    default: int
    profile: str | None = None  # published only when this Compose profile runs


PUBLISHED_PORTS = (
    *(
        PublishedPort(e.name, f"GARDENLAB_{e.name.upper()}_PORT", e.port)
        for e in ENDPOINTS.values()
    ),
    PublishedPort("stats", "GARDENLAB_STATS_PORT", 7000),
    *(PublishedPort(n, f"GARDENLAB_{n.upper()}_REST_PORT", 8008 + i) for i, n in enumerate(NODES)),
    *(
        PublishedPort(n, f"GARDENLAB_{n.upper()}_REST_PORT", 8011 + i, SCALE_PROFILE)
        for i, n in enumerate(EXTRA_NODES)
    ),
    PublishedPort("faultproxy", "GARDENLAB_FAULTPROXY_PORT", 8474),
    PublishedPort(CSV_IMPORT, "GARDENLAB_CSV_IMPORT_PORT", CSV_IMPORT_PORT),
    PublishedPort("proxied-rw", "GARDENLAB_PROXIED_RW_PORT", 5010),
    PublishedPort("proxied-ro", "GARDENLAB_PROXIED_RO_PORT", 5011),
    PublishedPort("proxied-pooler", "GARDENLAB_PROXIED_POOLER_PORT", 6442),
    PublishedPort("prometheus", "GARDENLAB_PROMETHEUS_PORT", 9090),
    PublishedPort("alertmanager", "GARDENLAB_ALERTMANAGER_PORT", 9093),
    PublishedPort(ALERT_LOG, "GARDENLAB_ALERT_LOG_PORT", ALERT_LOG_PORT),
    PublishedPort(S3, "GARDENLAB_S3_PORT", S3_PORT),
    PublishedPort("kong", "GARDENLAB_KONG_PORT", 8000, SUPABASE),
    PublishedPort("meta", "GARDENLAB_META_PORT", 8080, SUPABASE),
    PublishedPort("studio", "GARDENLAB_STUDIO_PORT", 3000, SUPABASE),
    PublishedPort("source", "GARDENLAB_SOURCE_PORT", 5440, SOURCE),
    PublishedPort("endpoint", "GARDENLAB_ENDPOINT_PORT", 6433, SOURCE),
)
# Login roles and the .env key of each one's password; all but postgres get it from migrate.
ROLE_SECRETS = {
    "postgres": "POSTGRES_PASSWORD",
    "crm_app": "CRM_APP_PASSWORD",
    "authenticator": "AUTHENTICATOR_PASSWORD",
    "supabase_admin": "SUPABASE_ADMIN_PASSWORD",
    "supabase_auth_admin": "SUPABASE_AUTH_ADMIN_PASSWORD",
    "supabase_storage_admin": "SUPABASE_STORAGE_ADMIN_PASSWORD",
}
# Published PostgreSQL endpoints: each client endpoint, directly and through the fault proxy.
# The migration's source and the application endpoint are published by the `source` profile.
SQL_PORTS = (*ENDPOINTS, *(f"proxied-{name}" for name in ENDPOINTS), "source", "endpoint")


def resolve_ports(settings: Mapping[str, str]) -> dict[str, int]:
    """Port per name, from settings (the environment over .env) or the defaults."""
    ports: dict[str, int] = {}
    for p in PUBLISHED_PORTS:
        raw = settings.get(p.env_var, "")
        if not raw:
            ports[p.name] = p.default
            continue
        if not raw.isdigit() or not 1 <= int(raw) <= 65535:
            raise ConfigError(f"{p.env_var}={raw!r} is not a TCP port", "use a number 1-65535")
        ports[p.name] = int(raw)
    taken: dict[int, str] = {}
    for name, port in ports.items():
        if port in taken:
            raise ConfigError(
                f"ports {taken[port]} and {name} are both set to {port}",
                "give each published port its own number",
            )
        taken[port] = name
    return ports


def shifted_ports(offset: int) -> dict[str, str]:
    """Settings that move every published port by `offset`: a second project on this machine
    (the test suite's, the benchmark's) then never collides with the dev lab."""
    return {p.env_var: str(p.default + offset) for p in PUBLISHED_PORTS}


@dataclass(frozen=True)
class Lab:
    """The project's files on disk and its settings; everything else derives from these."""

    root: Path
    settings: Mapping[str, str]  # .env values overlaid by the environment

    @classmethod
    def discover(cls, root: Path | None = None) -> Lab:
        root = root or Path(os.environ.get("GARDENLAB_ROOT", Path(__file__).resolve().parents[2]))
        settings = {**read_env_file(root / ".env"), **os.environ}
        return cls(root=root, settings=settings)

    def with_env_file(self) -> Lab:
        """The same lab after .env changed: what the file now holds fills what is unset."""
        current = {k: v for k, v in self.settings.items() if v}
        return replace(self, settings={**read_env_file(self.env_file), **current})

    @property
    def project(self) -> str:
        """Compose project name; a second project (the test suite's) never touches the first."""
        name = self.settings.get("GARDENLAB_PROJECT") or DEFAULT_PROJECT
        if not re.fullmatch(r"[a-z0-9][a-z0-9_-]*", name):
            raise ConfigError(
                f"GARDENLAB_PROJECT={name!r} is not a Compose project name",
                "use lower-case letters, digits, '-' and '_'",
            )
        return name

    @property
    def compose_dir(self) -> Path:
        return self.root / "compose"

    @property
    def compose_file(self) -> Path:
        return self.compose_dir / "docker-compose.yml"

    @property
    def env_file(self) -> Path:
        return self.root / ".env"

    @property
    def rendered_dir(self) -> Path:
        return self.compose_dir / "rendered" / self.project

    def artifacts(self, *parts: str) -> Path:
        """Where a run's reports go by default: artifacts/<parts>; the last one gets the time."""

        *folders, name = parts
        return self.root.joinpath("artifacts", *folders, f"{name}-{time.strftime('%Y%m%d-%H%M%S')}")

    def compose_settings(self) -> dict[str, str]:
        """What Compose must see as this lab resolved it: ports, rendered files, secrets' id."""
        ports = self.ports
        return {
            "GARDENLAB_RENDERED": f"./rendered/{self.project}",
            "GARDENLAB_SECRETS_ID": secrets_fingerprint(self.settings),
            "GARDENLAB_TLS": str(self.tls.directory),
            **{p.env_var: str(ports[p.name]) for p in PUBLISHED_PORTS},
        }

    @property
    def tls(self) -> LabTls:
        """The lab's CA and certificates (tls/ at the root, shared by every project)."""
        return LabTls(self.root)

    @property
    def ports(self) -> dict[str, int]:
        return resolve_ports(self.settings)

    def secret(self, key: str) -> str:
        value = self.settings.get(key, "")
        if not value:
            raise ConfigError(
                f"{key} is not set in {self.env_file}",
                "run `make dev-up` (or `harness up`) once: it generates the lab's secrets",
            )
        return value

    def dsn(
        self,
        endpoint: str,
        dbname: str = "postgres",
        connect_timeout: int = 3,
        role: str = "postgres",
        *,
        keepalives: bool = False,
    ) -> str:
        """libpq connection string for a published endpoint; proxied-* pass the fault proxy."""
        if endpoint not in SQL_PORTS:
            raise ConfigError(f"unknown endpoint {endpoint!r}", f"choose {', '.join(SQL_PORTS)}")
        return conninfo(
            LOOPBACK,
            self.ports[endpoint],
            role,
            self.secret(ROLE_SECRETS[role]),
            dbname,
            connect_timeout=connect_timeout,
            keepalives=keepalives,
            sslrootcert=str(self.tls.ca_file),
        )

    def url(self, port_name: str, path: str = "") -> str:
        """An HTTP service the lab publishes: stats, faultproxy, meta... (REST: rest_url)"""
        return http_url(LOOPBACK, self.ports[port_name], path)

    def rest_url(self, node: str, path: str = "") -> str:
        """A node's Patroni REST API: HTTPS, its certificate the lab CA's (`rest_ca`)."""
        return http_url(LOOPBACK, self.ports[node], path, tls=True)

    @property
    def rest_ca(self) -> str:
        return str(self.tls.ca_file)

    def s3(self) -> S3Client:
        """The lab's S3 server on its published port, with the repository's credentials."""
        return S3Client(
            http_url(LOOPBACK, self.ports[S3], tls=True),
            S3_REGION,
            self.secret("S3_ACCESS_KEY"),
            self.secret("S3_SECRET_KEY"),
            str(self.tls.ca_file),
        )

    def rest_urls(self) -> list[str]:
        return [self.rest_url(node) for node in NODES]

    def member_urls(self) -> dict[str, str]:
        """Each member's own REST API, pg4's and pg5's too (published while they run)."""
        return {node: self.rest_url(node) for node in MEMBERS}
