"""`etl migrate zendesk|helpscout|freshdesk`: read a helpdesk's API into staging, then load it."""

from __future__ import annotations

import functools
import shutil
from pathlib import Path

import click

from etl import lock, mirror
from etl.cli.common import connection_options, db_option, make_client, quiet_option, say
from etl.cli.load_cmd import field_ids
from etl.load import LoadFailed

EXIT_REJECTED = 3


@click.group("migrate")
def migrate_group() -> None:
    """Migrate a helpdesk into Smarticks straight from its API, exactly once, with catch-up.

    \b
    The source is read into a staging area in --db (resumable, like etl sync), then loaded
    with imported=true like etl load: every customer first (with or without tickets, with
    the whole profile; one already on the target is filled in, never overwritten), then the
    conversations. Run it again after cut-over: it appends only what is new at the source
    and brings each conversation to the source's status.

    \b
    Example:
      export ZENDESK_EMAIL=admin@acme.com ZENDESK_TOKEN=...
      etl migrate zendesk --source-url https://acme.zendesk.com --mailbox 1 --dry-run
    """


def migrate_options(func):
    """The options every `etl migrate` command shares (the target's come from etl load's)."""

    @click.option("--mailbox", type=int, metavar="ID", help="Target mailbox id (required).")
    @click.option(
        "--fallback-user",
        metavar="EMAIL",
        help="Target user who writes the replies of agents that are not users there "
        "[default: the first administrator].",
    )
    @click.option("--dry-run", is_flag=True, help="Read the source and report; send nothing.")
    @click.option(
        "--mapping",
        metavar="NAME|PATH",
        help="How the source's records become conversations (statuses, channels, custom "
        "fields) [default: the shipped SOURCE-api mapping].",
    )
    @click.option(
        "--workers",
        default=4,
        show_default=True,
        type=click.IntRange(1, 32),
        metavar="N",
        help="Concurrent requests to the source and creates on the target.",
    )
    @click.option(
        "--max-request-mb",
        default=20.0,
        show_default=True,
        type=click.FloatRange(min=0.1),
        metavar="MB",
        help="Largest request the target accepts; a thread's attachments beyond it follow in "
        "notes, a long conversation's threads in appends (lower it if the target answers 413).",
    )
    @click.option(
        "--customer-field",
        "customer_fields",
        multiple=True,
        metavar="NAME=ID",
        help="The target's id of a customer field (repeatable), for a field that no customer "
        "on the target has a value for yet (the API lists no field definitions).",
    )
    @click.option(
        "--rejects",
        type=click.Path(dir_okay=False, path_type=Path),
        metavar="PATH",
        help="Where rejected records go [default: SOURCE.rejects.csv here].",
    )
    @connection_options
    @db_option
    @quiet_option
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        return func(*args, **kwargs)

    return wrapper


def _migrate_locked(name: str, reader, client, db: str, mapping, options, quiet: bool):
    """Migrate under the database's writer lock; the reader, client and database are closed
    after, however it ends. Returns the migration's report."""
    from etl import migrate
    from etl.progress import bars
    from etl.stage import SOURCES
    from etl.staging import files_folder

    with lock.writer_lock(db):
        database = mirror.open_mirror(db)
        try:
            return migrate.migrate(
                SOURCES[name], reader, client, database.conn, files_folder(db), mapping, options,
                bars(quiet),
            )  # fmt: skip
        finally:
            database.conn.close()
            reader.close()
            client.close()


def run_migration(name: str, reader, settings: dict) -> None:
    """Lock the database, migrate, print the summary; exit 3 when anything was rejected."""
    from etl import migrate

    quiet, db = settings["quiet"], settings["db"]
    if reader.warning and not quiet:
        click.echo(f"warning: {reader.warning}", err=True)
    client = make_client(settings["url"], settings["api_key"], quiet)
    reader.http.retry = client.retry  # --max-wait holds for the source as for the target
    reader.http.deadline = client.deadline  # and so does --timeout
    options = migrate.SendOptions(
        settings["mailbox"],
        settings["fallback_user"],
        settings["dry_run"],
        settings["workers"],
        settings["rejects"],
        int(settings["max_request_mb"] * 1_000_000),
        field_ids(settings.get("customer_fields") or ()),
    )
    try:
        report = _migrate_locked(name, reader, client, db, settings["mapping"], options, quiet)
    except LoadFailed as exc:
        for line in exc.report.lines():
            say(quiet, line)
        raise
    for line in report.lines():
        say(quiet, line)
    if report.rejected:
        click.get_current_context().exit(EXIT_REJECTED)


@migrate_group.command("zendesk")
@click.option(
    "--source-url",
    envvar="ZENDESK_URL",
    metavar="URL",
    help="The account's address, e.g. https://acme.zendesk.com [env ZENDESK_URL]",
)
@click.option(
    "--source-email",
    envvar="ZENDESK_EMAIL",
    metavar="EMAIL",
    help="The agent or admin whose API token is used [env ZENDESK_EMAIL]",
)
@click.option(
    "--source-token",
    envvar="ZENDESK_TOKEN",
    metavar="TOKEN",
    help="A Zendesk API token; prefer the variable, which no process list shows "
    "[env ZENDESK_TOKEN]",
)
@migrate_options
def migrate_zendesk(source_url, source_email, source_token, **settings):
    """Migrate a Zendesk account's tickets with every comment, attachment and inline image.

    \b
    Every end user comes from the incremental user export (with identities, organization,
    user fields), tickets from the incremental export, comments from their endpoint,
    closing dates from the ticket metrics (solved_at). Deleted and spam tickets are left out
    and counted. Agents are matched by email to the target's users; the replies of the
    others are written by --fallback-user and listed in the summary.
    The source token comes from --source-token or ZENDESK_TOKEN; it is never stored.

    \b
    Example:
      export ZENDESK_EMAIL=admin@acme.com ZENDESK_TOKEN=...
      etl migrate zendesk --source-url https://acme.zendesk.com --mailbox 1 \\
          --fallback-user lead@example.org --dry-run
      etl migrate zendesk --source-url https://acme.zendesk.com --mailbox 1 \\
          --fallback-user lead@example.org
    """
    from etl.sources.zendesk import ZendeskReader

    reader = ZendeskReader(source_url or "", source_email or "", source_token or "")
    run_migration("zendesk", reader, settings)


@migrate_group.command("helpscout")
@click.option(
    "--source-url",
    envvar="HELPSCOUT_URL",
    default="https://api.helpscout.net",
    show_default=True,
    metavar="URL",
    help="The Mailbox API's address [env HELPSCOUT_URL]",
)
@click.option(
    "--source-client-id",
    envvar="HELPSCOUT_CLIENT_ID",
    metavar="ID",
    help="Your Help Scout app's App ID [env HELPSCOUT_CLIENT_ID]",
)
@click.option(
    "--source-client-secret",
    envvar="HELPSCOUT_CLIENT_SECRET",
    metavar="SECRET",
    help="Your app's App Secret; prefer the variable, which no process list shows "
    "[env HELPSCOUT_CLIENT_SECRET]",
)
@migrate_options
def migrate_helpscout(source_url, source_client_id, source_client_secret, **settings):
    """Migrate Help Scout conversations with every thread, attachment and inline image.

    \b
    Every customer comes first (List Customers, with every entry and property), then the
    conversations from the Mailbox API 2.0 with their threads (OAuth2 client
    credentials: create an app under Your Profile > My Apps). Spam conversations are left out
    and counted; status lines and drafts are skipped. Agents are matched by email to the
    target's users; the threads of the others are written by --fallback-user.
    The app secret comes from --source-client-secret or HELPSCOUT_CLIENT_SECRET; it is never
    stored.

    \b
    Example:
      export HELPSCOUT_CLIENT_ID=... HELPSCOUT_CLIENT_SECRET=...
      etl migrate helpscout --mailbox 1 --fallback-user lead@example.org --dry-run
      etl migrate helpscout --mailbox 1 --fallback-user lead@example.org
    """
    from etl.sources.helpscout import HelpScoutReader

    reader = HelpScoutReader(source_url or "", source_client_id or "", source_client_secret or "")
    run_migration("helpscout", reader, settings)


@migrate_group.command("freshdesk")
@click.option(
    "--source-url",
    envvar="FRESHDESK_URL",
    metavar="URL",
    help="The account's address, e.g. https://acme.freshdesk.com [env FRESHDESK_URL]",
)
@click.option(
    "--source-api-key",
    envvar="FRESHDESK_API_KEY",
    metavar="KEY",
    help="An agent's API key (Profile settings); prefer the variable, which no process list "
    "shows [env FRESHDESK_API_KEY]",
)
@migrate_options
def migrate_freshdesk(source_url, source_api_key, **settings):
    """Migrate Freshdesk tickets with every conversation, attachment and inline image.

    \b
    Every contact comes first (with companies and custom fields), then the tickets from the
    API v2 by updated_since with their conversations; closing dates
    from the ticket stats (closed_at, resolved_at). Spam and deleted tickets are left out and
    counted. Agents are matched by email to the target's users; the replies of the others
    are written by --fallback-user. The API key comes from --source-api-key or
    FRESHDESK_API_KEY; it is never stored.

    \b
    Example:
      export FRESHDESK_API_KEY=...
      etl migrate freshdesk --source-url https://acme.freshdesk.com --mailbox 1 --dry-run
      etl migrate freshdesk --source-url https://acme.freshdesk.com --mailbox 1
    """
    from etl.sources.freshdesk import FreshdeskReader

    reader = FreshdeskReader(source_url or "", source_api_key or "")
    run_migration("freshdesk", reader, settings)


def demo_migration(db: str, tickets: int, quiet: bool) -> None:
    """`etl demo --migrate`: a Zendesk sandbox into an empty Smarticks sandbox, then a delta."""
    from etl import migrate
    from etl.sandbox import Sandbox
    from etl.sandbox.zendesk import ZendeskSandbox
    from etl.sources.zendesk import ZendeskReader
    from etl.staging import files_folder

    fallback = "admin@support.example.org"
    for suffix in ("", "-wal", "-shm"):
        Path(db + suffix).unlink(missing_ok=True)
    shutil.rmtree(files_folder(db), ignore_errors=True)
    with ZendeskSandbox(seed=1, tickets=tickets) as zendesk, Sandbox(empty=True) as target:
        say(quiet, f"Zendesk sandbox at {zendesk.url}, empty Smarticks sandbox at {target.url}")
        say(quiet, f"  etl migrate zendesk --source-url {zendesk.url} --mailbox 1 "
                   f"--fallback-user {fallback}\n")  # fmt: skip
        options = migrate.SendOptions(1, fallback, workers=4)

        def run() -> None:
            reader = ZendeskReader(zendesk.url, zendesk.email, zendesk.token)
            client = make_client(target.url, target.api_key)
            report = _migrate_locked("zendesk", reader, client, db, None, options, quiet)
            for line in report.lines():
                say(quiet, line)

        run()
        ticket = next(t for t in zendesk.store.tickets.values() if t.status == "open")
        zendesk.store.add_comment(ticket.id, ticket.requester_id, "Any news on this?")
        zendesk.store.settle()  # a minute passes: Zendesk's export holds back the last one
        say(quiet, f"\nAfter cut-over the customer of ticket {ticket.id} wrote again; rerun:")
        run()
    say(quiet, f"\nThe staging and the ledger are in {Path(db).resolve()}")


COMMANDS = [migrate_group]
