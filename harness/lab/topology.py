"""The services the lab runs and how they reach each other: one table for every part that
needs a service name, a port inside the Compose network, or a fault-proxy link."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

SCOPE = "gardenlab"  # Patroni's cluster name
NODES = ("pg1", "pg2", "pg3")  # service names, which are also Patroni member names
# Members `harness scale` adds and removes (Compose profile SCALE_PROFILE), in that order: the
# same image and configuration as the core nodes, each with its own volume and proxy link.
EXTRA_NODES = ("pg4", "pg5")
MEMBERS = (*NODES, *EXTRA_NODES)  # every member the lab can run, core nodes first
SCALE_PROFILE = "scale"


def postgres_exporter(node: str) -> str:
    """A node's postgres_exporter service (pg1-exporter): pg4's and pg5's come and go with them."""
    return f"{node}-exporter"


ETCD_MEMBERS = ("etcd1", "etcd2", "etcd3")
FAULTPROXY = "faultproxy"
# pgBackRest's repository lives in an S3 bucket, as production's does: the lab's S3-API server
# (s3rver) keeps its objects as files in the volume BACKUP_VOLUME. Nodes reach it through the
# fault proxy's link S3_LINK, so the object store can be slowed or cut like any other link.
S3 = "s3"
S3_PORT = 9000  # inside the network (HTTPS)
S3_BUCKET = "gardenlab-backups"  # made by `up` when it is not there
S3_REGION = "fsn1"  # a name in the style of the object storage production uses
BACKUP_VOLUME = "backups"  # the S3 server's storage (Compose's name)
CSV_IMPORT = "csv-import"  # the CRM's CSV import service (the application's, not the cluster's)
CSV_IMPORT_PORT = 8090
SUPABASE = "supabase"  # the Compose profile of the Supabase services
SOURCE = "source"  # the Compose profile of the migration source and the application endpoint
SOURCE_SERVICE = "source"  # the stand-in for the hosted Supabase database
APP_ENDPOINT = "endpoint"  # the application's PgBouncer: the source, then the cluster
PGBOUNCER_PORT = 6432  # PgBouncer's port inside its container (the pooler's and the endpoint's)

# Ports inside the Compose network (and on a server).
PG_PORT = 5432
REST_PORT = 8008
ETCD_CLIENT_PORT = 2379
ETCD_PEER_PORT = 2380
# etcd's /metrics and /health alone, on plain HTTP: the client port requires a certificate of
# the CA, which admits to the whole keyspace (no RBAC), more than a scraper should hold.
ETCD_METRICS_PORT = 2381

EndpointName = Literal["rw", "ro", "pooler"]
Via = Literal["haproxy", "pgbouncer"]
HAPROXY: Via = "haproxy"
PGBOUNCER: Via = "pgbouncer"


@dataclass(frozen=True)
class Endpoint:
    """A client endpoint: where it lives in the network, and the proxy link in front of it."""

    name: EndpointName
    service: Via  # the service that answers it
    port: int  # inside the network, and the default published port on the host
    link: str  # the fault proxy's link carrying the proxied client port
    link_port: int  # that link's port inside the proxy's container
    primary: bool | None  # True: reaches the leader; False: a replica; None: either
    summary: str


ENDPOINTS: dict[EndpointName, Endpoint] = {
    e.name: e
    for e in (
        Endpoint(
            "rw",
            HAPROXY,
            5000,
            "client-rw",
            25000,
            True,
            "read-write: the leader only, found by Patroni's REST",
        ),
        Endpoint(
            "ro", HAPROXY, 5001, "client-ro", 25001, False, "read-only: round robin over replicas"
        ),
        Endpoint(
            "pooler",
            PGBOUNCER,
            6432,
            "client-pooler",
            26432,
            True,
            "PgBouncer, transaction pooling in front of the rw path",
        ),
    )
}
# The primary path a load or a workload takes, by the service it goes through.
PRIMARY_PATHS: dict[Via, EndpointName] = {"haproxy": "rw", "pgbouncer": "pooler"}


@dataclass(frozen=True)
class ProxyLink:
    """A link the fault proxy carries: faults on it are toxics on this proxy."""

    name: str
    port: int  # inside the proxy's container
    upstream: str
    summary: str


REPLICATION_PORT_BASE = 25430  # repl-pgN listens on 25430 + N: that node's connect_address
# The application's own services reach the rw endpoint through a link of their own, so a lost
# connection (reset, hang, link down) can be staged for one service and no other client.
APP_LINKS = {
    CSV_IMPORT: ProxyLink(
        "import-rw",
        25090,
        f"{HAPROXY}:{ENDPOINTS['rw'].port}",
        "the CSV import service to HAProxy rw",
    ),
}
S3_LINK = ProxyLink("repo-s3", 25900, f"{S3}:{S3_PORT}", "pgBackRest to the S3 repository")
PROXY_LINKS = (
    *(
        ProxyLink(e.link, e.link_port, f"{e.service}:{e.port}", f"clients to {e.service} {e.name}")
        for e in ENDPOINTS.values()
    ),
    *(
        ProxyLink(
            f"repl-{node}",
            REPLICATION_PORT_BASE + i,
            f"{node}:{PG_PORT}",
            f"peers to {node}'s PostgreSQL: replication, basebackup, rewind",
        )
        for i, node in enumerate(MEMBERS, start=1)
    ),
    *APP_LINKS.values(),
    S3_LINK,
)

# Monitoring: Prometheus and Alertmanager, and the exporters Prometheus scrapes (ports inside
# the network and on a server). Patroni and etcd serve /metrics on their own ports; HAProxy
# serves its built-in exporter on a port of its own.
PROMETHEUS = "prometheus"
ALERTMANAGER = "alertmanager"
PROMETHEUS_PORT = 9090
ALERTMANAGER_PORT = 9093
# Alertmanager's webhook receiver (alertlog/): every firing and resolved notification.
ALERT_LOG = "alert-log"
ALERT_LOG_PORT = 9095
POSTGRES_EXPORTER_PORT = 9187
PGBOUNCER_EXPORTER_PORT = 9127
NODE_EXPORTER_PORT = 9100
PGBACKREST_EXPORTER_PORT = 9854
HAPROXY_METRICS_PORT = 8405

# TLS: the services that present a certificate, and the names clients reach each by besides
# its own (every certificate also names localhost and 127.0.0.1, for the published ports).
# HAProxy passes TLS through, so a node's certificate must also answer to `haproxy`; peers
# and the proxied client ports reach nodes and the pooler through the fault proxy.
TLS_NAMES: dict[str, tuple[str, ...]] = {
    **{node: (node, "haproxy", FAULTPROXY) for node in MEMBERS},
    **{member: (member,) for member in ETCD_MEMBERS},  # clients' and peers' URLs name them
    "pgbouncer": ("pgbouncer", FAULTPROXY),
    S3: (S3, FAULTPROXY),  # pgBackRest connects through the fault proxy, asking for `s3`
    SOURCE_SERVICE: (SOURCE_SERVICE,),
    APP_ENDPOINT: (APP_ENDPOINT,),
}
