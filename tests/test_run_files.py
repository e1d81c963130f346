"""A run's record holds its attachment work: files downloaded, bytes, held, gone and failed
(`etl sync --attachments`), and the timelogs a backfill read, in `etl status` and its JSON."""

from __future__ import annotations

import json

import pytest
from helpers_mirror import run_cli

from etl import mirror
from etl.sync import SyncResult, continued

CAP = 16 * 1024  # the sandbox's seeded files are at most this long


def status_json(capsys, db) -> dict:
    code, out, err = run_cli(capsys, "status", "--json", "--db", db)
    assert code == 0, err
    return json.loads(out)


def files_sandbox(sandbox_factory, unfetchable: bool = False):
    """A sandbox serving its seeded files; one of them is gone, one (if asked) cannot be
    fetched at all (a file URL that is not http)."""
    sandbox = sandbox_factory(seed=5, conversations=40, attachment_files=CAP)
    store = sandbox.store
    ids = sorted(store.attachments)
    store.attachments[ids[0]].generated = False  # 404 from now on
    if unfetchable:
        store.attachments[ids[1]].file_url = "ftp://files.example.test/a.pdf"
        store._conv_cache.clear()  # the URLs are in the conversations' cached JSON
    return sandbox, ids


def test_a_sync_with_attachments_records_its_files_in_the_run(
    sandbox_factory, tmp_path, capsys, monkeypatch
):
    sandbox, ids = files_sandbox(sandbox_factory)
    monkeypatch.setenv("SMARTICKS_URL", sandbox.url)
    monkeypatch.setenv("SMARTICKS_API_KEY", sandbox.api_key)
    db = tmp_path / "m.db"
    code, out, err = run_cli(capsys, "sync", "--attachments", "--db", db)
    assert code == 0, err
    report = status_json(capsys, db)
    run = report["runs"][0]
    held = report["files"]
    assert held["files"] == len(ids) - 1 > 10
    assert run["status"] == "completed" and run["ended_at"]
    files = {k: v for k, v in run["counts"].items() if k.startswith("files_")}
    assert files == {
        "files_downloaded": held["files"],
        "files_bytes": held["bytes"],
        "files_duplicates": 0,
        "files_held": 0,
        "files_gone": 1,
        "files_failed": 0,
    }
    assert run["counts"]["conversations"] == 40
    assert run["requests"] == len(sandbox.request_log)  # the file downloads included

    asked = len(sandbox.request_log)
    code, out, err = run_cli(capsys, "sync", "--attachments", "--db", db)
    assert code == 0, err
    again = status_json(capsys, db)["runs"][0]
    assert again["id"] == run["id"] + 1
    assert {k: v for k, v in again["counts"].items() if k.startswith("files_")} == {
        "files_downloaded": 0,
        "files_bytes": 0,
        "files_duplicates": 0,
        "files_held": held["files"],
        "files_gone": 1,  # asked again: it may be back
        "files_failed": 0,
    }
    assert again["requests"] == len(sandbox.request_log) - asked

    code, out, err = run_cli(capsys, "status", "--db", db)
    assert code == 0, err
    lines = out.splitlines()
    first = lines.index(next(line for line in lines if line.startswith(f"  #{run['id']} ")))
    total = sum(
        v for k, v in run["counts"].items() if not k.startswith("files_") and "deleted" not in k
    )
    assert f": {total} records, {run['requests']} requests" in lines[first]
    assert lines[first + 1] == (
        f"      files: {held['files']} downloaded ({held['bytes'] / 1e6:.1f} MB), 0 held, "
        "1 gone at the source"
    )
    assert (
        lines[first - 1]
        == f"      files: 0 downloaded (0.0 MB), {held['files']} held, 1 gone at the source"
    )


def test_files_that_fail_make_the_run_failed_with_their_counts_and_error(
    sandbox_factory, tmp_path, capsys, monkeypatch
):
    sandbox, ids = files_sandbox(sandbox_factory, unfetchable=True)
    monkeypatch.setenv("SMARTICKS_URL", sandbox.url)
    monkeypatch.setenv("SMARTICKS_API_KEY", sandbox.api_key)
    db = tmp_path / "m.db"
    code, out, err = run_cli(capsys, "sync", "--attachments", "--db", db)
    assert code == 1
    error = err.strip().removeprefix("Error: ")
    assert error.startswith("1 attachment files could not be downloaded")
    report = status_json(capsys, db)
    run = report["runs"][0]
    assert run["status"] == "failed" and run["errors"] == [error]
    assert run["counts"]["files_failed"] == 1 and run["counts"]["files_gone"] == 1
    assert run["counts"]["files_downloaded"] == report["files"]["files"] == len(ids) - 2
    assert run["counts"]["conversations"] == 40  # the sync's own counts stay


def test_work_after_the_sync_marks_its_run_running_then_adds_to_it_however_it_ends():
    database = mirror.open_mirror(":memory:")
    conn = database.conn
    result = SyncResult(run_id=mirror.start_run(conn, "sync", False))
    mirror.finish_run(conn, result.run_id, "completed", {"conversations": 5}, 7, [])
    seen = {}
    with pytest.raises(KeyboardInterrupt):
        with continued(conn, result, lambda: {"timelogs": 3, "files_downloaded": 2}, lambda: 4):
            seen["during"] = mirror.recent_runs(conn, 1)[0]["status"]
            raise KeyboardInterrupt
    run = mirror.recent_runs(conn, 1)[0]
    assert seen["during"] == "running"
    assert run["status"] == "interrupted" == result.status
    assert json.loads(run["counts"]) == {"conversations": 5, "timelogs": 3, "files_downloaded": 2}
    assert run["requests"] == 11 and json.loads(run["errors"]) == ["interrupted"]
