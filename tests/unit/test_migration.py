"""The move's pieces that need no database: names, the map, DDL, sizes, the CLI's refusals."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from harness import cli
from harness.cli.app import App
from harness.config.render import endpoint_ini, pgbouncer_ini
from harness.core.errors import ConfigError, HarnessError
from harness.core.progress import Say
from harness.core.units import format_bytes, parse_size
from harness.lab.project import Lab
from harness.migration.endpoint import Endpoint
from harness.migration.plan import RENAMES, Move, clean_name, quoted
from harness.migration.sync import runnable_ddl
from harness.migration.verify import digest_sql
from harness.provision.source import endpoint_file, endpoint_upstream, write_endpoint
from harness.stack.lifecycle import Stack


def test_the_rename_map_carries_legacy_names_to_the_clean_ones() -> None:
    assert clean_name("public.leads_ins_info") == "public.leads"
    assert clean_name("public.leads_contact_info") == "public.clients"
    assert clean_name("public.bookings") == "public.bookings"
    assert clean_name("auth.users") == "auth.users"
    assert set(RENAMES.values()) == {"leads", "clients"}
    assert quoted("public.leads") == '"public"."leads"'


def test_pg_dump_meta_commands_are_dropped_from_the_ddl() -> None:
    dump = "\\restrict abc\nCREATE TABLE public.t (id int);\n\\unrestrict abc\n"
    assert runnable_ddl(dump) == "CREATE TABLE public.t (id int);"


def test_checksums_hash_the_same_columns_in_the_same_order_on_both_sides() -> None:
    query = digest_sql("public.leads", ["agency_id", "id"], "where id <= 10")
    assert 'row("agency_id", "id")' in query and '"public"."leads" where id <= 10' in query
    grouped = digest_sql("public.leads", ["id"], "", "id / 1000")
    assert grouped.startswith("select id / 1000, count(*)") and "group by 1" in grouped


def test_the_endpoint_is_a_pooler_pointed_where_it_is_told() -> None:
    source, cluster = endpoint_ini("source", 5432), endpoint_ini("haproxy", 5000)
    assert "postgres = host=source port=5432" in source
    assert "postgres = host=haproxy port=5000" in cluster
    assert "pool_mode = transaction" in source and "listen_port = 6432" in source
    # The lab's pooler is rendered as before: its configuration hash must not change.
    assert "HAProxy's read-write port" in pgbouncer_ini()


def test_the_lab_move_reaches_the_source_from_the_cluster_by_service_name(
    tmp_path: Path,
) -> None:
    lab = Lab(tmp_path, {"POSTGRES_PASSWORD": "pw", "CRM_APP_PASSWORD": "x"})
    move = Move.of_lab(lab)
    assert "port=5440" in move.source_dsn and "host=127.0.0.1" in move.source_dsn
    assert "host=source port=5432" in move.source_conninfo
    assert "port=6433" in move.endpoint_admin_dsn and "dbname=pgbouncer" in move.endpoint_admin_dsn
    assert move.cluster_upstream == ("haproxy", 5000)


@pytest.mark.parametrize(("text", "n"), [("512", 512), ("64kB", 65536), ("16MB", 16 << 20)])
def test_sizes(text: str, n: int) -> None:
    assert parse_size(text) == n


def test_a_bad_size_says_how_to_write_one() -> None:
    with pytest.raises(ConfigError, match="is not a number of bytes"):
        parse_size("lots")
    assert format_bytes(16 << 20) == "16 MB" and format_bytes(100) == "100 bytes"


def no_stack(lab: Lab, say: Say) -> Stack:
    raise AssertionError("the lab must not be touched")


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["cutover", "--max-lag", "lots"], "size 'lots' is not a number of bytes"),
        (["cutover", "--pause-timeout", "soon"], "duration 'soon' is not a number"),
        (["--source", "host=a port", "check"], "is not a connection string"),
        (["start", "--copy-timeout", "x"], "duration 'x' is not a number"),
    ],
)
def test_bad_values_are_usage_errors_before_anything_runs(args: list[str], says: str) -> None:
    result = CliRunner().invoke(cli.cli, ["migration", *args], obj=App(stack_factory=no_stack))
    assert result.exit_code == 2, result.output
    assert says in result.output


def test_help_tells_the_move_from_the_schema_migrations() -> None:
    result = CliRunner().invoke(cli.cli, ["migration", "--help"])
    assert result.exit_code == 0
    assert "Unlike `harness migrate`" in result.output
    for stage in ("check", "start", "status", "cutover", "verify", "finish"):
        assert stage in result.output


def test_check_on_an_unreachable_source_fails_its_item_and_changes_nothing(
    tmp_path: Path,
) -> None:
    settings = {"POSTGRES_PASSWORD": "pw", "GARDENLAB_SOURCE_PORT": "1"}
    app = App(stack_factory=no_stack, lab_factory=lambda: Lab(tmp_path, settings))
    result = CliRunner().invoke(cli.cli, ["migration", "check"], obj=app)
    assert result.exit_code == 1, result.output
    assert "source reachable" in result.output and "cannot reach the source" in result.output


class FakeBouncer:
    """PgBouncer's admin console as the endpoint uses it (the pause deadline itself is
    tested with the console client, tests/unit/test_pgbouncer_admin.py)."""

    def __init__(self, host: str = "source", port: int = 5432) -> None:
        self.file = (host, port)
        self.live = (host, port)
        self.commands: list[str] = []

    def rows(self, command: str) -> list[dict[str, Any]]:
        self.commands.append(command)
        if command == "RELOAD":
            self.live = self.file
        if command == "SHOW DATABASES":
            host, port = self.live
            return [
                {"name": "pgbouncer", "host": None, "port": 6432},
                {"name": "postgres", "host": host, "port": port},
            ]
        return []

    def pause(self, timeout: float) -> None:
        self.commands.append("PAUSE")

    def resume(self) -> None:
        self.commands.append("RESUME")

    def write(self, host: str, port: int) -> None:
        self.file = (host, port)


def test_repoint_rewrites_reloads_and_checks_where_it_goes() -> None:
    bouncer = FakeBouncer()
    endpoint = Endpoint(bouncer, bouncer.write)
    endpoint.pause(1)
    endpoint.repoint("haproxy", 5000)
    endpoint.resume()
    assert bouncer.commands == ["PAUSE", "RELOAD", "SHOW DATABASES", "RESUME"]
    assert endpoint.upstream() == ("haproxy", 5000)


def test_a_reload_that_does_not_take_is_an_error() -> None:
    bouncer = FakeBouncer()
    endpoint = Endpoint(bouncer, lambda host, port: None)  # writes the wrong file
    with pytest.raises(HarnessError, match="still points at source:5432"):
        endpoint.repoint("haproxy", 5000)


def test_the_endpoints_file_is_rendered_anew_keeping_where_it_points(tmp_path: Path) -> None:
    lab = Lab(root=tmp_path, settings={})
    assert endpoint_upstream(lab) is None
    endpoint_file(lab).parent.mkdir(parents=True)
    endpoint_file(lab).write_text("[databases]\npostgres = host=haproxy port=5000\n")  # older
    write_endpoint(lab, *(endpoint_upstream(lab) or ("source", 5432)))
    text = endpoint_file(lab).read_text()
    assert "postgres = host=haproxy port=5000" in text and "client_tls_sslmode" in text
