"""What the move carries and where: the rename map, the carried tables, the names of the
replication objects, and the addresses of both sides and of the application endpoint.

Design: replicate first, rename at the cutover. Native logical replication matches tables
by schema and name, so during the window the cluster holds its clean tables under the
source's legacy names (its clean schema renamed back, not a second schema) and the cutover
renames them to the clean names while writes are paused. Tables the clean schema does not
have are carried as the source defines them (pg_dump's DDL of exactly those tables).
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.clients.addresses import conninfo
from harness.lab.project import Lab
from harness.lab.tls import LAB_PATHS
from harness.lab.topology import ENDPOINTS, PG_PORT, SOURCE_SERVICE

# Legacy name on the source -> the clean schema's name on the cluster.
RENAMES = {"leads_ins_info": "leads", "leads_contact_info": "clients"}
APP_SCHEMAS = ("public",)  # every table of these is carried
# Supabase's own tables the app's data depends on (a foreign key to auth.users), carried too.
PLATFORM_TABLES = ("auth.users",)
NAME = "gardenlab_migration"  # publication, subscription and slot
REVERSE = "gardenlab_rollback"  # the same, cluster -> source, for the rollback window
MARKS = f"{NAME}.marks"  # a row written under PAUSE: applied on the cluster = caught up
LAG_THRESHOLD = 16 * 1024 * 1024  # bytes; cutover refuses above it
APPLICATION = "gardenlab-migration"


def clean_name(table: str) -> str:
    """The cluster's name for a carried table: `public.leads_ins_info` -> `public.leads`."""
    schema, _, name = table.rpartition(".")
    return f"{schema}.{RENAMES.get(name, name)}"


def quoted(table: str) -> str:
    schema, _, name = table.rpartition(".")
    return f'"{schema}"."{name}"'


@dataclass(frozen=True)
class Move:
    """The two databases and the endpoint, as the harness and the cluster reach them."""

    source_dsn: str  # the harness's connection to the source
    source_conninfo: str  # the subscription's: how the cluster's leader reaches the source
    cluster_conninfo: str  # the reverse subscription's: how the source reaches the rw path
    cluster_dsn: str  # the cluster's rw path
    endpoint_admin_dsn: str  # PgBouncer's admin console of the application endpoint
    cluster_upstream: tuple[str, int]  # the endpoint's target after the cutover
    source_upstream: tuple[str, int]  # ...before it, and after a rollback

    @classmethod
    def of_lab(cls, lab: Lab, source_dsn: str | None = None) -> Move:
        password = lab.secret("POSTGRES_PASSWORD")
        rw = ENDPOINTS["rw"]  # HAProxy's rw port inside the network: the leader, wherever it is
        return cls(
            source_dsn=source_dsn or lab.dsn("source"),
            source_conninfo=conninfo(
                SOURCE_SERVICE,
                PG_PORT,
                "postgres",
                password,
                application_name=APPLICATION,
                sslrootcert=LAB_PATHS.ca_file,
            ),
            cluster_conninfo=conninfo(
                rw.service,
                rw.port,
                "postgres",
                password,
                application_name=APPLICATION,
                sslrootcert=LAB_PATHS.ca_file,
            ),
            cluster_dsn=lab.dsn("rw"),
            endpoint_admin_dsn=lab.dsn("endpoint", dbname="pgbouncer"),
            cluster_upstream=(rw.service, rw.port),
            source_upstream=(SOURCE_SERVICE, PG_PORT),
        )
