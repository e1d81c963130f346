"""`etl sync` and `etl status`."""

from __future__ import annotations

import json
import time

import click

from etl import lock, mirror
from etl.cli.common import connection_options, db_option, make_client, quiet_option, say
from etl.progress import bars
from etl.redact import redact_url
from etl.resources import BY_NAME
from etl.sync import SyncOptions, sync


def run_sync(client, db_path: str, options: SyncOptions, quiet: bool, command: str = "sync"):
    """Lock the mirror, sync into it and return the result (shared with `etl demo`)."""
    with lock.writer_lock(db_path):
        db = mirror.open_mirror(db_path)
        try:
            return sync(client, db.conn, options, progress=bars(quiet), command=command)
        finally:
            db.conn.close()


def summary_lines(result, seconds: float) -> list[str]:
    lines = [f"{'resource':<16}{'written':>9}{'deleted':>9}"]
    for name, count in result.counts.items():
        deleted = result.deleted.get(name, 0)
        lines.append(f"{name:<16}{count:>9}{deleted:>9}")
    lines.append(f"{result.requests} requests in {seconds:.1f} s")
    if result.timestamps_kept_as_text:
        lines.append(
            f"{result.timestamps_kept_as_text:,} timestamps the server sent did not parse: "
            "kept as text, as sent"
        )
    return lines


@click.command("sync")
@connection_options
@db_option
@click.option("--full", is_flag=True, help="Rescan everything; marks records deleted at source.")
@click.option("--timelogs", is_flag=True, help="Also mirror conversation timelogs.")
@click.option(
    "--only",
    multiple=True,
    type=click.Choice(sorted(BY_NAME)),
    help="Sync only these resources (repeatable).",
)
@click.option("--page-size", default=100, show_default=True, type=click.IntRange(1, 1000))
@click.option(
    "--workers", default=4, show_default=True, type=click.IntRange(1, 16), help="Parallel requests."
)
@quiet_option
def sync_command(url, api_key, db, full, timelogs, only, page_size, workers, quiet):
    """Mirror the helpdesk into SQLite, fetching only what changed since the last run.

    \b
    Example:
      export SMARTICKS_URL=https://support.example.org SMARTICKS_API_KEY=...
      etl sync --db helpdesk.db          # first run is full, later runs incremental
      etl sync --full                    # rescan, detect deletions
    """
    client = make_client(url, api_key, quiet)
    options = SyncOptions(
        full=full, timelogs=timelogs, page_size=page_size, workers=workers, resources=only
    )
    started = time.monotonic()
    result = run_sync(client, db, options, quiet)
    say(quiet, f"Synced {redact_url(client.url)} into {db}")
    for line in summary_lines(result, time.monotonic() - started):
        say(quiet, "  " + line)


@click.command("status")
@db_option
@click.option("--runs", default=5, show_default=True, help="How many recent runs to show.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def status_command(db, runs, as_json):
    """Show the last sync runs, the cursors and the row counts of a mirror.

    \b
    Example:
      etl status --db helpdesk.db
    """
    from pathlib import Path

    from etl import ledger

    if not Path(db).exists():
        raise click.ClickException(f"no mirror at {db}: run `etl sync` first")
    database = mirror.open_mirror(db)
    conn = database.conn
    report = {
        "runs": mirror.recent_runs(conn, runs),
        "cursors": {r: v for r, v, _ in conn.execute("SELECT * FROM etl_cursors")},
        "rows": mirror.row_counts(database),
        "load_runs": ledger.recent_runs(conn, runs),
    }
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    click.echo(f"Mirror {db}")
    click.echo("Recent runs:")
    for run in report["runs"]:
        counts = json.loads(run["counts"] or "{}")
        total = sum(v for k, v in counts.items() if not k.endswith("_deleted"))
        kind = "full" if run["full"] else "incremental"
        click.echo(
            f"  #{run['id']} {run['command']} {kind} {run['started_at']} -> "
            f"{run['ended_at'] or '-'} {run['status']}: {total} records, "
            f"{run['requests']} requests"
        )
        for error in json.loads(run["errors"] or "[]"):
            click.echo(f"      error: {error}")
    if report["load_runs"]:
        click.echo("Load runs:")
        for run in report["load_runs"]:
            click.echo(f"  {ledger.run_line(run)}")
    click.echo("Cursors (updatedAt of the newest record mirrored):")
    for resource, value in report["cursors"].items():
        click.echo(f"  {resource:<16}{value}")
    click.echo("Rows:")
    for table, count in report["rows"].items():
        click.echo(f"  {table:<28}{count:>9}")


COMMANDS = [sync_command, status_command]
