"""Units of `etl migrate`: the ticket record (inline images, spam), and the staging."""

import sqlite3

import pytest

from etl.sources.zendesk_records import attachment_urls, ticket_record
from etl.staging import StagedFile, Staging, StagingMismatch

ACCOUNT = "https://acme.zendesk.com"
SHOT = f"{ACCOUNT}/attachments/token/abc/?name=shot.png"
PASTED = f"{ACCOUNT}/attachments/token/def/?name=pasted.png"


def comment(**extra) -> dict:
    return {
        "id": 11,
        "author_id": 7,
        "public": True,
        "created_at": "2025-01-02T03:04:05Z",
        "html_body": (
            f'<p>See <img src="{SHOT}" alt="x"> and <img src=\'{PASTED}\'> '
            '<img src="https://cdn.example.org/logo.png"></p>'
        ),
        "attachments": [
            {"file_name": "shot.png", "content_url": SHOT, "content_type": "image/png"},
            {"file_name": "report.pdf", "content_url": f"{ACCOUNT}/attachments/token/ghi/?name=r"},
        ],
        **extra,
    }


def test_a_comment_needs_its_attachments_and_the_inline_images_on_the_account_once():
    urls = [url for url, _, _ in attachment_urls(comment(), ACCOUNT)]
    assert urls == [SHOT, f"{ACCOUNT}/attachments/token/ghi/?name=r", PASTED]


def test_inline_images_are_named_in_the_body_and_attached_and_others_are_left_alone():
    files = {SHOT: ("ab/sha1", "image/png"), PASTED: ("cd/sha2", "image/png")}
    record, missing = ticket_record(
        {"id": 5, "status": "open", "requester_id": 7, "custom_fields": [{"id": 9, "value": 1}]},
        [comment()],
        {"7": {"id": 7, "email": "c@example.org", "role": "end-user", "suspended": False}},
        {"ticket_id": 5, "solved_at": "2025-01-03T00:00:00Z"},
        ACCOUNT,
        files.get,
    )
    (out,) = record["comments"]
    assert out["html_body"] == (
        "<p>See [image: shot.png] and [image: pasted.png] "
        '<img src="https://cdn.example.org/logo.png"></p>'
    )
    assert [a["file_name"] for a in out["attachments"]] == ["shot.png", "pasted.png"]
    assert out["attachments"][0] == {
        "file_name": "shot.png",
        "content_type": "image/png",
        "file": "ab/sha1",
    }
    assert missing == ["report.pdf"]  # the PDF's download found nothing
    assert out["author"]["email"] == "c@example.org"
    assert record["solved_at"] == "2025-01-03T00:00:00Z"
    assert record["fields"] == {"9": 1}
    assert record["spam"] is False


def test_an_image_the_source_lost_says_so_instead_of_linking_to_it():
    record, missing = ticket_record(
        {"id": 5, "status": "open", "requester_id": 7},
        [comment(attachments=[])],
        {},
        None,
        ACCOUNT,
        lambda url: None,
    )
    body = record["comments"][0]["html_body"]
    assert "[image no longer available: shot.png]" in body
    assert ACCOUNT not in body
    assert missing == ["shot.png", "pasted.png"]


def test_a_deleted_ticket_whose_requester_is_suspended_is_spam():
    users = {"7": {"id": 7, "suspended": True}}
    spam, _ = ticket_record({"id": 1, "status": "deleted", "requester_id": 7}, [], users, None,
                            ACCOUNT, lambda u: None)  # fmt: skip
    deleted, _ = ticket_record({"id": 1, "status": "deleted", "requester_id": 8}, [], users, None,
                               ACCOUNT, lambda u: None)  # fmt: skip
    assert (spam["spam"], deleted["spam"]) == (True, False)


def test_a_staging_is_bound_to_its_account_and_saves_records_with_their_cursor(tmp_path):
    conn = sqlite3.connect(":memory:")
    staging = Staging(conn, "zendesk", "https://Acme.zendesk.com/", tmp_path / "files")
    staging.bind()
    digest = staging.keep_file(b"bytes")
    assert staging.file_path(digest).read_bytes() == b"bytes"
    staging.save_page(
        [("ticket", "1", "T", {"id": 1})],
        [("https://x/f", StagedFile(digest, "text/plain", 5))],
        ("tickets", "c1"),
    )
    assert staging.cursor("tickets") == "c1"
    assert staging.records("ticket") == {"1": {"id": 1}}
    assert staging.file("https://x/f").sha256 == digest
    Staging(conn, "zendesk", "https://acme.zendesk.com", tmp_path / "files").bind()  # same one
    with pytest.raises(StagingMismatch, match="stages the zendesk account https://acme"):
        Staging(conn, "zendesk", "https://other.zendesk.com", tmp_path / "files").bind()


def test_every_migrate_command_has_help_with_an_example():
    from click.testing import CliRunner

    from etl.cli import cli

    for args in (
        ["migrate"],
        *(["migrate", name] for name in ("zendesk", "helpscout", "freshdesk")),
    ):
        result = CliRunner().invoke(cli, [*args, "--help"])
        assert result.exit_code == 0
        assert "Example:" in result.output, args
        assert "never stored" in " ".join(result.output.split()) or args == ["migrate"]
