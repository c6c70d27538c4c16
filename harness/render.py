"""Render the lab's configuration from a timing preset into compose/rendered/.

Secrets never enter rendered files: Patroni and PgBouncer read them from the
environment Compose passes from .env. A content hash per file goes into
rendered.env so Compose recreates a service when its configuration changes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from jinja2 import Environment, PackageLoader, StrictUndefined

from harness.lab import ETCD_MEMBERS, NODES, SCOPE
from harness.presets import TimingPreset

PG_PORT = 5432
REST_PORT = 8008
ETCD_CLIENT_PORT = 2379
RW_PORT = 5000
RO_PORT = 5001
POOLER_PORT = 6432
DATA_DIR = "/var/lib/postgresql/data/pgdata"
BIN_DIR = "/usr/lib/postgresql/17/bin"

# Inside containers only: local sockets by OS identity, every network client by
# SCRAM, and only from the networks the node sits on (the stack's own).
PG_HBA = [
    "local all all peer",
    "host replication replicator samenet scram-sha-256",
    "host all all samenet scram-sha-256",
]


@dataclass(frozen=True)
class Listener:
    name: str
    port: int
    check_path: str
    balance: str
    summary: str


@dataclass(frozen=True)
class ProxyLink:
    """A link the fault proxy carries: faults on it are toxics on this proxy."""

    name: str
    port: int  # inside the proxy's container
    upstream: str
    summary: str


REPLICATION_PORT_BASE = 25430  # repl-pgN listens on 25430 + N: that node's connect_address
PROXY_LINKS = (
    ProxyLink("client-rw", 25000, f"haproxy:{RW_PORT}", "clients to HAProxy's rw port"),
    ProxyLink("client-ro", 25001, f"haproxy:{RO_PORT}", "clients to HAProxy's ro port"),
    ProxyLink("client-pooler", 26432, f"pgbouncer:{POOLER_PORT}", "clients to PgBouncer"),
    *(
        ProxyLink(
            f"repl-{node}",
            REPLICATION_PORT_BASE + i,
            f"{node}:{PG_PORT}",
            f"peers to {node}'s PostgreSQL: replication, basebackup, rewind",
        )
        for i, node in enumerate(NODES, start=1)
    ),
)


def faultproxy_config() -> list[dict[str, object]]:
    return [
        {"name": link.name, "listen": f"0.0.0.0:{link.port}", "upstream": link.upstream}
        for link in PROXY_LINKS
    ]


LISTENERS = (
    Listener("rw", RW_PORT, "/primary", "", "read-write: the leader only, found by Patroni's REST"),
    Listener("ro", RO_PORT, "/replica", "roundrobin", "read-only: round robin over replicas"),
)


def dcs_config(preset: TimingPreset) -> dict[str, Any]:
    """Patroni's dynamic configuration: bootstrapped once, then patched live by `up`."""
    return {
        **preset.dcs_settings(),
        "maximum_lag_on_failover": 1048576,
        "synchronous_mode": True,
        "synchronous_node_count": 1,
        "failsafe_mode": True,
        "check_timeline": True,
        "postgresql": {
            "use_pg_rewind": True,
            "use_slots": True,
            "parameters": {
                "wal_level": "logical",
                "hot_standby": "on",
                "max_connections": 200,
                "max_wal_senders": 10,
                "max_replication_slots": 10,
                "wal_keep_size": "256MB",
                "shared_buffers": "64MB",
                "password_encryption": "scram-sha-256",
                "shared_preload_libraries": "pg_stat_statements",
            },
        },
    }


def patroni_config(preset: TimingPreset) -> dict[str, Any]:
    """patroni.yml shared by all nodes; the node's name and addresses come from its environment."""
    return {
        "scope": SCOPE,
        "namespace": "/service/",
        "log": {"level": "INFO"},
        "restapi": {"listen": f"0.0.0.0:{REST_PORT}"},
        "etcd3": {"hosts": [f"{m}:{ETCD_CLIENT_PORT}" for m in ETCD_MEMBERS]},
        "bootstrap": {
            "dcs": dcs_config(preset),
            "initdb": [{"encoding": "UTF8"}, {"locale": "C.UTF-8"}, "data-checksums"],
        },
        "postgresql": {
            "listen": f"0.0.0.0:{PG_PORT}",
            "data_dir": DATA_DIR,
            "bin_dir": BIN_DIR,
            "pgpass": "/tmp/pgpass",
            "pg_hba": PG_HBA,
            "parameters": {"unix_socket_directories": "/var/run/postgresql"},
        },
        "tags": {"nofailover": False, "noloadbalance": False, "clonefrom": False},
    }


def _templates() -> Environment:
    return Environment(
        loader=PackageLoader("harness", "templates"),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def render_files(preset: TimingPreset) -> dict[str, str]:
    """File name to content, for everything under compose/rendered/ but the hashes."""
    env = _templates()
    header = f"# Rendered by gardenlab from preset {preset.name!r}. Do not edit.\n"
    return {
        "patroni.yml": header + yaml.safe_dump(patroni_config(preset), sort_keys=False),
        "haproxy.cfg": env.get_template("haproxy.cfg.j2").render(
            preset=preset,
            listeners=LISTENERS,
            nodes=NODES,
            pg_port=PG_PORT,
            rest_port=REST_PORT,
        ),
        "pgbouncer.ini": env.get_template("pgbouncer.ini.j2").render(
            upstream_host="haproxy", upstream_port=RW_PORT, listen_port=POOLER_PORT
        ),
        "faultproxy.json": json.dumps(faultproxy_config(), indent=2) + "\n",
    }


def config_hash_var(filename: str) -> str:
    stem = filename.split(".")[0].upper()
    return f"GARDENLAB_{stem}_CONFIG_HASH"


def write_rendered(
    preset: TimingPreset, out_dir: Path, compose_settings: Mapping[str, str]
) -> Path:
    """Write the files and rendered.env (settings, preset, hashes); return rendered.env's path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    files = render_files(preset)
    lines = [f"{key}={value}" for key, value in compose_settings.items()]
    lines.append(f"GARDENLAB_PRESET={preset.name}")
    for name, content in files.items():
        (out_dir / name).write_text(content)
        digest = hashlib.sha256(content.encode()).hexdigest()[:16]
        lines.append(f"{config_hash_var(name)}={digest}")
    env_path = out_dir / "rendered.env"
    env_path.write_text("\n".join(lines) + "\n")
    return env_path
