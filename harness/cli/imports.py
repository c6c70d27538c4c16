"""`harness import FILE --agency N`: an agency's CSV through the lab's import service."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from harness.cli.app import App, pass_app

SHOWN_REJECTS = 10


@click.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--agency", "agency_id", type=click.IntRange(min=1), required=True, help="Agency id.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=1),
    default=1800,
    show_default=True,
    help="Seconds to follow the import; it goes on in the service after that.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the import's summary as JSON.")
@pass_app
def import_command(app: App, file: Path, agency_id: int, timeout: float, as_json: bool) -> None:
    """Import leads from an agency's CSV export through the CSV import service (port 8090).

    Columns: name, phone, email, status, source, and optionally created_at and score.
    Each valid row lands in leads exactly once: the same file again adds nothing, and an
    import interrupted by a failover or a restart of the service finishes by itself.
    Rejected rows are listed with their line and reason. Exit 1 if the import failed.
    """
    import json

    from rich.progress import BarColumn, DownloadColumn, MofNCompleteColumn, Progress, TextColumn

    from harness.cli.output import err, out
    from harness.clients.csvimport import CsvImportClient
    from harness.lab.topology import CSV_IMPORT

    columns = (TextColumn("{task.description}"), BarColumn())
    with CsvImportClient(app.lab.url(CSV_IMPORT)) as client:
        with Progress(*columns, DownloadColumn(), console=err, disable=not err.is_terminal) as bar:
            task = bar.add_task(f"uploading {file.name}", total=file.stat().st_size)
            submitted = client.submit(file, agency_id, lambda n: bar.advance(task, n))
        import_id = submitted["id"]
        if not submitted["created"]:
            err.print(f"this file was imported before for agency {agency_id}: import {import_id}")
        else:
            err.print(f"import {import_id} accepted")
        rows = max(int(submitted.get("lines") or 1) - 1, 1)
        with Progress(
            *columns,
            MofNCompleteColumn(),
            TextColumn("{task.fields[state]}"),
            console=err,
            disable=not err.is_terminal,
        ) as bar:
            task = bar.add_task(f"import {import_id}", total=rows, state="")

            def show(summary: dict[str, Any]) -> None:
                seen = int(summary["rows_seen"])
                bar.update(task, completed=seen, total=max(rows, seen), state=summary["state"])

            summary = client.wait(import_id, timeout, show)
    if as_json:
        out.print_json(json.dumps(summary, default=str))
    else:
        out.print(
            f"import {import_id}: {summary['state']}, {summary['rows_seen']:,} rows seen, "
            f"{summary['imported']:,} imported, {summary['rejected']:,} rejected",
            highlight=False,
        )
        for reject in summary["rejected_rows"][:SHOWN_REJECTS]:
            out.print(f"  line {reject['line']}: {reject['reason']}", highlight=False)
        if summary["rejected"] > SHOWN_REJECTS:
            out.print(f"  ... {summary['rejected'] - SHOWN_REJECTS:,} more", highlight=False)
        if summary.get("error"):
            out.print(f"  error: {summary['error']}", highlight=False)
    if summary["state"] != "done":
        raise SystemExit(1)
