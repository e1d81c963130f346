"""Output for scripts: plain JSON objects, and quiet ends when the reader goes away."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys

import pytest
from helpers_mirror import sync_into

from etl import views
from etl.cli import main


def test_status_json_is_plain_json_objects_not_json_text_in_strings(sandbox, tmp_path, capsys):
    db = tmp_path / "m.db"
    sync_into(sandbox, db)
    with pytest.raises(SystemExit) as exited:
        main(["status", "--json", "--db", str(db)])
    assert exited.value.code == 0
    report = json.loads(capsys.readouterr().out)
    run = report["runs"][0]
    assert run["status"] == "completed" and run["errors"] == []
    assert run["counts"]["conversations"] == 120
    assert report["rows"]["conversations"] == 120


@pytest.mark.parametrize(
    "command",
    [["status"], ["status", "--json"], ["search", "the", "--json"], ["--help"]],
)
def test_a_command_whose_reader_went_away_ends_quietly_with_exit_0(sandbox, tmp_path, command):
    """As `etl status | head -1` does once head has its line: here the pipe is closed at once."""
    db = tmp_path / "m.db"
    sync_into(sandbox, db)
    read_end, write_end = os.pipe()
    os.close(read_end)  # every write to the pipe now fails with EPIPE
    try:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "etl",
                *command,
                *(["--db", str(db)] if command[0] != "--help" else []),
            ],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
        )
    finally:
        os.close(write_end)
    assert (done.returncode, done.stderr) == (0, "")


def test_right_after_a_first_sync_the_sheet_views_have_the_custom_field_columns(
    sandbox, tmp_path, monkeypatch
):
    """So `datasette smarticks.db` shows what the spreadsheet shows, without another command."""
    monkeypatch.setenv("SMARTICKS_URL", sandbox.url)
    monkeypatch.setenv("SMARTICKS_API_KEY", sandbox.api_key)
    db = tmp_path / "smarticks.db"
    with pytest.raises(SystemExit) as exited:
        main(["sync", "-q", "--db", str(db)])
    assert exited.value.code == 0
    conn = sqlite3.connect(db)  # a plain reader, as datasette opens it
    try:
        fields = {row[0] for row in conn.execute("SELECT name FROM custom_fields")}
        columns = {row[1] for row in conn.execute("PRAGMA table_info(conversations_sheet)")}
        assert fields and fields <= columns
        assert views.refresh_views(conn) == []  # nothing was stale
    finally:
        conn.close()
