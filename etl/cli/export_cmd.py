"""`etl export`, `etl search` and `etl backup`: reading the mirror back out."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from etl import backup, mirror, search
from etl import export as exporting
from etl.cli.common import connection_options, db_option, make_client, quiet_option, say
from etl.cli.sync_cmd import run_sync, summary_lines
from etl.errors import EtlError
from etl.progress import bars
from etl.redact import redact_url
from etl.sync import SyncOptions


def open_existing(db: str):
    """Open a mirror that must already exist (reading never creates an empty one)."""
    if not Path(db).is_file():
        raise click.ClickException(f"no mirror at {db}: run `etl sync` first")
    return mirror.open_mirror(db)


def _since(ctx, param, value):
    if value is None:
        return None
    try:
        return exporting.parse_since(value)
    except EtlError as exc:
        raise click.BadParameter(str(exc).removeprefix("--since "), ctx, param) from None


def _statuses(ctx, param, values):
    chosen = [s.strip() for value in values for s in value.split(",") if s.strip()]
    for status in chosen:
        if status not in exporting.STATUSES:
            raise click.BadParameter(
                f"{status!r} is not one of {', '.join(exporting.STATUSES)}", ctx, param
            )
    return tuple(dict.fromkeys(chosen))


def _tables(ctx, param, values):
    try:
        return exporting.check_tables(values)
    except EtlError as exc:
        raise click.BadParameter(str(exc), ctx, param) from None


@click.command("export")
@db_option
@click.option(
    "--format", "fmt", required=True, type=click.Choice(exporting.FORMATS), help="Output format."
)
@click.option(
    "--out",
    required=True,
    metavar="PATH",
    help="A directory (one file per table); for xlsx the workbook file.",
)
@click.option(
    "--tables",
    multiple=True,
    callback=_tables,
    metavar="NAMES",
    help=f"Comma-separated or repeated: {', '.join(exporting.TABLES)} [default: all].",
)
@click.option(
    "--since",
    callback=_since,
    metavar="DATE",
    help="Only conversations (and their threads), customers and users updated since DATE (UTC).",
)
@click.option(
    "--mailbox",
    "mailboxes",
    type=int,
    multiple=True,
    metavar="ID",
    help="Only this mailbox's conversations and threads (repeatable).",
)
@click.option(
    "--status",
    "statuses",
    multiple=True,
    callback=_statuses,
    metavar="STATUS",
    help=f"Only these statuses ({', '.join(exporting.STATUSES)}); comma-separated or repeated.",
)
@click.option(
    "--include-deleted/--exclude-deleted",
    default=False,
    show_default=True,
    help="Rows deleted at the source, with a deleted_at column.",
)
@click.option(
    "--excel", is_flag=True, help="csv: BOM, CRLF and formula-lookalikes neutralised for Excel."
)
@quiet_option
def export_command(db, fmt, out, tables, since, mailboxes, statuses, include_deleted, excel, quiet):
    """Export the mirror as spreadsheet-shaped tables: conversations, threads, customers, ...

    csv, json, jsonl and parquet write one file per table into the --out directory; xlsx
    writes one workbook with a sheet per table. JSON conversations are self-contained records
    that `etl load conversations --mapping smarticks` can recreate elsewhere.

    \b
    Example:
      etl export --format xlsx --out helpdesk.xlsx --since 2024-01-01
      etl export --format csv --excel --out export/ --tables conversations,threads
      etl export --format jsonl --out dump/ --include-deleted
    """
    options = exporting.ExportOptions(
        tables=tables,
        since=since,
        mailboxes=mailboxes,
        statuses=statuses,
        include_deleted=include_deleted,
        excel=excel,
    )
    database = open_existing(db)
    started = time.monotonic()
    try:
        summary = exporting.export(database.conn, fmt, out, options, progress=bars(quiet))
    finally:
        database.conn.close()
    say(quiet, f"Exported {db} as {fmt} in {time.monotonic() - started:.1f} s:")
    for table, count in summary.rows.items():
        say(quiet, f"  {table:<16}{count:>9} rows")
    for path in summary.files:
        say(quiet, f"  wrote {path}")
    for warning in summary.warnings:  # even with --quiet: these say what the files lack
        click.echo(f"warning: {warning}", err=True)


@click.command("search")
@click.argument("query")
@db_option
@click.option("--limit", default=50, show_default=True, type=click.IntRange(min=1))
@click.option("--include-deleted", is_flag=True, help="Also conversations deleted at the source.")
@click.option("--json", "as_json", is_flag=True, help="A JSON list, for scripts.")
def search_command(query, db, limit, include_deleted, as_json):
    """Find conversations by words in their subject, threads, or customer's name and emails.

    Every word must appear somewhere in the conversation; "quote" a phrase, end a word with *
    to match its beginning. Best matches first.

    \b
    Example:
      etl search "refund policy"
      etl search '"late delivery" invoice*' --json | jq '.[].number'
    """
    database = open_existing(db)
    try:
        results = search.search(database.conn, query, limit, include_deleted)
    finally:
        database.conn.close()
    if as_json:
        click.echo(json.dumps(results, ensure_ascii=False, indent=2))
        return
    if not results:
        click.echo(f"No conversations match {query!r}.")
        return
    click.echo(f"{'number':>7}  {'subject':<44}  {'customer':<30}  {'status':<8}  updated")
    for row in results:
        customer = row["customer_name"] or row["customer_email"] or ""
        click.echo(
            f"{row['number'] or '':>7}  {_cut(row['subject'], 44):<44}  {_cut(customer, 30):<30}"
            f"  {row['status'] or '':<8}  {row['updated_at'] or ''}"
        )


def _cut(text: str | None, width: int) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= width else text[: width - 1] + "…"


@click.command("backup")
@connection_options
@db_option
@click.option(
    "--dir",
    "directory",
    required=True,
    metavar="DIR",
    help="Where snapshots go (created if missing).",
)
@click.option(
    "--keep",
    type=click.IntRange(min=1),
    metavar="N",
    help="Keep only the newest N snapshots [default: keep all].",
)
@click.option("--full", is_flag=True, help="Full rescan first (also detects deletions).")
@click.option("--no-sync", is_flag=True, help="Snapshot the mirror as it is, without syncing.")
@quiet_option
def backup_command(url, api_key, db, directory, keep, full, no_sync, quiet):
    """Sync, then write a consistent snapshot of the mirror named by UTC time.

    Snapshots are SQLite files (`<db name>-YYYYMMDDThhmmssZ.db`) made with VACUUM INTO, safe
    while other processes read or write the mirror. To restore, use a snapshot as the mirror
    (`etl export --db SNAPSHOT ...`, `datasette SNAPSHOT`), or copy it to the mirror's path
    while no etl command runs, removing the old mirror's -wal and -shm files.

    \b
    Example:
      etl backup --dir backups/ --keep 14
      # nightly at 02:30 (crontab -e); etl.env (chmod 600) exports SMARTICKS_URL/_API_KEY:
      30 2 * * * cd /srv/helpdesk && . ./etl.env && etl backup --dir backups --keep 14 -q
    """
    if not no_sync:
        client = make_client(url, api_key, quiet)
        started = time.monotonic()
        result = run_sync(client, db, SyncOptions(full=full), quiet, command="backup")
        say(quiet, f"Synced {redact_url(client.url)} into {db}")
        for line in summary_lines(result, time.monotonic() - started):
            say(quiet, "  " + line)
    # Opening refreshes the sheet views: they gain columns for custom fields the sync just met.
    open_existing(db).conn.close()
    path, removed = backup.backup(db, directory, keep)
    say(quiet, f"Snapshot {path} ({path.stat().st_size / 1e6:.1f} MB)")
    for old in removed:
        say(quiet, f"  removed {old}")


COMMANDS = [export_command, search_command, backup_command]
