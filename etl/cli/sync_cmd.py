"""`etl sync` and `etl status`."""

from __future__ import annotations

import json
import time

import click

from etl import backfill, binding, files, lock, mirror
from etl.cli.common import (
    attachments_option,
    connection_options,
    db_option,
    make_client,
    quiet_option,
    rebind_option,
    say,
)
from etl.progress import bars
from etl.redact import redact_url
from etl.resources import BY_NAME
from etl.sync import SyncOptions, continued, sync


def run_sync(
    client,
    db_path: str,
    options: SyncOptions,
    quiet: bool,
    command: str = "sync",
    rebind: bool = False,
    attachments: bool = False,
):
    """Lock the mirror, check its source, sync into it (and its attachment files if asked)."""
    with lock.writer_lock(db_path):
        db = mirror.open_mirror(db_path)
        try:
            binding.bind(db.conn, client.url, rebind, db_path)
            timelogs = options.timelogs and (
                not options.resources or "conversations" in options.resources
            )
            gap = backfill.timelogs_gap(db.conn) if timelogs and not options.full else None
            result = sync(client, db.conn, options, progress=bars(quiet), command=command)
            if timelogs:  # what syncs without --timelogs left out
                done = backfill.Backfilled()
                with continued(
                    db.conn, result, lambda: {"timelogs": done.timelogs}, lambda: done.requests
                ):
                    backfill.backfill_timelogs(
                        client, db.conn, gap, options.workers, bars(quiet), done
                    )
                result.counts["timelogs"] = result.counts.get("timelogs", 0) + done.timelogs
                result.requests += done.requests
            if attachments:
                fetched = result.files = files.Fetched()
                with continued(db.conn, result, fetched.counts, lambda: fetched.requests):
                    files.fetch_files(
                        client, db.conn, db_path, options.workers, bars(quiet), fetched
                    )
                result.requests += fetched.requests
            return result
        finally:
            db.conn.close()


def files_line(fetched) -> str:
    line = f"files: {fetched.files} downloaded ({fetched.bytes / 1e6:.1f} MB), {fetched.held} held"
    if fetched.duplicates:
        line += f", {fetched.duplicates} the same as one held"
    if fetched.gone:
        ids = ", ".join(map(str, fetched.gone[:5])) + (" ..." if len(fetched.gone) > 5 else "")
        line += f", {len(fetched.gone)} gone at the source (attachments {ids})"
    return line


def records_written(counts: dict[str, int]) -> int:
    """A run's records, from its recorded counts: neither deletions nor attachment files."""
    return sum(
        count
        for name, count in counts.items()
        if not name.endswith("_deleted") and not name.startswith("files_")
    )


def run_files_line(counts: dict[str, int]) -> str:
    """A run's attachment files, from its recorded counts (see `files.Fetched.counts`)."""
    line = (
        f"files: {counts['files_downloaded']} downloaded "
        f"({counts.get('files_bytes', 0) / 1e6:.1f} MB), {counts.get('files_held', 0)} held"
    )
    for key, said in (("duplicates", "the same as one held"), ("gone", "gone at the source")):
        if counts.get(f"files_{key}"):
            line += f", {counts[f'files_{key}']} {said}"
    if counts.get("files_failed"):
        line += f", {counts['files_failed']} failed"
    return line


def summary_lines(result, seconds: float) -> list[str]:
    lines = [f"{'resource':<16}{'written':>9}{'deleted':>9}"]
    for name, count in result.counts.items():
        deleted = result.deleted.get(name, 0)
        lines.append(f"{name:<16}{count:>9}{deleted:>9}")
    if result.files is not None:
        lines.append(files_line(result.files))
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
@attachments_option
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
@rebind_option
@quiet_option
def sync_command(
    url, api_key, db, full, timelogs, attachments, only, page_size, workers, rebind, quiet
):
    """Mirror the helpdesk into SQLite, fetching only what changed since the last run.

    \b
    Example:
      export SMARTICKS_URL=https://support.example.org SMARTICKS_API_KEY=...
      etl sync --db helpdesk.db          # first run is full, later runs incremental
      etl sync --full                    # rescan, detect deletions

    A mirror is bound to the address of the helpdesk it was first synced from; a sync from
    another stops (exit 2). After the helpdesk moved, pass --rebind once.
    """
    client = make_client(url, api_key, quiet)
    options = SyncOptions(
        full=full, timelogs=timelogs, page_size=page_size, workers=workers, resources=only
    )
    started = time.monotonic()
    result = run_sync(client, db, options, quiet, rebind=rebind, attachments=attachments)
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
        "source": binding.bound_source(conn),
        "runs": [
            {
                **run,
                "counts": json.loads(run["counts"] or "{}"),
                "errors": json.loads(run["errors"] or "[]"),
            }
            for run in mirror.recent_runs(conn, runs)
        ],
        "cursors": {r: v for r, v, _ in conn.execute("SELECT * FROM etl_cursors")},
        "rows": mirror.row_counts(database),
        "files": files.held_files(conn, db),
        "load_runs": ledger.recent_runs(conn, runs),
    }
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    click.echo(f"Mirror {db} of {report['source'] or '(no source yet)'}")
    click.echo("Recent runs:")
    for run in report["runs"]:
        counts = run["counts"]
        total = records_written(counts)
        kind = "full" if run["full"] else "incremental"
        click.echo(
            f"  #{run['id']} {run['command']} {kind} {run['started_at']} -> "
            f"{run['ended_at'] or '-'} {run['status']}: {total} records, "
            f"{run['requests']} requests"
        )
        if "files_downloaded" in counts:
            click.echo(f"      {run_files_line(counts)}")
        for error in run["errors"]:
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
    held = report["files"]
    click.echo(
        f"Attachment files: {held['files']} files, {held['bytes'] / 1e6:.1f} MB in "
        f"{held['folder']}, for {held['attachments_with_file']} of {report['rows']['attachments']}"
        " attachments"
    )


COMMANDS = [sync_command, status_command]
