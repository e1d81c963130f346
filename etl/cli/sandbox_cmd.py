"""`etl sandbox` (a local Smarticks server) and `etl demo` (sync it into a fresh mirror)."""

from __future__ import annotations

import os
import shlex
import sys
import time
from pathlib import Path

import click

from etl import mirror
from etl.cli.common import make_client, quiet_option, say
from etl.cli.sync_cmd import run_sync, summary_lines
from etl.export import export
from etl.progress import bars
from etl.sync import SyncOptions


@click.command("sandbox")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8025, show_default=True, help="0 picks a free port.")
@click.option(
    "--api-key",
    default="sandbox-key",
    show_default=True,
    help="The key clients must send; choose your own before binding a non-loopback --host.",
)
@click.option("--seed", default=1, show_default=True, help="Same seed, same data.")
@click.option("--conversations", default=200, show_default=True)
@click.option("--customers", type=int, default=None, help="Default: 40% of conversations.")
@click.option("--empty", is_flag=True, help="Only mailboxes, users and field definitions.")
@click.option("--latency", default=0.0, help="Seconds added to every request.")
@click.option("--error-rate", default=0.0, help="Share of requests answered 5xx.")
@click.option("--rate-limit-every", default=0, help="Answer every Nth request 429.")
@click.option("--drop-rate", default=0.0, help="Share of requests whose connection is dropped.")
@click.option(
    "--attachment-files",
    default=0,
    metavar="BYTES",
    help="Serve seeded attachments' files, each at most BYTES long [default: metadata only].",
)
@click.option(
    "--max-body",
    "max_body_mb",
    default=32.0,
    show_default=True,
    metavar="MB",
    help="Largest request body accepted (413 beyond).",
)
@click.option(
    "--flavor",
    type=click.Choice(["smarticks", "zendesk", "helpscout", "freshdesk"]),
    default="smarticks",
    show_default=True,
    help="zendesk, helpscout, freshdesk: an emulation of that helpdesk's API to migrate from.",
)
def sandbox_command(flavor, **options):
    """Serve a local Smarticks API with realistic seeded data, until Ctrl-C.

    \b
    Example:
      etl sandbox --port 8025 --conversations 1000
      SMARTICKS_URL=http://127.0.0.1:8025 SMARTICKS_API_KEY=sandbox-key etl sync
      etl sandbox --flavor zendesk --port 8026 --rate-limit-every 20
    """
    if flavor != "smarticks":
        from etl.sandbox.sources import serve_source

        serve_source(
            flavor,
            options["host"],
            options["port"],
            options["seed"],
            options["conversations"],
            latency=options["latency"],
            error_rate=options["error_rate"],
            rate_limit_every=options["rate_limit_every"],
        )
        return
    from etl.sandbox import serve_forever

    serve_forever(**options)


@click.command("demo")
@click.option("--db", default="smarticks-demo.db", show_default=True, help="Fresh mirror path.")
@click.option(
    "--xlsx", default="smarticks-demo.xlsx", show_default=True, help="Spreadsheet to write."
)
@click.option("--conversations", default=500, show_default=True)
@click.option(
    "--migrate",
    "migrate_zendesk",
    is_flag=True,
    help="Instead: migrate a Zendesk sandbox into an empty Smarticks sandbox, then catch up.",
)
@quiet_option
def demo_command(db, xlsx, conversations, migrate_zendesk, quiet):
    """Start the sandbox, mirror it into a fresh SQLite file, export a spreadsheet, show it all.

    \b
    Example:
      etl demo && sqlite3 smarticks-demo.db "select status, count(*) from conversations group by 1"
      etl demo --migrate --conversations 100
    """
    from etl.sandbox import Sandbox

    if migrate_zendesk:
        from etl.cli.migrate_cmd import demo_migration

        demo_migration(db, conversations, quiet)
        return

    for suffix in ("", "-wal", "-shm"):
        Path(db + suffix).unlink(missing_ok=True)
    say(quiet, f"Starting the sandbox with {conversations} conversations ...")
    with Sandbox(seed=1, conversations=conversations) as sandbox:
        say(quiet, f"Sandbox at {sandbox.url}")
        client = make_client(sandbox.url, sandbox.api_key)
        started = time.monotonic()
        result = run_sync(client, db, SyncOptions(timelogs=True), quiet, command="demo")
        seconds = time.monotonic() - started
    say(quiet, f"\nMirrored the sandbox into {Path(db).resolve()}")
    for line in summary_lines(result, seconds):
        say(quiet, "  " + line)
    database = mirror.open_mirror(db)
    by_status = database.conn.execute(
        "SELECT status, count(*) FROM conversations GROUP BY status ORDER BY status"
    ).fetchall()
    say(quiet, "  conversations by status: " + ", ".join(f"{s} {n}" for s, n in by_status))
    summary = export(database.conn, "xlsx", xlsx, progress=bars(quiet))
    sheets = ", ".join(f"{name} {rows}" for name, rows in summary.rows.items())
    say(quiet, f"\nWrote the spreadsheet {Path(xlsx).resolve()}")
    say(quiet, f"  rows: {sheets}")
    etl, where = this_etl(), shlex.quote(db)
    say(quiet, "\nLook around:")
    say(quiet, f"  {etl} status --db {where}")
    say(quiet, f'  {etl} search --db {where} "refund"')
    say(quiet, f"  {etl} export --db {where} --format csv --out export/")


def this_etl(argv0: str | None = None) -> str:
    """The command that runs this etl, as a shell would take it from any directory: the demo's
    suggestions then work pasted into the shell it ran in, venv activated or not."""
    argv0 = sys.argv[0] if argv0 is None else argv0
    if not argv0 or Path(argv0).name in ("__main__.py", "-m", "-c") or not Path(argv0).exists():
        return f"{shlex.quote(sys.executable)} -m etl"
    return shlex.quote(os.path.abspath(argv0))


COMMANDS = [sandbox_command, demo_command]
