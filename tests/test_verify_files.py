"""`etl verify` checks attachments: names and sizes always, content (sha256) with `--files`.

Over real HTTP: a generic CSV with files beside it is loaded into an empty sandbox, then the
target's files are removed, replaced or lost through the sandbox's store, and verify must say
so, while a file the load left out (its URL cannot be fetched) is no difference.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
import sqlite3
from pathlib import Path

import pytest
from helpers_load import GENERIC_HEADER, figure, run

from etl.ledger import file_digest
from etl.load import attachments
from etl.verify import DigestSink, compare_files

AGENT = "admin@support.example.org"
GONE = "http://127.0.0.1:9/gone.pdf"  # nothing listens there: left out by the load
ROWS = [
    ("F-1", "Damaged parcel", "ana@example.org", "active", "customer", "2024-03-01 10:00",
     "Photos attached", "box.jpg;label.png", ""),
    ("F-1", "", "", "", "reply", "2024-03-01 11:00", "Here is the return label", "return.pdf",
     AGENT),
    ("F-2", "Invoice", "bo@example.org", "closed", "customer", "2024-03-02 09:00",
     "See the invoice", f"invoice.pdf;{GONE}", ""),
    ("F-3", "No files", "cy@example.org", "active", "customer", "2024-03-03 09:00", "Just text",
     "", ""),
]  # fmt: skip
FILES = {"box.jpg": 3000, "label.png": 1500, "return.pdf": 5000, "invoice.pdf": 800}


@pytest.fixture(autouse=True)
def _in_tmp(monkeypatch, tmp_path):
    monkeypatch.setattr(attachments, "DOWNLOAD_ATTEMPTS", 1)  # the gone file fails fast
    monkeypatch.chdir(tmp_path)  # loads write their rejects and reports here


def content(name: str, size: int) -> bytes:
    seed = hashlib.sha256(name.encode()).digest()
    return (seed * (size // len(seed) + 1))[:size]


def write_input(folder: Path, rows) -> Path:
    folder.mkdir(exist_ok=True)
    for name, size in FILES.items():
        (folder / name).write_bytes(content(name, size))
    path = folder / "tickets.csv"
    with open(path, "w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\r\n")
        writer.writerow(GENERIC_HEADER)
        writer.writerows(rows)
    return path


def load(sandbox, source: Path, db: Path):
    return run(sandbox, "load", "conversations", source, "--mailbox", 1, "--timezone", "UTC", db=db)


def target_ids(db: Path) -> dict[str, int]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT source_id, target_id FROM etl_load_items WHERE kind = 'conversations'"
        )
        return dict(rows.fetchall())


def thread_files(sandbox, conv_id: int) -> list[list[int]]:
    """The attachment ids of each thread, oldest first."""
    store = sandbox.store
    threads = [store.threads[t] for t in store.conversations[conv_id].thread_ids]
    ordered = sorted((t for t in threads if t.type != "lineitem"), key=lambda t: t.id)
    return [t.attachment_ids for t in ordered]


def differences(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("conversation ")]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_a_clean_load_verifies_every_file_by_name_size_and_content(empty_sandbox, tmp_path):
    db = tmp_path / "l.db"
    loaded = load(empty_sandbox, write_input(tmp_path / "in", ROWS), db)
    assert loaded.exit_code == 0, loaded.output
    assert figure(loaded.output, "created") == 3
    assert "attachment gone.pdf (not downloaded: no answer" in loaded.output

    checked = run(empty_sandbox, "verify", "--files", db=db)
    assert checked.exit_code == 0, checked.output
    assert "Verified 3 records loaded into" in checked.output
    assert ": 0 differences." in checked.output
    total = sum(FILES.values())
    assert (
        f"Attachments: 4 compared by name and size and 4 by content (sha256, {total:,} bytes "
        "downloaded)." in checked.output
    )
    assert "not compared" not in checked.output
    quick = run(empty_sandbox, "verify", db=db)
    assert quick.exit_code == 0, quick.output
    assert "Attachments: 4 compared by name and size (--files to compare" in quick.output

    with sqlite3.connect(db) as conn:
        (expected,) = conn.execute(
            "SELECT expected FROM etl_load_items WHERE source_id = 'F-2'"
        ).fetchone()
    invoice = content("invoice.pdf", 800)
    # Recorded as sent: the file that could not be fetched is not there.
    assert [t[3] for t in json.loads(expected)["threads"]] == [
        [{"fileName": "invoice.pdf", "size": 800, "sha256": sha(invoice)}]
    ]


def test_a_file_removed_replaced_or_lost_on_the_target_is_reported(empty_sandbox, tmp_path):
    db = tmp_path / "l.db"
    assert load(empty_sandbox, write_input(tmp_path / "in", ROWS), db).exit_code == 0
    ids = target_ids(db)
    store = empty_sandbox.store
    (box, label), (returned,) = thread_files(empty_sandbox, ids["F-1"])
    ((invoice,),) = thread_files(empty_sandbox, ids["F-2"])
    with store.lock:
        other = b"not the label" + bytes(1500 - 13)  # the same size, other bytes
        store.attachments[label].data = other
        store.attachments[invoice].data = None  # its file is gone: 404
        store.threads[store.attachments[returned].thread_id].attachment_ids.remove(returned)
        del store.attachments[returned]
    store.touch_conversation(ids["F-1"])

    quick = run(empty_sandbox, "verify", db=db)
    assert quick.exit_code == 1
    assert differences(quick.output) == [
        f"conversation generic:F-1 -> #{ids['F-1']}: thread 2 attachments: "
        "expected ['return.pdf'], target has []"
    ]

    full = run(empty_sandbox, "verify", "--files", db=db)
    assert full.exit_code == 1
    found = sorted(differences(full.output))
    assert len(found) == 3, full.output
    label_sha = sha(content("label.png", 1500))
    assert found[0] == (
        f"conversation generic:F-1 -> #{ids['F-1']}: thread 1 attachment label.png sha256: "
        f"expected {label_sha!r}, target has {sha(other)!r}"
    )
    assert found[1].endswith("thread 2 attachments: expected ['return.pdf'], target has []")
    assert re.fullmatch(
        rf"conversation generic:F-2 -> #{ids['F-2']}: thread 1 attachment invoice\.pdf "
        r"sha256: expected '[0-9a-f]{64}', target has 'not downloaded: HTTP 404.*'",
        found[2],
    )
    assert ": 3 differences." in full.output
    assert "Attachments: 4 compared by name and size and 2 by content" in full.output


def test_an_entry_from_a_ledger_without_files_verifies_and_says_its_files_were_not_compared(
    empty_sandbox, tmp_path
):
    db = tmp_path / "l.db"
    assert load(empty_sandbox, write_input(tmp_path / "in", ROWS), db).exit_code == 0
    ids = target_ids(db)
    ((invoice,),) = thread_files(empty_sandbox, ids["F-2"])
    empty_sandbox.store.attachments[invoice].data = b"x" * 800  # tampered, but not recorded
    with sqlite3.connect(db) as conn:  # the entries as an earlier version wrote them
        for key, expected in conn.execute("SELECT rowid, expected FROM etl_load_items").fetchall():
            old = json.loads(expected)
            old["threads"] = [t[:3] for t in old["threads"]]
            conn.execute(
                "UPDATE etl_load_items SET expected = ? WHERE rowid = ?", (json.dumps(old), key)
            )

    checked = run(empty_sandbox, "verify", "--files", db=db)
    assert checked.exit_code == 0, checked.output
    assert ": 0 differences." in checked.output
    assert "Attachments: " not in checked.output  # none recorded, none compared
    assert "Attachments not compared in 3 conversations: their ledger entries name no files" in (
        checked.output
    )


def test_a_catch_up_keeps_the_files_recorded_before_and_records_the_new_ones(
    empty_sandbox, tmp_path
):
    db = tmp_path / "l.db"
    folder = tmp_path / "in"
    assert load(empty_sandbox, write_input(folder, ROWS), db).exit_code == 0
    newer = [
        *ROWS,
        ("F-1", "", "", "", "customer", "2024-03-01 12:00", "One more photo", "box.jpg", ""),
    ]
    again = load(empty_sandbox, write_input(folder, newer), db)
    assert again.exit_code == 0, again.output
    assert figure(again.output, "updated") == 1

    checked = run(empty_sandbox, "verify", "--files", db=db)
    assert checked.exit_code == 0, checked.output
    assert "Attachments: 5 compared by name and size and 5 by content" in checked.output
    assert "not compared" not in checked.output


def test_attachments_are_compared_by_name_in_any_order_then_by_size():
    recorded = [
        {"fileName": "a.pdf", "size": 10, "sha256": "1"},
        {"fileName": "a.pdf", "size": 20, "sha256": "2"},
        {"fileName": "b.png", "size": 5, "sha256": "3"},
    ]
    same = [
        {"fileName": "b.png", "size": 5},
        {"fileName": "a.pdf", "size": 10},
        {"fileName": "a.pdf", "size": 20},
    ]
    assert compare_files(1, recorded, same) == []
    resized = [dict(same[0], size=6), *same[1:]]
    assert compare_files(2, recorded, resized) == [("thread 2 attachment b.png size", 5, 6)]
    extra = [*same[:2], {"fileName": "c.txt", "size": 20}]
    assert compare_files(3, recorded, extra) == [
        ("thread 3 attachments", ["a.pdf", "a.pdf", "b.png"], ["b.png", "a.pdf", "c.txt"])
    ]


def test_a_download_retried_midway_is_hashed_from_its_start_again():
    sink = DigestSink()
    sink.write(b"the first half of a dropped ")
    sink.seek(0)  # what Client.download does before each attempt
    sink.truncate()
    sink.write(b"the whole ")
    sink.write(b"file")
    assert sink.hash.hexdigest() == file_digest(b"the whole file")
