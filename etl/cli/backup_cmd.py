"""`etl backup` (sync, then a snapshot) and `etl restore` (a snapshot back in place)."""

from __future__ import annotations

import time
from pathlib import Path

import click

from etl import backup, files, mirror
from etl.cli.common import (
    attachments_option,
    connection_options,
    db_option,
    make_client,
    quiet_option,
    rebind_option,
    say,
)
from etl.cli.sync_cmd import run_sync, summary_lines
from etl.redact import redact_url
from etl.sync import SyncOptions


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
@attachments_option
@rebind_option
@quiet_option
def backup_command(url, api_key, db, directory, keep, full, no_sync, attachments, rebind, quiet):
    """Sync, then write a consistent snapshot of the mirror named by UTC time.

    Snapshots are SQLite files (`<db name>-YYYYMMDDThhmmssZ.db`) made with VACUUM INTO, safe
    while other processes read or write the mirror, checked before they take their name, and
    readable by their owner only. The attachment files the mirror holds (see --attachments)
    go to the snapshot's own `-files` folder beside it, as hard links where possible. A
    snapshot opens as a mirror (`etl export --db SNAPSHOT ...`); `etl restore SNAPSHOT` puts
    it back in place of the mirror.

    \b
    Example:
      etl backup --dir backups/ --keep 14 --attachments
      # nightly at 02:30 (crontab -e); etl.env (chmod 600) exports SMARTICKS_URL/_API_KEY:
      30 2 * * * cd /srv/helpdesk && . ./etl.env && etl backup --dir backups --keep 14 -q
    """
    if not no_sync:
        client = make_client(url, api_key, quiet)
        started = time.monotonic()
        options = SyncOptions(full=full)
        result = run_sync(client, db, options, quiet, "backup", rebind, attachments)
        say(quiet, f"Synced {redact_url(client.url)} into {db}")
        for line in summary_lines(result, time.monotonic() - started):
            say(quiet, "  " + line)
    if not Path(db).is_file():
        raise click.ClickException(f"no mirror at {db}: run `etl sync` first")
    # Opening runs the schema hooks (a mirror made by an older version gains what it lacks).
    mirror.open_mirror(db).conn.close()
    done = backup.backup(db, directory, keep)
    path = done.path
    held = files.count_files(files.folder_for(path))
    with_files = f", {held} attachment files" if held else ""
    say(quiet, f"Snapshot {path} ({path.stat().st_size / 1e6:.1f} MB{with_files})")
    for old in done.pruned:
        say(quiet, f"  removed {old}")
    for left in done.leftovers:
        say(quiet, f"  removed {left}, left by a backup that did not finish")


@click.command("restore")
@click.argument("snapshot", type=click.Path(dir_okay=False))
@db_option
@quiet_option
def restore_command(snapshot, db, quiet):
    """Put a snapshot in place of the mirror, with its attachment files.

    Refuses while a sync or another program has the mirror open. The old mirror is kept
    beside it (`<db name>-before-restore-<UTC time>.db`) until you delete it.

    \b
    Example:
      etl restore backups/smarticks-20261125T023000Z.db --db smarticks.db
    """
    from etl.restore import restore

    done = restore(snapshot, db)
    held = f"{done.conversations} conversations, {done.files} attachment files"
    say(quiet, f"Restored {snapshot} as {db}: {held}")
    if done.missing_files:
        click.echo(
            f"warning: {done.missing_files} attachment files named by the snapshot were not "
            f"beside it; `etl sync --attachments` fetches them again",
            err=True,
        )
    if done.previous is not None:
        say(quiet, f"  the previous mirror is kept as {done.previous}")


COMMANDS = [backup_command, restore_command]
