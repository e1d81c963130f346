"""Every table of the mirror as a sheet and a view, and --columns for a form made elsewhere."""

from __future__ import annotations

import csv
import json
import sqlite3

import pytest
from helpers_mirror import run_cli, scalar, sync_into

from etl import export as exporting
from etl import mirror
from etl.sandbox import Sandbox

MORE = {
    "timelogs": "timelogs",
    "attachments": "attachments",
    "tags": "tags",
    "customer_emails": "customer_emails",
    "customer_phones": "customer_phones",
    "customer_social_profiles": "customer_social_profiles",
    "customer_websites": "customer_websites",
}


@pytest.fixture(scope="module")
def mirror_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("tables") / "smarticks.db"
    with Sandbox(seed=7, conversations=120) as sandbox:
        sync_into(sandbox, path, timelogs=True)
    mirror.open_mirror(path).conn.close()
    return path


def read_csv(path):
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.reader(handle))


def test_the_default_is_still_the_five_tables():
    assert exporting.check_tables([]) == (
        "conversations",
        "threads",
        "customers",
        "users",
        "mailboxes",
    )


def test_every_further_table_exports_with_its_rows_and_has_a_view_of_the_same_shape(
    mirror_path, tmp_path, capsys
):
    code, out, err = run_cli(
        capsys,
        "export", "--db", str(mirror_path), "--format", "csv", "--out", str(tmp_path),
        "--tables", ",".join(MORE),
    )  # fmt: skip
    assert code == 0, err
    conn = sqlite3.connect(mirror_path)
    try:
        for table, source in MORE.items():
            found = read_csv(tmp_path / f"{table}.csv")
            expected = scalar(mirror_path, f"SELECT count(*) FROM {source}")
            assert expected > 0, table  # the seed has some of each
            assert len(found) - 1 == expected, table  # none deleted at the source here
            view = conn.execute(f"SELECT * FROM {table}_sheet")
            names = [d[0] for d in view.description]
            assert names == [*found[0], "deleted_at"], table
            assert len(view.fetchall()) == expected
    finally:
        conn.close()
    timelogs = {r[0]: r for r in read_csv(tmp_path / "timelogs.csv")[1:]}
    header = read_csv(tmp_path / "timelogs.csv")[0]
    some = next(iter(timelogs.values()))
    assert some[header.index("user_email")].endswith("@support.example.org")
    assert int(some[header.index("time_spent")]) >= 0
    emails = read_csv(tmp_path / "customer_emails.csv")
    assert emails[0] == ["customer_id", "customer_name", "position", "type", "value"]


def test_columns_pick_and_order_the_columns_of_one_table(mirror_path, tmp_path, capsys):
    code, _, err = run_cli(
        capsys,
        "export", "--db", str(mirror_path), "--format", "csv", "--out", str(tmp_path),
        "--tables", "timelogs", "--columns", "user_email,time_spent,conversation_number",
    )  # fmt: skip
    assert code == 0, err
    found = read_csv(tmp_path / "timelogs.csv")
    assert found[0] == ["user_email", "time_spent", "conversation_number"]
    assert len(found) - 1 == scalar(mirror_path, "SELECT count(*) FROM timelogs")


def test_columns_name_their_table_when_several_are_exported(mirror_path, tmp_path, capsys):
    out = tmp_path / "x"
    code, _, err = run_cli(
        capsys,
        "export", "--db", str(mirror_path), "--format", "jsonl", "--out", str(out),
        "--tables", "conversations,users",
        "--columns", 'conversations:number,"Purchase Date",subject,Amount',
    )  # fmt: skip
    assert code == 0, err
    lines = (out / "conversations.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert list(records[0]) == ["number", "Purchase Date", "subject", "Amount"]  # flat rows
    users = (out / "users.jsonl").read_text().splitlines()
    assert "role" in json.loads(users[0])  # a table not named keeps all its columns


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--tables", "tags", "--columns", "name,colour"],
            "--columns: tags has no column 'colour'; it has id, name, color, conversations",
        ),
        (["--columns", "id,subject"], "--columns 'id,subject': name the table"),
        (
            ["--tables", "tags", "--columns", "users:id"],
            "--columns names table 'users', which --tables does not export",
        ),
    ],
)
def test_bad_columns_are_one_line_usage_errors(mirror_path, tmp_path, capsys, args, message):
    code, _, err = run_cli(
        capsys, "export", "--db", str(mirror_path), "--format", "csv", "--out", str(tmp_path), *args
    )
    assert code == 2
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) <= 2
    assert not list(tmp_path.glob("*.csv"))
