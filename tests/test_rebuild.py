"""A backup rebuilds the helpdesk, files included, once the old helpdesk is gone.

Over real HTTP: a source sandbox serving its attachment files is synced with `--attachments`
and snapshotted, then STOPPED; the snapshot is restored, exported and loaded into an empty
sandbox, and every attachment on the target is compared byte for byte (sha256) with the file
the source served.
"""

from __future__ import annotations

import csv
import hashlib
import json
import sqlite3
from pathlib import Path

import pytest
from helpers_load import figure, run

from etl import files
from etl.load import attachments
from etl.sandbox.handlers import seeded_file

CAP = 64 * 1024  # the seeded files are at most this many bytes


@pytest.fixture(autouse=True)
def _in_tmp(monkeypatch, tmp_path):
    monkeypatch.setattr(attachments, "DOWNLOAD_ATTEMPTS", 1)  # the source is gone: fail fast
    monkeypatch.chdir(tmp_path)  # loads write their rejects and reports here


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def attachments_by_thread(sandbox, cid: int, skip=()) -> list[list[tuple[str, str]]]:
    """(file name, sha256 of its bytes) per thread, oldest thread first, lineitems left out;
    attachments whose id is in `skip` too."""
    store = sandbox.store
    conv = store.get_conversation(cid, embed=("threads",))
    out = []
    for thread in reversed(conv["_embedded"]["threads"]):
        if thread["type"] == "lineitem":
            continue
        files = []
        for ref in thread["_embedded"]["attachments"]:
            if ref["id"] in skip:
                continue
            item = store.attachments[ref["id"]]
            data = item.data if item.data is not None else seeded_file(item.id, item.size)
            files.append((item.file_name, sha(data)))
        out.append(files)
    return out


def loaded_conversations(ledger_db: Path) -> dict[int, int]:
    with sqlite3.connect(ledger_db) as conn:
        return {
            int(source): target
            for source, target in conn.execute(
                "SELECT source_id, target_id FROM etl_load_items "
                "WHERE kind = 'conversations' AND state = 'done'"
            )
        }


def test_a_restored_backup_rebuilds_every_attachment_with_the_source_stopped(
    sandbox_factory, tmp_path
):
    source = sandbox_factory(seed=7, conversations=60, attachment_files=CAP)
    target = sandbox_factory(empty=True)
    store = source.store
    with store.lock:
        # One file the source no longer serves: the mirror never holds it.
        lost = next(
            a
            for a in store.attachments.values()
            if a.generated
            and store.conversations[store.threads[a.thread_id].conversation_id].state != "deleted"
        )
        lost.generated = False
    mirror_db = tmp_path / "smarticks.db"
    synced = run(source, "sync", "--attachments", db=mirror_db)
    assert synced.exit_code == 0, synced.output
    backed_up = run(source, "backup", "--dir", tmp_path / "backups", "--no-sync", db=mirror_db)
    assert backed_up.exit_code == 0, backed_up.output
    (snapshot,) = (tmp_path / "backups").glob("*.db")

    kept = [c for c in store.conversation_ids() if store.conversations[c].state != "deleted"]
    expected = {cid: attachments_by_thread(source, cid, skip={lost.id}) for cid in kept}
    files_kept = [digest for cid in kept for thread in expected[cid] for _, digest in thread]
    exported_files = {
        sha(seeded_file(a.id, a.size)) for a in store.attachments.values() if a.generated
    }
    source.stop()  # the old helpdesk is gone: no download can succeed from here on

    restored_db = tmp_path / "restored" / "smarticks.db"
    restored_db.parent.mkdir()
    restored = run(target, "restore", snapshot, db=restored_db)
    assert restored.exit_code == 0, restored.output
    dump = tmp_path / "rebuild"
    exported = run(target, "export", "--format", "jsonl", "--out", dump, db=restored_db)
    assert exported.exit_code == 0, exported.output
    held = {p.name for p in (dump / "files").rglob("*") if p.is_file()}
    assert held == exported_files  # every file the mirror holds, named by its sha256
    assert f"{len(held)} attachment files (" in exported.output
    assert "1 attachments without a file in the mirror" in exported.output
    records = [json.loads(line) for line in open(dump / "conversations.jsonl", encoding="utf-8")]
    refs = [a for r in records for t in r["threads"] for a in t["attachments"]]
    assert [a["fileName"] for a in refs if a["file"] is None] == [lost.file_name]

    bare = tmp_path / "bare"
    without = run(target, "export", "--format", "json", "--out", bare, "--no-files", db=restored_db)
    assert without.exit_code == 0, without.output
    assert not (bare / "files").exists() and "attachment files" not in without.output
    records = json.loads((bare / "conversations.json").read_text(encoding="utf-8"))
    assert not any("file" in a for r in records for t in r["threads"] for a in t["attachments"])

    ledger_db = tmp_path / "rebuild.db"
    customers = run(
        target,
        "load",
        "customers",
        dump / "customers.jsonl",
        "--mapping",
        "smarticks",
        db=ledger_db,
    )
    assert customers.exit_code == 0, customers.output
    loaded = run(
        target,
        "load",
        "conversations",
        dump / "conversations.jsonl",
        "--mapping",
        "smarticks",
        "--workers",
        "4",
        db=ledger_db,
    )
    assert loaded.exit_code == 0, loaded.output
    # The file the mirror lacks falls back to its URL, which fails: left out, and said so.
    (line,) = [x for x in loaded.output.splitlines() if f"attachment {lost.file_name} (" in x]
    assert "(not downloaded: no answer" in line and line.endswith("(1 record)")

    became = loaded_conversations(ledger_db)
    assert figure(loaded.output, "created") == len(became) == len(kept)
    moved = {cid: attachments_by_thread(target, became[cid]) for cid in kept}
    assert moved == expected  # every file, byte for byte, in its thread, in its order
    assert len(files_kept) > 20
    assert all(a.data is not None for a in target.store.attachments.values())
    assert target.store.notifications_sent == 0
    # What the user can run: every file the load sent is on the target, byte for byte.
    verified = run(target, "verify", "--files", db=ledger_db)
    assert verified.exit_code == 0, verified.output
    n = len(files_kept)
    assert f"Attachments: {n} compared by name and size and {n} by content" in verified.output

    with open("conversations.report.csv", encoding="utf-8", newline="") as handle:
        report = {row["id"]: row for row in csv.DictReader(handle)}
    lost_conv = store.threads[lost.thread_id].conversation_id
    assert f"attachment {lost.file_name} (not downloaded" in report[str(lost_conv)]["left_out"]
    assert report[str(lost_conv)]["outcome"] == "created"


# -- units: the files put beside an export ----------------------------------------------------


def stored_file(folder: Path, content: bytes) -> tuple[str, str]:
    """A file as a mirror in `folder` holds it: (sha256, path relative to `folder`)."""
    digest = sha(content)
    path = files.relative_path("m-files", digest)
    (folder / path).parent.mkdir(parents=True, exist_ok=True)
    (folder / path).write_bytes(content)
    return digest, path


def test_an_export_gets_each_held_file_once_and_counts_the_attachments_without_one(tmp_path):
    mirror_dir, out = tmp_path / "mirror", tmp_path / "out"
    mirror_dir.mkdir()
    out.mkdir()
    digest, path = stored_file(mirror_dir, b"logo" * 100)
    gone_digest, gone_path = stored_file(mirror_dir, b"deleted since")
    (mirror_dir / gone_path).unlink()
    beside = files.ExportFiles(mirror_dir, out)

    first = beside.place(digest, path)
    assert first == f"files/{digest[:2]}/{digest}"
    assert beside.place(digest, path) == first  # attached twice: one file
    assert (out / first).read_bytes() == b"logo" * 100
    assert beside.place(None, None) is None  # never downloaded
    assert beside.place(gone_digest, gone_path) is None  # named, but gone from disk
    assert beside.place("../" * 8 + "etc/passwd", path) is None  # a row's digest names no path
    assert (beside.placed, beside.bytes, beside.without_file) == ({digest}, 400, 3)
    assert [p for p in out.rglob("*") if p.is_file()] == [out / first]


def test_where_links_cannot_be_made_a_file_is_copied_whole_and_private(tmp_path, monkeypatch):
    mirror_dir, out = tmp_path / "mirror", tmp_path / "out"
    mirror_dir.mkdir()
    out.mkdir()
    digest, path = stored_file(mirror_dir, b"x" * 5000)

    def no_links(source, target):
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(files.os, "link", no_links)
    placed = out / files.ExportFiles(mirror_dir, out).place(digest, path)
    assert placed.read_bytes() == b"x" * 5000
    assert placed.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in placed.parent.iterdir()) == [digest]  # no .partial left
