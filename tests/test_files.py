"""Attachment files: fetched once each, content-addressed, carried by snapshots and restores."""

from __future__ import annotations

import base64
import hashlib
import os
import signal
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from etl import backup, files, mirror
from etl.cli import main
from etl.client import Client, RetryPolicy
from etl.sync import SyncOptions, sync

CAP = 64 * 1024  # the sandbox makes up seeded files of at most this many bytes
SAME = b"the same signature logo, attached twice\n" * 50


def run(capsys, *args):
    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in args])
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


def with_files(sandbox_factory, **options):
    """A sandbox serving its seeded files, plus two attachments with the same content and
    names that would be dangerous as paths."""
    sandbox = sandbox_factory(seed=7, conversations=60, attachment_files=CAP, **options)
    client = Client(sandbox.url, sandbox.api_key)
    data = base64.b64encode(SAME).decode()
    client.post(
        "api/conversations/1/threads",
        {
            "type": "note",
            "text": "two copies",
            "user": 1,
            "attachments": [
                {"fileName": "../../etc/passwd", "data": data},
                {"fileName": "logo.png", "mimeType": "image/png", "data": data},
            ],
        },
    )
    client.close()
    return sandbox


def file_requests(sandbox) -> int:
    return sum(1 for _, path, _ in sandbox.request_log if path.startswith("/storage/"))


def attachment_rows(db) -> list[tuple]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT id, sha256, path, size FROM attachments ORDER BY id").fetchall()
    finally:
        conn.close()


def test_sync_attachments_stores_each_file_once_by_sha256_and_a_rerun_asks_for_none(
    sandbox_factory, tmp_path, capsys, monkeypatch
):
    sandbox = with_files(sandbox_factory)
    monkeypatch.setenv("SMARTICKS_URL", sandbox.url)
    monkeypatch.setenv("SMARTICKS_API_KEY", sandbox.api_key)
    db = tmp_path / "helpdesk.db"
    code, out, err = run(capsys, "sync", "--db", db)  # rows only, no files
    assert code == 0 and file_requests(sandbox) == 0
    code, out, err = run(capsys, "sync", "--attachments", "--db", db)  # no --full needed
    assert code == 0, err
    rows = attachment_rows(db)
    served = sandbox.store.attachments
    assert len(rows) == len(served) > 10
    for ident, sha256, path, size in rows:
        item = served[ident]
        content = item.data if item.data is not None else None
        on_disk = (tmp_path / path).read_bytes()
        assert path == f"helpdesk-files/{sha256[:2]}/{sha256}"
        assert hashlib.sha256(on_disk).hexdigest() == sha256 and len(on_disk) == size
        assert content is None or content == on_disk
        assert stat.S_IMODE((tmp_path / path).stat().st_mode) == 0o600
    shas = {sha256 for _, sha256, _, _ in rows}
    stored = [p for p in (tmp_path / "helpdesk-files").rglob("*") if p.is_file()]
    assert stat.S_IMODE((tmp_path / "helpdesk-files").stat().st_mode) == 0o700
    assert len(stored) == len(shas) == len(rows) - 1  # the two copies share one file
    assert {p.name for p in stored} == shas  # no server name became a path
    assert file_requests(sandbox) == len(rows)
    assert f"files: {len(shas)} downloaded" in out and "1 the same as one held" in out

    sandbox.request_log.clear()
    code, out, err = run(capsys, "sync", "--attachments", "--db", db)
    assert code == 0, err
    assert file_requests(sandbox) == 0
    assert f"files: 0 downloaded (0.0 MB), {len(rows)} held" in out

    code, out, err = run(capsys, "status", "--db", db)
    total = sum(p.stat().st_size for p in stored)
    assert f"Attachment files: {len(shas)} files, {total / 1e6:.1f} MB in" in out
    code, out, err = run(capsys, "status", "--json", "--db", db)
    assert f'"bytes": {total}' in out


def test_downloads_are_retried_through_faults_and_a_file_gone_at_the_source_is_reported(
    sandbox_factory, tmp_path
):
    sandbox = with_files(sandbox_factory, error_rate=0.2, drop_rate=0.1, fault_paths=("/storage/",))
    gone = min(sandbox.store.attachments)
    sandbox.store.attachments[gone].generated = False  # the server answers 404 for it now
    db = tmp_path / "m.db"
    client = Client(sandbox.url, sandbox.api_key, retry=RetryPolicy(base_delay=0.01))
    database = mirror.open_mirror(db)
    try:
        sync(client, database.conn, SyncOptions())
        fetched = files.fetch_files(client, database.conn, db)
    finally:
        database.conn.close()
    assert sandbox.status_counts[500] + sandbox.status_counts[502] + sandbox.dropped_connections
    assert fetched.gone == [gone]
    rows = attachment_rows(db)
    assert [r[0] for r in rows if r[2] is None] == [gone]
    for _, sha256, path, _ in rows:
        if path:
            assert hashlib.sha256((tmp_path / path).read_bytes()).hexdigest() == sha256
    assert list((tmp_path / "m-files" / files.PARTIAL).iterdir()) == []  # no half files


def test_snapshots_carry_their_files_pruning_removes_them_and_restore_brings_them_back(
    sandbox_factory, tmp_path, capsys, monkeypatch
):
    sandbox = with_files(sandbox_factory)
    monkeypatch.setenv("SMARTICKS_URL", sandbox.url)
    monkeypatch.setenv("SMARTICKS_API_KEY", sandbox.api_key)
    db = tmp_path / "smarticks.db"
    folder = tmp_path / "bk"
    code, out, err = run(capsys, "backup", "--attachments", "--dir", folder, "--db", db)
    assert code == 0, err
    first = backup.snapshots(folder)[0]
    first_files = files.folder_for(first)
    assert first_files.name == first.stem + "-files"
    rows = attachment_rows(first)
    assert rows and all(path.startswith(f"{first_files.name}/") for _, _, path, _ in rows)
    for _, sha256, path, _ in rows:  # the snapshot, opened where it is, finds its files
        copy, original = folder / path, tmp_path / "smarticks-files" / sha256[:2] / sha256
        assert copy.stat().st_ino == original.stat().st_ino  # a hard link, not a copy
    assert "attachment files)" in out

    code, _, err = run(capsys, "backup", "--no-sync", "--dir", folder, "--keep", "1", "--db", db)
    assert code == 0, err
    assert not first.exists() and not first_files.exists()
    second = backup.snapshots(folder)[0]

    files.folder_for(db).rename(tmp_path / "lost")  # the mirror lost its files
    code, out, err = run(capsys, "restore", second, "--db", db)
    assert code == 0, err
    restored = attachment_rows(db)
    assert [(i, s) for i, s, _, _ in restored] == [(i, s) for i, s, _, _ in rows]
    for _, sha256, path, _ in restored:
        assert path == f"smarticks-files/{sha256[:2]}/{sha256}"
        assert hashlib.sha256((tmp_path / path).read_bytes()).hexdigest() == sha256
    assert Path(tmp_path / "smarticks-files").is_dir()


def test_ctrl_c_while_files_download_keeps_those_done_and_a_rerun_fetches_only_the_rest(
    sandbox_factory, tmp_path
):
    sandbox = with_files(sandbox_factory)
    db = tmp_path / "m.db"
    command = [sys.executable, "-m", "etl", "sync", "-q", "--db", str(db), "--attachments"]
    env = {**os.environ, "SMARTICKS_URL": sandbox.url, "SMARTICKS_API_KEY": sandbox.api_key}
    started = {}

    def interrupt_at_the_tenth_file(method, path, query):
        if path.startswith("/storage/") and file_requests(sandbox) == 10:
            started["process"].send_signal(signal.SIGINT)

    sandbox.on_request = interrupt_at_the_tenth_file
    started["process"] = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    _, err = started["process"].communicate(timeout=120)
    assert started["process"].returncode == 130, err
    first = file_requests(sandbox)
    held = [row for row in attachment_rows(db) if row[2]]
    assert 10 <= len(held) == first < len(sandbox.store.attachments)

    sandbox.on_request = None
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert file_requests(sandbox) == len(sandbox.store.attachments)  # none asked for twice
    assert all(row[2] for row in attachment_rows(db))
