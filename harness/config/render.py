"""Render the lab's configuration from a timing preset into compose/rendered/.

Secrets never enter rendered files: Patroni and PgBouncer read them from the
environment Compose passes from .env. A content hash per file goes into
rendered.env so Compose recreates a service when its configuration changes.
"""

from __future__ import annotations

import hashlib
import json
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from jinja2 import Environment, PackageLoader, StrictUndefined

from harness.config.monitoring import (
    LAB_WEBHOOK,
    RULES_FILE,
    alert_rules,
    alertmanager_config,
    prometheus_config,
)
from harness.config.sizing import LAB_NODE, NodeSize
from harness.lab.presets import TimingPreset
from harness.lab.tls import LAB_PATHS, TlsPaths
from harness.lab.topology import (
    ENDPOINTS,
    ETCD_CLIENT_PORT,
    ETCD_MEMBERS,
    FAULTPROXY,
    HAPROXY_METRICS_PORT,
    MEMBERS,
    PG_PORT,
    PGBOUNCER_PORT,
    PROXY_LINKS,
    REST_PORT,
    S3,
    S3_BUCKET,
    S3_LINK,
    S3_REGION,
    SCOPE,
)

DATA_DIR = "/var/lib/postgresql/data/pgdata"
BIN_DIR = "/usr/lib/postgresql/17/bin"

# Inside containers only: local sockets by OS identity, every network client by
# SCRAM, and only from the networks the node sits on (the stack's own).
# pgBackRest: one stanza named after the cluster, its repository in an S3 bucket (the lab's
# S3 server; production's object storage), under REPO_PATH.
STANZA = SCOPE
REPO_PATH = "/var/lib/pgbackrest"  # a repository host's directory (the bundle's `backup` role)
S3_REPO_PATH = f"/{SCOPE}"  # the repository's prefix inside the bucket
# The repository is encrypted wherever it lives: lab volume, servers' repository host. The
# passphrase is a secret, so never here: the lab passes it as PGBACKREST_REPO1_CIPHER_PASS
# (pgBackRest's own variable, from .env), servers get CIPHER_PASS_TEMPLATE from Ansible.
REPO_CIPHER = (("repo1-cipher-type", "aes-256-cbc"),)
CIPHER_PASS_ENV = "PGBACKREST_REPO1_CIPHER_PASS"
# The S3 credentials are secrets too: the lab's nodes get pgBackRest's variables from .env's
# S3_ACCESS_KEY and S3_SECRET_KEY, servers a root-only conf.d file filled by Ansible.
S3_KEY_ENV = ("PGBACKREST_REPO1_S3_KEY", "PGBACKREST_REPO1_S3_KEY_SECRET")


@dataclass(frozen=True)
class S3Repository:
    """Where the S3 repository is: the lab's S3 server or the inventory's object storage."""

    endpoint: str  # the host name the bucket is addressed by (and its certificate names)
    bucket: str
    region: str
    ca_file: str | None = None  # None: the system's CAs
    connect: tuple[str, int] | None = None  # (host, port) to connect to instead of the endpoint

    def options(self) -> tuple[tuple[str, str], ...]:
        """pgBackRest's repo1-* options: path-style URLs, TLS verified, and the cipher."""
        options = [
            ("repo1-type", "s3"),
            ("repo1-path", S3_REPO_PATH),
            ("repo1-s3-endpoint", self.endpoint),
            ("repo1-s3-bucket", self.bucket),
            ("repo1-s3-region", self.region),
            ("repo1-s3-uri-style", "path"),
            ("repo1-storage-verify-tls", "y"),
        ]
        if self.ca_file:
            options.append(("repo1-storage-ca-file", self.ca_file))
        if self.connect:
            options += [("repo1-storage-host", self.connect[0])]
            options += [("repo1-storage-port", str(self.connect[1]))]
        return (*options, *REPO_CIPHER)


# The lab's bucket on its S3 server, reached through the fault proxy's link (the certificate
# names both `s3` and the proxy), verified against the lab CA.
LAB_S3 = S3Repository(
    S3,
    S3_BUCKET,
    S3_REGION,
    LAB_PATHS.ca_file,
    (FAULTPROXY, S3_LINK.port),
)
# Only the leader archives (archive_mode on), so archiving follows the leader through a
# failover; archive_timeout bounds how old the newest archived WAL can be.
ARCHIVE_PARAMETERS = {
    "archive_mode": "on",
    "archive_command": f"pgbackrest --stanza={STANZA} archive-push %p",
    "archive_timeout": 60,
}
RESTORE_COMMAND = f'pgbackrest --stanza={STANZA} archive-get %f "%p"'
# Settings `up` also brings a running cluster to (bootstrap applies the rest only once):
# archiving, and wal2json allowed as an output plugin, which Supabase Realtime decodes with
# (PostgreSQL 17.11 admits only the libraries listed here).
# Where the time goes, with PostgreSQL's own tools: pg_stat_statements counts every statement
# (those inside functions too, such as app.search_leads' query); auto_explain logs the plan of
# any statement slower than the SLO with its row counts and buffers (per-node timing left off:
# it would tax every statement).
OBSERVE_PARAMETERS = {
    "shared_preload_libraries": "pg_stat_statements,auto_explain",
    "pg_stat_statements.track": "all",
    "auto_explain.log_min_duration": "100ms",
    "auto_explain.log_analyze": "on",
    "auto_explain.log_buffers": "on",
    "auto_explain.log_timing": "off",
    "auto_explain.log_nested_statements": "on",
}
LIVE_PARAMETERS = {
    **ARCHIVE_PARAMETERS,
    "output_plugin_libraries": "pgoutput, test_decoding, wal2json",
    **OBSERVE_PARAMETERS,
}
MAX_CONNECTIONS = 200
# Of the settings the lab patches live, those PostgreSQL reads only when it starts.
RESTART_PARAMETERS = frozenset(
    {"archive_mode", "shared_preload_libraries", "shared_buffers", "max_worker_processes"}
)


def pg_hba(network: str, tls: bool = True) -> list[str]:
    """Local sockets by OS identity; every network client by SCRAM, from `network` only, and
    with TLS a client on TCP must encrypt: plaintext is refused before authentication
    (`all` does not match replication, so it has its own line)."""
    host = "hostssl" if tls else "host"
    rules = [
        "local all all peer",
        f"{host} replication replicator {network} scram-sha-256",
        f"{host} all all {network} scram-sha-256",
    ]
    if tls:
        rules += [
            f"hostnossl {database} all {anywhere} reject"
            for database in ("all", "replication")
            for anywhere in ("0.0.0.0/0", "::/0")
        ]
    return rules


# TLS 1.3 only; PostgreSQL rereads the files on reload, so a rotation needs no restart.
TLS_MIN = "TLSv1.3"


def ssl_parameters(tls: TlsPaths | None) -> dict[str, str]:
    if tls is None:
        return {}
    return {
        "ssl": "on",
        "ssl_cert_file": tls.cert_file,
        "ssl_key_file": tls.key_file,
        "ssl_min_protocol_version": TLS_MIN,
    }


def patroni_tls_environment(tls: TlsPaths | None) -> dict[str, str]:
    """How Patroni's own connections to peers (replication, basebackup, pg_rewind) verify the
    server: environment beside the users' names and passwords (PATRONI_*), in Compose's file
    for the lab and patroni.env on a server. A file's `authentication` section would replace
    the environment's users rather than merge with them."""
    if tls is None:
        return {}
    return {
        f"PATRONI_{user}_{key}": value
        for user in ("SUPERUSER", "REPLICATION")
        for key, value in (("SSLMODE", "verify-full"), ("SSLROOTCERT", tls.ca_file))
    }


def restapi_tls(tls: TlsPaths | None) -> dict[str, str]:
    """Patroni's REST API on HTTPS with the node's certificate; `cafile` is also what Patroni
    verifies its peers' REST APIs with (failsafe, switchover). A SIGHUP rereads the
    certificate, so a rotation needs no restart. Clients need no certificate of their own."""
    if tls is None:
        return {}
    return {"certfile": tls.cert_file, "keyfile": tls.key_file, "cafile": tls.ca_file}


def etcd_scheme(tls: TlsPaths | None) -> str:
    return "http" if tls is None else "https"


def etcd_tls_settings(tls: TlsPaths | None) -> dict[str, str]:
    """etcd's TLS for clients and peers (its ETCD_* environment): each side presents a
    certificate of the CA, TLS 1.3 only (etcd 3.5.16's --tls-min-version)."""
    if tls is None:
        return {}
    return {
        "ETCD_CERT_FILE": tls.cert_file,
        "ETCD_KEY_FILE": tls.key_file,
        "ETCD_TRUSTED_CA_FILE": tls.ca_file,
        "ETCD_CLIENT_CERT_AUTH": "true",
        "ETCD_PEER_CERT_FILE": tls.cert_file,
        "ETCD_PEER_KEY_FILE": tls.key_file,
        "ETCD_PEER_TRUSTED_CA_FILE": tls.ca_file,
        "ETCD_PEER_CLIENT_CERT_AUTH": "true",
        "ETCD_TLS_MIN_VERSION": "TLS1.3",
    }


def etcd3_tls(tls: TlsPaths | None) -> dict[str, str]:
    """Patroni's etcd3 section: HTTPS with the server's own certificate as the client's."""
    if tls is None:
        return {}
    return {"protocol": "https", "cacert": tls.ca_file, "cert": tls.cert_file, "key": tls.key_file}


@dataclass(frozen=True)
class Site:
    """Where a rendering goes: the lab's containers, or an inventory's servers. Everything
    not named here is the same in both, which is what lets the lab vouch for production."""

    etcd_hosts: tuple[str, ...]  # host:port of each member
    network: str  # who may connect: "samenet" in the lab, the private CIDR on servers
    servers: tuple[tuple[str, str], ...]  # HAProxy's backends: (member name, address)
    docker_dns: bool  # HAProxy resolves the backends with Docker's resolver
    pgbouncer_upstream: str  # the host of HAProxy's rw port
    repository: tuple[tuple[str, str], ...]  # pgBackRest's repo1-* options
    resources: tuple[tuple[str, str], ...] = ()  # PostgreSQL settings given for the machines
    size: NodeSize = LAB_NODE  # what each database node has: the settings derived from it
    tls: TlsPaths | None = LAB_PATHS  # each server's CA, certificate and key; None: no TLS

    def parameters(self) -> dict[str, str]:
        """Memory and parallelism from the node's size; the settings given explicitly win."""
        given = dict(self.resources)
        connections = int(given.get("max_connections", MAX_CONNECTIONS))
        return {**self.size.parameters(connections), **given}


COMPOSE_SITE = Site(
    etcd_hosts=tuple(f"{m}:{ETCD_CLIENT_PORT}" for m in ETCD_MEMBERS),
    network="samenet",
    # pg4 and pg5 too: absent, their names do not resolve and HAProxy holds them in
    # maintenance (init-addr none) until `harness scale` starts them and Docker's DNS answers.
    servers=tuple((node, node) for node in MEMBERS),
    docker_dns=True,
    pgbouncer_upstream="haproxy",
    repository=LAB_S3.options(),
)


@dataclass(frozen=True)
class Listener:
    name: str
    port: int
    check_path: str
    balance: str
    summary: str


def faultproxy_config() -> list[dict[str, object]]:
    return [
        {"name": link.name, "listen": f"0.0.0.0:{link.port}", "upstream": link.upstream}
        for link in PROXY_LINKS
    ]


LISTENERS = (
    Listener("rw", ENDPOINTS["rw"].port, "/primary", "", ENDPOINTS["rw"].summary),
    Listener("ro", ENDPOINTS["ro"].port, "/replica", "roundrobin", ENDPOINTS["ro"].summary),
)


def dcs_config(preset: TimingPreset, site: Site = COMPOSE_SITE) -> dict[str, Any]:
    """Patroni's dynamic configuration: bootstrapped once, then patched live by `up`."""
    config: dict[str, Any] = {
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
                "max_connections": MAX_CONNECTIONS,
                "max_wal_senders": 10,
                "max_replication_slots": 10,
                "wal_keep_size": "256MB",
                "password_encryption": "scram-sha-256",
                **LIVE_PARAMETERS,
            },
        },
    }
    config["postgresql"]["parameters"].update(site.parameters())
    return config


def lab_live_parameters() -> dict[str, object]:
    """What `up` brings a running lab to: LIVE_PARAMETERS and the sizing of its nodes (the
    memory settings wait for a restart, which `up` then does, replicas first)."""
    return {**LIVE_PARAMETERS, **COMPOSE_SITE.parameters()}


@dataclass(frozen=True)
class RestoreTarget:
    """Bootstrap the cluster from the backup repository instead of initdb.

    pgBackRest only copies the backup's files (`--type=none`); recovery is Patroni's, from
    `recovery_conf`, so no recovery target lingers in postgresql.auto.conf for the replicas
    cloned later. `time` None replays the archive to its end; otherwise recovery stops at
    that time, transactions committed at it included, and the node is promoted.
    """

    time: str | None = None  # a timestamp with time zone, as PostgreSQL prints it
    backup_set: str | None = None  # the backup to start from: the newest one before `time`

    def command(self) -> str:
        """What Patroni runs (split with shlex) in place of initdb."""
        restore = ["pgbackrest", f"--stanza={STANZA}", "--delta", "--type=none"]
        if self.backup_set:
            restore.append(f"--set={self.backup_set}")
        script = f"mkdir -p -m 700 {DATA_DIR} && exec {shlex.join([*restore, 'restore'])}"
        return shlex.join(["sh", "-c", script])

    def recovery_conf(self) -> dict[str, str]:
        conf = {"restore_command": RESTORE_COMMAND}
        if self.time:
            conf |= {"recovery_target_time": self.time, "recovery_target_action": "promote"}
        return conf


def bootstrap_config(
    preset: TimingPreset, restore: RestoreTarget | None, site: Site = COMPOSE_SITE
) -> dict[str, Any]:
    bootstrap: dict[str, Any] = {
        "dcs": dcs_config(preset, site),
        "initdb": [{"encoding": "UTF8"}, {"locale": "C.UTF-8"}, "data-checksums"],
    }
    if restore is not None:
        bootstrap["method"] = "pgbackrest"
        bootstrap["pgbackrest"] = {
            "command": restore.command(),
            "no_params": True,
            "recovery_conf": restore.recovery_conf(),
        }
    return bootstrap


def pgbackrest_conf(site: Site = COMPOSE_SITE) -> str:
    repository = "\n".join(f"{key}={value}" for key, value in site.repository)
    return f"""\
[global]
{repository}
repo1-retention-full=2
compress-type=lz4
process-max=2
start-fast=y
archive-timeout=60
log-level-console=warn
log-level-stderr=warn
log-level-file=off
lock-path=/tmp/pgbackrest

[{STANZA}]
pg1-path={DATA_DIR}
pg1-socket-path=/var/run/postgresql
pg1-user=postgres
"""


def patroni_config(
    preset: TimingPreset, restore: RestoreTarget | None = None, site: Site = COMPOSE_SITE
) -> dict[str, Any]:
    """patroni.yml shared by all nodes; the node's name and addresses come from its environment
    in the lab, and are added per server for production (harness.config.bundle)."""
    return {
        "scope": SCOPE,
        "namespace": "/service/",
        "log": {"level": "INFO"},
        "restapi": {"listen": f"0.0.0.0:{REST_PORT}", **restapi_tls(site.tls)},
        "etcd3": {"hosts": list(site.etcd_hosts), **etcd3_tls(site.tls)},
        "bootstrap": bootstrap_config(preset, restore, site),
        "postgresql": {
            "listen": f"0.0.0.0:{PG_PORT}",
            "data_dir": DATA_DIR,
            "bin_dir": BIN_DIR,
            "pgpass": "/tmp/pgpass",
            # Patroni talks to its own PostgreSQL over the socket (peer): on a server, loopback
            # is outside the cluster network pg_hba admits (found by the rehearsal).
            "use_unix_socket": True,
            "pg_hba": pg_hba(site.network, site.tls is not None),
            "parameters": {
                "unix_socket_directories": "/var/run/postgresql",
                **ssl_parameters(site.tls),
            },
            # A replica cloned (a member joining, a reinit) asks the leader for an immediate
            # checkpoint: pg_basebackup's default spread one waited out a running timed
            # checkpoint, 61 s before a fourth member could stream.
            "basebackup": {"checkpoint": "fast"},
        },
        "tags": {"nofailover": False, "noloadbalance": False, "clonefrom": False},
    }


def _templates() -> Environment:
    return Environment(
        loader=PackageLoader("harness.config", "templates"),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def haproxy_cfg(preset: TimingPreset, site: Site = COMPOSE_SITE) -> str:
    return (
        _templates()
        .get_template("haproxy.cfg.j2")
        .render(
            preset=preset,
            listeners=LISTENERS,
            servers=site.servers,
            docker_dns=site.docker_dns,
            pg_port=PG_PORT,
            rest_port=REST_PORT,
            metrics_port=HAPROXY_METRICS_PORT,
            tls=site.tls,
        )
    )


POOLER_PURPOSE = (
    "Every database goes to HAProxy's read-write port, so a failover is HAProxy's",
    "business: PgBouncer only pools, and queries wait instead of failing.",
)


def pgbouncer_ini(site: Site = COMPOSE_SITE) -> str:
    return (
        _templates()
        .get_template("pgbouncer.ini.j2")
        .render(
            purpose=POOLER_PURPOSE,
            database="*",
            upstream_host=site.pgbouncer_upstream,
            upstream_port=ENDPOINTS["rw"].port,
            listen_port=ENDPOINTS["pooler"].port,
            tls=site.tls,
        )
    )


def endpoint_ini(upstream_host: str, upstream_port: int) -> str:
    """The application endpoint (profile `source`): the pooler's settings, pointed at the
    migration's source or at the cluster's rw path; `harness migration` rewrites it."""
    return (
        _templates()
        .get_template("pgbouncer.ini.j2")
        .render(
            purpose=(
                "The application endpoint: the CRM's one connection string during the move.",
                f"Points at {upstream_host}:{upstream_port}; `harness migration` repoints it",
                "(rewrite, then RELOAD under PAUSE), so clients never change theirs.",
                "The database is named, not `*`, so RELOAD re-points exactly the entry the",
                "application uses (SHOW DATABASES shows where it goes).",
            ),
            database="postgres",
            upstream_host=upstream_host,
            upstream_port=upstream_port,
            listen_port=PGBOUNCER_PORT,
            tls=LAB_PATHS,
        )
    )


def patroni_yml(config: dict[str, Any], preset: TimingPreset) -> str:
    header = f"# Rendered by gardenlab from preset {preset.name!r}. Do not edit.\n"
    return header + yaml.safe_dump(config, sort_keys=False)


def render_files(preset: TimingPreset, restore: RestoreTarget | None = None) -> dict[str, str]:
    """File name to content, for everything under compose/rendered/ but the hashes."""
    return {
        "patroni.yml": patroni_yml(patroni_config(preset, restore), preset),
        "pgbackrest.conf": pgbackrest_conf(),
        "haproxy.cfg": haproxy_cfg(preset),
        "pgbouncer.ini": pgbouncer_ini(),
        "faultproxy.json": json.dumps(faultproxy_config(), indent=2) + "\n",
        "prometheus.yml": prometheus_config(),
        RULES_FILE: alert_rules(),
        "alertmanager.yml": alertmanager_config(webhook=LAB_WEBHOOK),
    }


# Where metrics the harness writes itself (the backup's outcome) wait for node_exporter.
TEXTFILE_DIR = "textfile"


def config_hash_var(filename: str) -> str:
    stem = filename.split(".")[0].upper()
    return f"GARDENLAB_{stem}_CONFIG_HASH"


def write_rendered(
    preset: TimingPreset,
    out_dir: Path,
    compose_settings: Mapping[str, str],
    restore: RestoreTarget | None = None,
) -> Path:
    """Write the files and rendered.env (settings, preset, hashes); return rendered.env's path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / TEXTFILE_DIR).mkdir(exist_ok=True)
    files = render_files(preset, restore)
    lines = [f"{key}={value}" for key, value in compose_settings.items()]
    lines.append(f"GARDENLAB_PRESET={preset.name}")
    for name, content in files.items():
        (out_dir / name).write_text(content)
        digest = hashlib.sha256(content.encode()).hexdigest()[:16]
        lines.append(f"{config_hash_var(name)}={digest}")
    env_path = out_dir / "rendered.env"
    env_path.write_text("\n".join(lines) + "\n")
    return env_path
