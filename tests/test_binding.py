"""A mirror is bound to its source: a sync from another helpdesk stops before it writes."""

from __future__ import annotations

import sqlite3

import pytest

from etl import binding, mirror
from etl.cli import main


def run(capsys, *args):
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


def test_the_source_address_is_scheme_host_port_and_path_never_the_key_or_a_password():
    assert binding.source_address("HTTPS://Ann:secret@Support.Example.org:443/api/?k=1") == (
        "https://support.example.org/api"
    )
    assert binding.source_address("http://127.0.0.1:8025/") == "http://127.0.0.1:8025"


def test_a_sync_from_another_helpdesk_stops_with_exit_2_naming_both_and_writes_nothing(
    sandbox_factory, tmp_path, capsys
):
    first = sandbox_factory(seed=7, conversations=30)
    second = sandbox_factory(seed=8, conversations=40)
    db = str(tmp_path / "mix.db")
    code, _, err = run(
        capsys, "sync", "-q", "--db", db, "--url", first.url, "--api-key", "sandbox-key"
    )
    assert code == 0, err
    before = sqlite3.connect(db).execute("SELECT id, subject FROM conversations").fetchall()

    code, out, err = run(
        capsys, "sync", "--db", db, "--url", second.url + "/", "--api-key", "sandbox-key"
    )
    assert code == 2 and out == ""
    first_address, second_address = (f"http://127.0.0.1:{s.port}" for s in (first, second))
    assert err.strip() == (
        f"Error: {db} is a mirror of {first_address}, not of {second_address}: use another "
        "--db for another helpdesk, or --rebind if this helpdesk moved"
    )
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT id, subject FROM conversations").fetchall() == before
    assert conn.execute("SELECT count(*) FROM etl_runs").fetchone()[0] == 1  # no run started
    conn.close()

    # The same helpdesk written another way is the same source.
    code, _, err = run(
        capsys, "sync", "-q", "--db", db, "--url", first.url + "/", "--api-key", "sandbox-key"
    )
    assert code == 0, err

    code, _, err = run(
        capsys,
        "sync",
        "-q",
        "--db",
        db,
        "--url",
        second.url,
        "--api-key",
        "sandbox-key",
        "--rebind",
    )
    assert code == 0, err
    conn = sqlite3.connect(db)
    assert binding.bound_source(conn) == second_address
    code, out, _ = run(capsys, "status", "--db", db)
    assert out.splitlines()[0] == f"Mirror {db} of {second_address}"
    assert b"sandbox-key" not in (tmp_path / "mix.db").read_bytes()
    conn.close()


def test_a_mirror_without_records_takes_any_source(tmp_path):
    database = mirror.open_mirror(tmp_path / "m.db")
    binding.bind(database.conn, "https://wrong.example.org")
    assert binding.bind(database.conn, "https://right.example.org") == ("https://right.example.org")
    database.conn.close()
