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


COMMANDS = [export_command, search_command]
