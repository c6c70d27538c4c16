"""The application's writes during a move, as the chaos workload makes them: through the
application endpoint, under the legacy name (a table on the source before the cutover, a
view over the clean one on both sides after it), one row per attempt, each id in
`full_name` so that what a side holds is read back by id."""

from __future__ import annotations

from harness.chaos.workload import WriteTable

SOURCE_TAG = "migration-writes"  # leads.source of every row the writers insert

APP_WRITES = WriteTable(
    name="leads_ins_info",
    insert=(
        "insert into leads_ins_info (agency_id, full_name, status, source) "
        f"values (1, %(id)s::text, 'new', '{SOURCE_TAG}') returning host(inet_server_addr())"
    ),
    ids=f"select full_name::bigint from leads_ins_info where source = '{SOURCE_TAG}'",
)
