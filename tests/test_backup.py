"""`etl backup`: sync, then a consistent snapshot named by UTC time, keeping the newest N."""

from __future__ import annotations

import sqlite3
import stat
import subprocess
import sys
import threading
from datetime import UTC, datetime

import pytest
from helpers_mirror import scalar, sync_into

from etl import backup
from etl.cli import main


def run(capsys, *args):
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


def test_backup_keep_2_run_three_times_leaves_two_snapshots_holding_the_data(
    sandbox, tmp_path, capsys, monkeypatch
):
    monkeypatch.setenv("SMARTICKS_URL", sandbox.url)
    monkeypatch.setenv("SMARTICKS_API_KEY", sandbox.api_key)
    db = tmp_path / "smarticks.db"
    folder = tmp_path / "backups"
    made = []
    for run_number in range(3):
        if run_number == 2:
            sandbox.store.update_conversation(1, subject="Changed before the third backup")
        code, out, err = run(capsys, "backup", "--db", str(db), "--dir", str(folder), "--keep", "2")
        assert code == 0, err
        made.append(out.split("Snapshot ", 1)[1].split(" (")[0])
    left = backup.snapshots(folder)
    assert [str(p) for p in left] == made[1:]  # the oldest went
    assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in left)
    for path in left:
        assert backup._pattern("smarticks").match(path.name)
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            assert conn.execute("SELECT count(*) FROM conversations").fetchone()[0] == 120
            assert conn.execute("SELECT count(*) FROM threads").fetchone()[0] > 120
            runs = conn.execute("SELECT count(*) FROM etl_runs WHERE command = 'backup'")
            assert runs.fetchone()[0] >= 2  # each snapshot follows its own sync
        finally:
            conn.close()
        assert sandbox.api_key.encode() not in path.read_bytes()
    newest = left[-1]
    assert scalar(newest, "SELECT subject FROM conversations WHERE id = 1") == (
        "Changed before the third backup"
    )


def test_a_snapshot_is_consistent_while_another_connection_writes(sandbox, tmp_path):
    db = tmp_path / "smarticks.db"
    sync_into(sandbox, db)
    writer = sqlite3.connect(db)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("UPDATE conversations SET status = 'uncommitted' WHERE id = 1")
    try:
        path = backup.snapshot(db, tmp_path / "b")
    finally:
        writer.rollback()
        writer.close()
    assert scalar(path, "SELECT count(*) FROM conversations WHERE status = 'uncommitted'") == 0
    assert scalar(path, "SELECT count(*) FROM conversations") == 120
    assert open(path, "rb").read(20)[18:20] == b"\x01\x01"  # one self-contained file, no WAL


def test_snapshots_are_named_by_utc_time_and_pruning_touches_nothing_else(tmp_path):
    db = tmp_path / "smarticks.db"
    sqlite3.connect(db).execute("CREATE TABLE t (x)").connection.close()
    folder = tmp_path / "b"
    folder.mkdir()
    strangers = ["notes.txt", "other-20200101T000000Z.db", "smarticks-latest.db"]
    for name in strangers:
        (folder / name).write_text("keep me")
    moment = datetime(2024, 5, 1, 3, 15, 0, tzinfo=UTC)
    first = backup.snapshot(db, folder, now=moment)
    second = backup.snapshot(db, folder, now=moment)  # same second: numbered, still ordered
    done = backup.backup(db, folder, keep=2, now=datetime(2024, 5, 2, tzinfo=UTC))
    later, removed = done.path, done.pruned
    assert first.name == "smarticks-20240501T031500Z.db"
    assert second.name == "smarticks-20240501T031500Z-1.db"
    assert later.name == "smarticks-20240502T000000Z.db"
    assert removed == [first]
    assert backup.snapshots(folder) == [second, later]
    assert sorted(p.name for p in folder.iterdir()) == sorted([*strangers, second.name, later.name])


def test_backup_errors_are_one_line(tmp_path, capsys):
    code, _, err = run(
        capsys, "backup", "--no-sync", "--db", str(tmp_path / "none.db"), "--dir", str(tmp_path)
    )
    assert (
        code == 1
        and err.strip() == f"Error: no mirror at {tmp_path / 'none.db'}: run `etl sync` first"
    )
    code, _, err = run(capsys, "backup", "--no-sync", "--dir", str(tmp_path), "--keep", "0")
    assert code == 2 and "--keep" in err and "Traceback" not in err


def _whole(path) -> bool:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        checked = conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        return checked and conn.execute("SELECT count(*) FROM conversations").fetchone()[0] == 120
    finally:
        conn.close()


def test_two_backups_started_in_the_same_second_write_two_whole_private_snapshots(
    sandbox, tmp_path
):
    db = tmp_path / "smarticks.db"
    sync_into(sandbox, db)
    folder = tmp_path / "b"
    made = []
    for round_number in range(5):
        moment = datetime(2024, 5, 1, 3, 15, round_number, tzinfo=UTC)
        barrier = threading.Barrier(2)

        def one(moment=moment, barrier=barrier):
            barrier.wait()
            made.append(backup.snapshot(db, folder, now=moment))

        threads = [threading.Thread(target=one) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert len(made) == len(set(made)) == 10
    assert sorted(backup.snapshots(folder)) == sorted(made)
    assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in made)  # no .part
    for path in made:
        assert _whole(path)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_two_backup_commands_started_together_both_succeed_with_their_own_snapshot(
    sandbox, tmp_path
):
    db = tmp_path / "smarticks.db"
    sync_into(sandbox, db)
    folder = tmp_path / "b"
    command = [sys.executable, "-m", "etl", "backup", "--no-sync", "--db", str(db)]
    for _ in range(3):
        started = [
            subprocess.Popen([*command, "--dir", str(folder)], stdout=subprocess.PIPE, text=True)
            for _ in range(2)
        ]
        said = [process.communicate(timeout=120)[0] for process in started]
        assert [process.returncode for process in started] == [0, 0]
        names = [out.split("Snapshot ", 1)[1].split(" (")[0] for out in said]
        assert names[0] != names[1]
    left = backup.snapshots(folder)
    assert len(left) == 6 and all(_whole(path) for path in left)
    assert len(list(folder.iterdir())) == 6


def test_a_snapshot_that_does_not_check_clean_leaves_nothing_behind(sandbox, tmp_path, monkeypatch):
    db = tmp_path / "smarticks.db"
    sync_into(sandbox, db)
    folder = tmp_path / "b"
    real = backup._tables
    monkeypatch.setattr(backup, "_tables", lambda conn: [*real(conn), "a_table_it_lacks"])
    with pytest.raises(backup.BackupError, match="cannot open a_table_it_lacks"):
        backup.snapshot(db, folder)
    assert list(folder.iterdir()) == []
    assert backup.snapshots(folder) == []
