"""A backup killed with kill -9 leaves `.part` files; the next backup clears them, and never
those of a backup still running."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

from helpers_mirror import run_cli

from etl import backup, files, mirror
from etl.client import Client
from etl.lock import let_go, try_hold
from etl.sync import SyncOptions, sync

# `etl backup` in its own process, stopped for good once its snapshot and the snapshot's
# files folder are written under their `.part` names: the moment to kill it.
STALLED_BACKUP = textwrap.dedent(
    """
    import sys, time
    from etl import files
    from etl.cli import main

    carry = files.carry_files

    def carry_then_stall(*args, **kwargs):
        carried = carry(*args, **kwargs)
        print("written", flush=True)
        time.sleep(600)
        return carried

    files.carry_files = carry_then_stall
    main(sys.argv[1:])
    """
)


def mirror_with_files(sandbox_factory, db: Path) -> None:
    """A mirror holding attachment files, so a snapshot has a files folder too."""
    sandbox = sandbox_factory(seed=7, conversations=30, attachment_files=4096)
    client = Client(sandbox.url, sandbox.api_key)
    opened = mirror.open_mirror(db)
    try:
        sync(client, opened.conn, SyncOptions())
        assert files.fetch_files(client, opened.conn, db).files > 0
    finally:
        opened.conn.close()


def start_stalled_backup(db: Path, folder: Path) -> subprocess.Popen:
    command = [sys.executable, "-c", STALLED_BACKUP, "backup", "--no-sync", "--db", str(db)]
    process = subprocess.Popen(
        [*command, "--dir", str(folder)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    line = process.stdout.readline()  # blocks until the .part files are written
    assert line == "written\n", process.communicate(timeout=30)
    return process


def names(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir())


def test_a_backup_killed_mid_way_leaves_parts_the_next_one_removes_and_names(
    sandbox_factory, tmp_path, capsys
):
    db = tmp_path / "smarticks.db"
    mirror_with_files(sandbox_factory, db)
    folder = tmp_path / "backups"
    process = start_stalled_backup(db, folder)
    try:
        running = names(folder)
        # A backup run beside it leaves the running one's files alone.
        code, out, err = run_cli(capsys, "backup", "--no-sync", "--db", db, "--dir", folder)
        assert code == 0, err
        assert "did not finish" not in out
        assert all((folder / name).exists() for name in running)
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    stem = next(n for n in running if n.endswith(".db.part")).removesuffix(".db.part")
    assert running == [f"{stem}-files.part", f"{stem}.db.part", f"{stem}.db.part.lock"]
    assert len(backup.snapshots(folder)) == 1  # the one beside it; the killed one has none

    code, out, err = run_cli(capsys, "backup", "--no-sync", "--db", db, "--dir", folder)
    assert code == 0, err
    removed = [line for line in out.splitlines() if "did not finish" in line]
    assert removed == [
        f"  removed {folder / stem}-files.part, left by a backup that did not finish",
        f"  removed {folder / stem}.db.part, left by a backup that did not finish",
    ]
    snapshots = backup.snapshots(folder)
    assert len(snapshots) == 2
    held = [[p.name, files.folder_for(p).name] for p in snapshots]
    assert names(folder) == sorted(name for pair in held for name in pair)


def test_leftovers_of_an_older_version_or_a_dead_rename_go_and_nothing_else(tmp_path):
    db = tmp_path / "smarticks.db"
    sqlite3.connect(db).execute("CREATE TABLE t (x)").connection.close()
    folder = tmp_path / "b"
    folder.mkdir()
    dead = "smarticks-20240501T031500Z"
    planted_files = [f"{dead}.db.part", f"{dead}.db.part-wal", f"{dead}.db.part-shm"]
    planted_files += ["smarticks-20240501T031501Z-2.db.part"]
    planted_folders = [f"{dead}-files.part", "smarticks-20240501T031502Z-files"]  # no .db
    strangers = ["other-20240501T031500Z.db.part", "smarticks-latest.db.part", "notes.txt"]
    kept_snapshot = "smarticks-20240501T031503Z.db"  # a whole snapshot with its folder
    for name in [*planted_files, *strangers, kept_snapshot]:
        (folder / name).write_text("x")
    for name in [*planted_folders, "smarticks-20240501T031503Z-files"]:
        (folder / name / "ab").mkdir(parents=True)
        (folder / name / "ab" / "abcd").write_text("x")
    (folder / "smarticks-20240501T031502Z.db.part").write_text("x")  # killed before its link

    done = backup.backup(db, folder)
    assert sorted(p.name for p in done.leftovers) == sorted(
        [*planted_files, *planted_folders, "smarticks-20240501T031502Z.db.part"]
    )
    assert names(folder) == sorted(
        [
            *strangers,
            kept_snapshot,
            "smarticks-20240501T031503Z-files",
            done.path.name,
        ]
    )
    assert backup.backup(db, folder).leftovers == []


def test_the_lock_of_a_running_backup_keeps_its_parts(tmp_path):
    folder = tmp_path / "b"
    folder.mkdir()
    name = "smarticks-20240501T031500Z"
    (folder / f"{name}.db.part").write_text("being written")
    running = try_hold(folder / f"{name}.db.part.lock")  # as a live backup holds it
    try:
        assert backup.clear_leftovers(folder) == []
        assert (folder / f"{name}.db.part").exists()
    finally:
        let_go(running)
    assert backup.clear_leftovers(folder) == [folder / f"{name}.db.part"]
    assert list(folder.iterdir()) == []
