"""`etl export` and `etl search`: reading the mirror back out."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from etl import export as exporting
from etl import mirror, search
from etl.cli.common import db_option, quiet_option, say
from etl.errors import EtlError
from etl.progress import bars


def open_existing(db: str):
    """Open a mirror that must already exist (reading never creates an empty one)."""
    if not Path(db).is_file():
        raise click.ClickException(f"no mirror at {db}: run `etl sync` first")
    return mirror.open_mirror(db)


def _zone(ctx, param, value):
    try:
        exporting.time_zone(value)
    except EtlError as exc:
        message = str(exc).removeprefix("--timezone ")
        raise click.BadParameter(message, ctx, param) from None
    return value


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
    help=f"Comma-separated or repeated: {', '.join(exporting.TABLES)} "
    f"[default: {', '.join(exporting.DEFAULT_TABLES)}].",
)
@click.option(
    "--columns",
    multiple=True,
    metavar="TABLE:COLS",
    help="Only these columns of a table, in this order (conversations:number,subject,Amount); "
    "repeatable; the table may be left out when one is exported.",
)
@click.option(
    "--since",
    metavar="DATE",
    help="Only conversations (and their threads), customers and users updated since DATE "
    "(read in --timezone).",
)
@click.option(
    "--timezone",
    "timezone",
    default="UTC",
    show_default=True,
    callback=_zone,
    metavar="ZONE",
    help="Write times in this IANA zone (Europe/Paris): local cells in xlsx, ISO 8601 with the "
    "offset in csv and json, zoned timestamps in parquet.",
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
@click.option(
    "--no-files",
    is_flag=True,
    help="json/jsonl: leave out the attachment files the mirror holds (by default they go "
    "to files/ in --out, where `etl load` reads them).",
)
@quiet_option
def export_command(
    db,
    fmt,
    out,
    tables,
    columns,
    since,
    timezone,
    mailboxes,
    statuses,
    include_deleted,
    excel,
    no_files,
    quiet,
):
    """Export the mirror as spreadsheet-shaped tables: conversations, threads, customers, ...

    csv, json, jsonl and parquet write one file per table into the --out directory; xlsx
    writes one workbook with a sheet per table. JSON conversations are self-contained records
    that `etl load conversations --mapping smarticks` can recreate elsewhere; the attachment
    files the mirror holds (`etl sync --attachments`) go beside them, in files/.

    \b
    Example:
      etl export --format xlsx --out helpdesk.xlsx --since 2024-01-01
      etl export --format csv --excel --out export/ --tables conversations,threads
      etl export --format jsonl --out dump/ --include-deleted
      etl export --format xlsx --out sydney.xlsx --timezone Australia/Sydney
      etl export --format csv --out form/ --tables timelogs --columns user_email,time_spent
    """
    if since is not None:
        since = exporting.parse_since(since, exporting.time_zone(timezone))
    picked = exporting.parse_columns(columns, tables)
    options = exporting.ExportOptions(
        tables=tables,
        columns=picked,
        timezone=timezone,
        since=since,
        mailboxes=mailboxes,
        statuses=statuses,
        include_deleted=include_deleted,
        excel=excel,
        attachment_files=not no_files,
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
    stored = summary.attachment_files
    if stored is not None and (stored.placed or stored.without_file):
        say(
            quiet,
            f"  {len(stored.placed)} attachment files ({stored.bytes:,} bytes) in {stored.folder}",
        )
        if stored.without_file:
            say(
                quiet,
                f"  {stored.without_file} attachments without a file in the mirror: "
                "`etl load` downloads them from the source, if it still serves them",
            )
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
    to match its beginning. Chinese and Japanese words are found inside longer runs of text.
    Best matches first, each with the text around its matches, [marked].

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
        if row["snippet"]:
            click.echo(f"{'':>7}  {row['snippet']}")


def _cut(text: str | None, width: int) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= width else text[: width - 1] + "…"


COMMANDS = [export_command, search_command]
