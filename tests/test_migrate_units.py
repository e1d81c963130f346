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
        {
            "id": 5,
            "status": "open",
            "requester_id": 7,
            "custom_fields": [{"id": 9, "value": "plan_pro"}, {"id": 8, "value": None}],
        },
        [comment()],
        {"7": {"id": 7, "email": "c@example.org", "role": "end-user", "suspended": False}},
        {"ticket_id": 5, "solved_at": "2025-01-03T00:00:00Z"},
        {
            "9": {
                "id": 9,
                "title": "Plan",
                "custom_field_options": [{"name": "Pro", "value": "plan_pro"}],
            },
            "8": {"id": 8, "title": "Vendor"},
        },
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
    assert record["fields"] == {"9": "plan_pro", "8": None}
    assert record["custom"] == {"Plan": "Pro"}  # by title, a dropdown by its option's name
    assert record["spam"] is False


def test_an_image_the_source_lost_says_so_instead_of_linking_to_it():
    record, missing = ticket_record(
        {"id": 5, "status": "open", "requester_id": 7},
        [comment(attachments=[])],
        {},
        None,
        {},
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
                            {}, ACCOUNT, lambda u: None)  # fmt: skip
    deleted, _ = ticket_record({"id": 1, "status": "deleted", "requester_id": 8}, [], users, None,
                               {}, ACCOUNT, lambda u: None)  # fmt: skip
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


def test_fill_in_adds_what_the_target_customer_lacks_and_overwrites_nothing():
    from etl.load.customers import fill_in, lacking_fields

    have = {
        "firstName": "Kept",
        "lastName": "",
        "company": None,
        "notes": "Ours",
        "customerFields": [{"id": 3, "name": "Plan", "value": "Gold"}],
        "_embedded": {
            "emails": [{"id": 1, "value": "Ann@Example.org", "type": "work"}],
            "phones": [{"id": 0, "value": "+45 20 11 22 33", "type": "work"}],
            "social_profiles": [],
            "websites": [{"id": 0, "value": "https://ann.example.org"}],
            "address": {"city": "Aarhus", "state": None, "zip": None, "country": None},
        },
    }
    source = {
        "firstName": "Ann",
        "lastName": "Berg",
        "company": "Nordlys",
        "notes": "Theirs",
        "emails": [{"value": "ann@example.org", "type": "work"},
                   {"value": "ann@home.example.net", "type": "home"}],
        "phones": [{"value": "+4520112233", "type": "mobile"},
                   {"value": "+4540000000", "type": "home"}],
        "socialProfiles": [{"value": "annberg", "type": "twitter"}],
        "websites": [{"value": "https://ann.example.org"}],
        "address": {"city": "Copenhagen", "country": "DK"},
    }  # fmt: skip
    assert fill_in(have, source) == {
        "lastName": "Berg",
        "company": "Nordlys",
        "emails_add": ["ann@home.example.net"],
        "phones": [{"value": "+45 20 11 22 33", "type": "work"},
                   {"value": "+4540000000", "type": "home"}],
        "socialProfiles": [{"value": "annberg", "type": "twitter"}],
        "address": {"city": "Aarhus", "country": "DK"},
    }  # fmt: skip
    assert lacking_fields(have, {"plan": "Basic", "Region": "EU"}) == {"Region": "EU"}
    filled = dict(have, lastName="Berg", company="Nordlys")
    filled["_embedded"] = {
        **have["_embedded"],
        "emails": have["_embedded"]["emails"] + [{"value": "ann@home.example.net"}],
        "phones": have["_embedded"]["phones"] + [{"value": "+4540000000", "type": "home"}],
        "social_profiles": [{"value": "annberg", "type": "twitter"}],
        "address": {"city": "Aarhus", "country": "DK"},
    }
    assert fill_in(filled, source) == {}  # nothing left to add
