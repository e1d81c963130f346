"""`etl restore SNAPSHOT` puts a snapshot in place of the mirror, safely."""

from __future__ import annotations

import sqlite3

import pytest
from helpers_mirror import scalar, sync_into

from etl import backup, lock
from etl.cli import main


def run(capsys, *args):
    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in args])
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


def test_restore_puts_the_snapshot_in_place_and_keeps_the_old_mirror(sandbox, tmp_path, capsys):
    db = tmp_path / "smarticks.db"
    sync_into(sandbox, db)
    snap = backup.snapshot(db, tmp_path / "backups")
    sandbox.store.update_conversation(1, subject="after the snapshot")
    sync_into(sandbox, db)
    assert scalar(db, "SELECT subject FROM conversations WHERE id = 1") == "after the snapshot"

    code, out, err = run(capsys, "restore", snap, "--db", db)
    assert code == 0, err
    assert scalar(db, "SELECT subject FROM conversations WHERE id = 1") != "after the snapshot"
    kept = [p for p in tmp_path.iterdir() if p.name.startswith("smarticks-before-restore-")]
    assert len(kept) == 1 and f"kept as {kept[0]}" in out
    assert scalar(kept[0], "SELECT subject FROM conversations WHERE id = 1") == (
        "after the snapshot"
    )
    assert not (tmp_path / "smarticks.db-wal").exists()
    assert scalar(db, "PRAGMA integrity_check") == "ok"
    code, out, err = run(capsys, "status", "--db", db)  # a mirror again
    assert code == 0 and "conversations" in out


def test_restore_refuses_while_a_writer_holds_the_mirror_and_changes_nothing(
    sandbox, tmp_path, capsys
):
    db = tmp_path / "smarticks.db"
    sync_into(sandbox, db)
    snap = backup.snapshot(db, tmp_path / "backups")
    with lock.writer_lock(db):
        before = sorted(p.name for p in tmp_path.iterdir())
        code, _, err = run(capsys, "restore", snap, "--db", db)
    assert code == 5 and "another etl process is writing" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_restore_refuses_while_another_program_reads_the_mirror(sandbox, tmp_path, capsys):
    db = tmp_path / "smarticks.db"
    sync_into(sandbox, db)
    snap = backup.snapshot(db, tmp_path / "backups")
    reader = sqlite3.connect(db)
    reader.execute("SELECT count(*) FROM conversations").fetchone()
    try:
        code, _, err = run(capsys, "restore", snap, "--db", db)
    finally:
        reader.close()
    assert code == 5 and "another program has" in err
    assert not [p for p in tmp_path.iterdir() if "restore" in p.name]


def test_restoring_what_is_not_a_snapshot_is_one_line(tmp_path, capsys):
    notes = tmp_path / "notes.db"
    notes.write_text("not a database")
    code, _, err = run(capsys, "restore", notes, "--db", tmp_path / "m.db")
    assert code == 2 and err.startswith(f"Error: {notes} is not a snapshot of a mirror")
