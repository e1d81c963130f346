"""`etl load customers|conversations`, `etl mapping init` and `etl verify`."""

from __future__ import annotations

import functools
from pathlib import Path

import click

from etl import lock, mirror
from etl.cli.common import connection_options, db_option, make_client, quiet_option, say
from etl.load import CONVERSATIONS, CUSTOMERS, LoadFailed, LoadOptions, load
from etl.progress import bars
from etl.redact import redact_url

EXIT_REJECTED = 3


def load_options(func):
    """The options every `etl load` command shares."""

    @click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
    @click.option(
        "--mapping",
        default="generic",
        show_default=True,
        metavar="NAME|PATH",
        help="A shipped mapping (smarticks, zendesk, freshdesk, helpscout, intercom, generic) "
        "or a .toml file; a name resolves to mappings/NAME.toml.",
    )
    @click.option("--dry-run", is_flag=True, help="Validate and report; send nothing.")
    @click.option(
        "--rejects",
        type=click.Path(dir_okay=False, path_type=Path),
        metavar="PATH",
        help="Where rejected rows go [default: FILESTEM.rejects.csv here].",
    )
    @click.option("--limit", type=click.IntRange(min=0), metavar="N", help="Send only N records.")
    @click.option(
        "--workers",
        default=1,
        show_default=True,
        type=click.IntRange(1, 32),
        metavar="N",
        help="Concurrent creates (429s still hold every worker back).",
    )
    @click.option("--retry-rejects", is_flag=True, help="Load only rows rejected before.")
    @click.option("--encoding", metavar="NAME", help="Text encoding, e.g. cp1252 [default utf-8].")
    @click.option(
        "--timezone",
        metavar="ZONE",
        help="Zone of timestamps without an offset, e.g. Europe/Paris (overrides the mapping).",
    )
    @click.option("--sheet", metavar="NAME", help="XLSX: the sheet to read [default: the first].")
    @connection_options
    @db_option
    @quiet_option
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        return func(*args, **kwargs)

    return wrapper


def run_load(kind: str, file: Path, url, api_key, db, quiet, **settings) -> None:
    """Lock the database, load, print the summary; exit 3 when any row was rejected."""
    client = make_client(url, api_key, quiet)
    options = LoadOptions(
        kind=kind,
        mapping=settings["mapping"],
        mailbox_id=settings.get("mailbox"),
        dry_run=settings["dry_run"],
        rejects_path=settings["rejects"],
        limit=settings["limit"],
        workers=settings["workers"],
        fallback_user=settings.get("fallback_user"),
        retry_rejects=settings["retry_rejects"],
        encoding=settings["encoding"],
        timezone=settings["timezone"],
        sheet=settings["sheet"],
        customer_fields=field_ids(settings.get("customer_fields") or ()),
    )
    with lock.writer_lock(db):
        database = mirror.open_mirror(db)
        try:
            report = load(client, database.conn, file, options, progress=bars(quiet))
        except LoadFailed as exc:
            for line in exc.report.lines():  # what was done before the failure
                say(quiet, line)
            raise
        finally:
            database.conn.close()
            client.close()
    for line in report.lines():
        say(quiet, line)
    if report.rejected:
        click.get_current_context().exit(EXIT_REJECTED)


def field_ids(pairs) -> dict[str, int]:
    out = {}
    for pair in pairs:
        name, _, ident = pair.rpartition("=")
        if not name.strip() or not ident.strip().isdigit():
            raise click.BadParameter(f"{pair!r}: expected NAME=ID", param_hint="--customer-field")
        out[name.strip()] = int(ident)
    return out


@click.group("load")
def load_group() -> None:
    """Migrate customers and conversations into Smarticks, exactly once.

    \b
    Every create is sent with imported=true: nobody is emailed or notified.
    A ledger in --db makes reruns safe: nothing is created twice.
    Each run writes FILESTEM.report.csv (one row per record) beside the rejects file.
    Exit status: 0 loaded, 3 some rows rejected (see the rejects file), 2 the file cannot
    load as it is (one line says what to fix; nothing was sent), 1 failed.

    \b
    Example:
      etl load customers customers.csv --dry-run
      etl load conversations tickets.json --mapping zendesk --mailbox 1 --fallback-user a@x.org
    """


@load_group.command("conversations")
@load_options
@click.option("--mailbox", type=int, metavar="ID", help="Target mailbox id.")
@click.option(
    "--fallback-user",
    metavar="EMAIL",
    help="Agent to use for assignees and authors who are not users on the target.",
)
def load_conversations(file, url, api_key, db, quiet, **settings):
    """Load conversations with their threads, tags and custom fields from FILE.

    \b
    Threads keep their dates and order; lineitem (system) threads are skipped and counted.
    Rows with problems go to the rejects file with file, row, field and reason.

    \b
    Example:
      etl load conversations export.jsonl --mapping smarticks --dry-run
      etl load conversations tickets.csv --mapping freshdesk --timezone America/New_York \\
          --mailbox 2 --fallback-user support-lead@example.org --workers 8
    """
    run_load(CONVERSATIONS, file, url, api_key, db, quiet, **settings)


@load_group.command("customers")
@load_options
@click.option(
    "--customer-field",
    "customer_fields",
    multiple=True,
    metavar="NAME=ID",
    help="The target's id of a customer field (repeatable); needed for a field that no "
    "customer on the target has a value for yet, since the API lists no field definitions.",
)
def load_customers(file, url, api_key, db, quiet, **settings):
    """Load customers from FILE; an email the target knows already is reused, never duplicated.

    \b
    Example:
      etl load customers customers.jsonl --mapping smarticks
      etl load customers contacts.xlsx --mapping my-contacts.toml --dry-run
    """
    run_load(CUSTOMERS, file, url, api_key, db, quiet, **settings)


@click.group("mapping")
def mapping_group() -> None:
    """Work with mapping files (how a source's columns become Smarticks fields).

    \b
    Example:
      etl mapping init tickets.csv --output mappings/mine.toml
    """


@mapping_group.command("init")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--kind",
    type=click.Choice([CONVERSATIONS, CUSTOMERS]),
    default=CONVERSATIONS,
    show_default=True,
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="PATH",
    help="Write the draft here instead of printing it.",
)
@click.option("--force", is_flag=True, help="Overwrite --output if it exists.")
@click.option("--encoding", metavar="NAME", help="Text encoding of FILE [default utf-8].")
def mapping_init(file, kind, output, force, encoding):
    """Draft a mapping from FILE's headers (or JSON keys) for you to edit.

    \b
    Example:
      etl mapping init tickets.csv -o mappings/helpdesk.toml
      etl load conversations tickets.csv --mapping mappings/helpdesk.toml --dry-run
    """
    from etl.mapping import draft_mapping
    from etl.readers import sample

    records = sample(file, encoding=encoding)
    if not records:
        raise click.ClickException(f"{file}: no readable rows to draft a mapping from")
    draft = draft_mapping(file.name, records, kind)
    if output is None:
        click.echo(draft, nl=False)
        return
    if output.exists() and not force:
        raise click.ClickException(f"{output} exists; pass --force to overwrite it")
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(draft, encoding="utf-8")
    click.echo(
        f"Wrote {output}; edit it, then: etl load {kind} {file} --mapping {output} --dry-run"
    )


@click.command("verify")
@connection_options
@db_option
@click.option("--system", metavar="NAME", help="Only records loaded from this source system.")
@click.option(
    "--kind",
    type=click.Choice([CONVERSATIONS, CUSTOMERS, "all"]),
    default="all",
    show_default=True,
)
@click.option("--workers", default=4, show_default=True, type=click.IntRange(1, 32))
@click.option(
    "--files",
    is_flag=True,
    help="Also download every attachment from the target and compare its sha256.",
)
@quiet_option
def verify_command(url, api_key, db, system, kind, workers, files, quiet):
    """Compare what the load ledger says was loaded with the target; list every difference.

    Checks subject, customer, status, type, dates, mailbox, assignee, tags and every thread
    (type, date, body, and its attachments' names and sizes; their content with --files).
    Exit status 1 when anything differs.

    \b
    Example:
      etl verify --db migration.db --files
    """
    from pathlib import Path as _Path

    from etl.verify import verify

    if not _Path(db).exists():
        raise click.ClickException(f"no database at {db}: nothing was loaded with it")
    client = make_client(url, api_key, quiet)
    database = mirror.open_mirror(db)
    try:
        kinds = [CONVERSATIONS, CUSTOMERS] if kind == "all" else [kind]
        result = verify(
            client,
            database.conn,
            kinds,
            system=system,
            workers=workers,
            progress=bars(quiet),
            files=files,
        )
    finally:
        database.conn.close()
        client.close()
    for difference in result.differences:
        click.echo(difference.line())
    say(
        quiet,
        f"Verified {result.checked} records loaded into {redact_url(client.url)}: "
        f"{len(result.differences)} differences.",
    )
    if result.files:
        how = (
            f"and {result.downloaded} by content (sha256, {result.bytes:,} bytes downloaded)"
            if files
            else "(--files to compare their content too)"
        )
        say(quiet, f"Attachments: {result.files} compared by name and size {how}.")
    if result.unrecorded:
        say(
            quiet,
            f"Attachments not compared in {result.unrecorded} conversations: their ledger "
            "entries name no files (loaded by an earlier version, or found on the target).",
        )
    if result.differences:
        click.get_current_context().exit(1)


COMMANDS: list = [load_group, mapping_group, verify_command]
