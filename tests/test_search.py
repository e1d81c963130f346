"""Full-text search and the sheet views, kept current by syncs from the sandbox."""

from __future__ import annotations

import json
import sqlite3

import pytest
from helpers_mirror import rows, scalar, sync_into

from etl import mirror, records, search, views
from etl import sync as sync_module
from etl.cli import main
from etl.htmltext import html_to_text


def numbers(path, query, **options):
    db = mirror.open_mirror(path)
    try:
        return [r["number"] for r in search.search(db.conn, query, limit=1000, **options)]
    finally:
        db.conn.close()


def number_of(path, conversation_id):
    return scalar(path, "SELECT number FROM conversations WHERE id = ?", (conversation_id,))


def test_finds_a_word_that_appears_only_in_a_thread_body_and_not_in_markup(sandbox, tmp_path):
    path = tmp_path / "m.db"
    sandbox.store.add_thread(
        7,
        "customer",
        '<p class="blorptastic">My <b>xylophone</b>&nbsp;arrived <a href="https://'
        'zorblax.example/x">broken</a></p><style>.quixotry{}</style>',
    )
    sync_into(sandbox, path)
    everywhere = "SELECT count(*) FROM conversations WHERE subject LIKE ?"
    assert scalar(path, everywhere, ("%xylophone%",)) == 0
    assert numbers(path, "xylophone") == [number_of(path, 7)]
    assert numbers(path, "XYLOPHONE arrived") == [number_of(path, 7)]  # any case, every word
    assert numbers(path, "xylo*") == [number_of(path, 7)]
    assert numbers(path, "blorptastic") == []  # attribute values are markup, not text
    assert numbers(path, "quixotry") == []  # so are styles


def test_after_a_subject_changes_the_new_words_are_found_and_the_old_ones_are_not(
    sandbox, tmp_path
):
    path = tmp_path / "m.db"
    sandbox.store.update_conversation(3, subject="Zanzibar invoice question")
    sync_into(sandbox, path)
    number = number_of(path, 3)
    assert numbers(path, "zanzibar") == [number]
    sandbox.store.update_conversation(3, subject="Quantum marmalade shipment")
    sync_into(sandbox, path)  # incremental: the upsert fires the update trigger
    assert scalar(path, "SELECT subject FROM conversations WHERE id = 3") == (
        "Quantum marmalade shipment"
    )
    assert numbers(path, "marmalade") == [number]
    assert numbers(path, '"quantum marmalade"') == [number]
    assert numbers(path, "zanzibar") == []
    # the re-synced conversation was indexed again: still one document each
    assert scalar(path, "SELECT count(*) FROM search_index WHERE rowid % 4 = 1") == scalar(
        path, "SELECT count(*) FROM conversations"
    )


def test_words_of_one_conversation_may_come_from_subject_thread_and_customer(sandbox, tmp_path):
    path = tmp_path / "m.db"
    sandbox.store.update_conversation(9, subject="Wombat delivery")
    sandbox.store.add_thread(9, "message", "<p>Your <i>platypus</i> is on its way.</p>")
    sync_into(sandbox, path)
    email = scalar(path, "SELECT customer_email FROM conversations WHERE id = 9")
    assert email
    assert numbers(path, "wombat platypus") == [number_of(path, 9)]
    by_email = numbers(path, email)
    expected = rows(
        path,
        "SELECT c.number FROM conversations c JOIN customer_emails e "
        "ON e.customer_id = c.customer_id WHERE e.value = ?",
        (email,),
    )
    assert sorted(by_email) == sorted(r[0] for r in expected)


def test_an_index_created_on_a_mirror_with_rows_is_filled(sandbox, tmp_path, monkeypatch):
    path = tmp_path / "m.db"
    sync_into(sandbox, path)
    with sqlite3.connect(path) as conn:  # as a mirror made before search existed
        for name, kind in conn.execute(
            "SELECT name, type FROM sqlite_master WHERE name LIKE 'search%'"
        ).fetchall():
            conn.execute(f"DROP {kind} IF EXISTS {name}")
    assert not rows(path, "SELECT name FROM sqlite_master WHERE name LIKE 'search%'")
    mirror.open_mirror(path).conn.close()
    expected = sum(scalar(path, f"SELECT count(*) FROM {t}") for t in SEARCHED)
    assert scalar(path, "SELECT count(*) FROM search_index") == expected
    assert numbers(path, "refund")


SEARCHED = ("conversations", "customers")


def test_deleted_conversations_are_found_only_when_asked(sandbox, tmp_path):
    path = tmp_path / "m.db"
    sandbox.store.update_conversation(4, subject="Capybara complaint")
    sync_into(sandbox, path)
    number = number_of(path, 4)
    sandbox.store.delete_conversation(4)
    sync_into(sandbox, path, full=True)
    assert numbers(path, "capybara") == []
    assert numbers(path, "capybara", include_deleted=True) == [number]


def test_queries_are_words_never_fts_syntax_errors():
    assert search.fts_terms('refund-policy "late delivery" C++ AND ( x* @@') == [
        '"refund-policy"',
        '"late delivery"',
        '"C++"',
        '"AND"',
        '"x" *',
    ]


def test_the_sheet_views_match_the_export_columns_and_show_text(sandbox, tmp_path):
    path = tmp_path / "m.db"
    sync_into(sandbox, path)
    mirror.open_mirror(path).conn.close()  # fields defined by the sync now have columns
    db = mirror.open_mirror(path)
    try:
        for name, sheet in views.sheets(db.conn).items():
            columns = [r[1] for r in db.conn.execute(f"PRAGMA table_info({name}_sheet)")]
            assert columns == [c.name for c in sheet.columns]
            count = db.conn.execute(f"SELECT count(*) FROM {name}_sheet").fetchone()[0]
            assert count == db.conn.execute(sheet.count()).fetchone()[0]
        assert "Priority" in [
            r[1] for r in db.conn.execute("PRAGMA table_info(conversations_sheet)")
        ]
        bodies = db.conn.execute(
            "SELECT t.body, s.body FROM threads t JOIN threads_sheet s "
            "USING (id) WHERE t.body LIKE '<%'"
        ).fetchall()
        assert bodies
        for html, text in bodies:
            assert text == html_to_text(html) and "<p>" not in text
    finally:
        db.conn.close()


def test_html_to_text_keeps_paragraphs_lists_links_and_drops_markup():
    html = (
        "<p>Hello&nbsp;<b>Zoë</b> &amp; team,</p><ul><li>one</li><li>two</li></ul>"
        '<p>See <a href="https://x.example/help">the help</a><br>Thanks</p>'
        "<script>alert(1)</script><style>p{}</style>"
    )
    assert html_to_text(html) == (
        "Hello Zoë & team,\n\n- one\n- two\n\nSee the help (https://x.example/help)\nThanks"
    )
    assert html_to_text("plain\ntext, 3 < 4") == "plain\ntext, 3 < 4"
    assert html_to_text(None) is None


def test_cli_search_prints_a_table_and_json(sandbox, tmp_path, capsys):
    path = tmp_path / "m.db"
    sandbox.store.update_conversation(2, subject="Aardvark subscription")
    sync_into(sandbox, path)
    with pytest.raises(SystemExit) as exit_info:
        main(["search", "aardvark", "--db", str(path)])
    out = capsys.readouterr().out
    assert exit_info.value.code == 0
    assert out.splitlines()[0].split() == ["number", "subject", "customer", "status", "updated"]
    assert "Aardvark subscription" in out.splitlines()[1]
    with pytest.raises(SystemExit):
        main(["search", "aardvark", "--json", "--db", str(path)])
    found = json.loads(capsys.readouterr().out)
    assert [r["subject"] for r in found] == ["Aardvark subscription"]
    assert set(found[0]) == {
        "id", "number", "subject", "customer_name", "customer_email", "status", "updated_at",
        "snippet",
    }  # fmt: skip
    assert found[0]["snippet"].startswith("[Aardvark] subscription")
    assert out.splitlines()[2].strip().startswith("[Aardvark] subscription")  # under its row
    with pytest.raises(SystemExit) as exit_info:
        main(["search", "@@", "--db", str(path)])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip() == (
        "Error: nothing to search for in '@@': give at least one word"
    )


def test_a_snippet_marks_each_word_where_it_matched_in_a_thread(sandbox, tmp_path):
    path = tmp_path / "m.db"
    sync_into(sandbox, path)
    db = mirror.open_mirror(path)
    try:
        [result, *_] = search.search(db.conn, "nobody answered")
        assert "[nobody] [answered]" in result["snippet"]
        assert all("[" in r["snippet"] for r in search.search(db.conn, "refund*", limit=200))
    finally:
        db.conn.close()


@pytest.mark.parametrize("word", ["対応", "お願い", "ありがとう", "注文"])
def test_chinese_and_japanese_words_match_inside_longer_runs_without_a_star(
    sandbox, tmp_path, word
):
    """The sandbox's Japanese text: `ご対応ありがとうございます。よろしくお願いします。` is two
    tokens to the index, and `返金について (注文 12)` a subject; each word is found in them."""
    path = tmp_path / "m.db"
    sync_into(sandbox, path)
    expected = {
        number
        for (number,) in rows(
            path,
            "SELECT c.number FROM conversations c WHERE c.subject LIKE ?1 OR EXISTS (SELECT 1 "
            "FROM threads t WHERE t.conversation_id = c.id AND t.body_text LIKE ?1)",
            (f"%{word}%",),
        )
    }
    assert expected  # the seed has this text
    found = numbers(path, word)
    assert set(found) == expected and len(found) == len(expected)
    db = mirror.open_mirror(path)
    try:
        snippets = [r["snippet"] for r in search.search(db.conn, word, limit=1000)]
    finally:
        db.conn.close()
    assert all(f"[{word}]" in s for s in snippets)  # the word marked, not its whole run
    assert numbers(path, f'"{word}"') == [] or word == "注文"  # as a whole token: only 注文


def test_a_snippet_marks_each_cjk_word_inside_its_token_and_latin_words_whole():
    o, c = search._OPEN, search._CLOSE
    text = f"ご{o}ご対応ありがとうございます{c} and {o}refunds{c} {o}注文{c}"
    marked = search._marked(text, ["ありがとう", "対応", "注文"])
    assert marked == "ごご[対応][ありがとう]ございます and [refunds] [注文]"


def test_a_cjk_word_and_a_latin_word_must_both_match(sandbox, tmp_path):
    path = tmp_path / "m.db"
    sync_into(sandbox, path)
    both = set(numbers(path, "対応 refund"))
    assert both == set(numbers(path, "対応")) & set(numbers(path, "refund"))


def assert_index_holds_the_documents(path) -> None:
    """The index holds each stored document's words, at their places, and nothing else.

    FTS5 takes an external-content document out only given its indexed text, so a document
    changed without leaving the index first would leave stale words behind: compared here
    with a fresh index of the stored documents, word by word.
    """
    conn = sqlite3.connect(path)
    try:
        tokenize = "tokenize = 'unicode61 remove_diacritics 2'"
        conn.execute(f"CREATE VIRTUAL TABLE temp.fresh USING fts5(title, body, {tokenize})")
        conn.execute(f"INSERT INTO temp.fresh (rowid, title, body) SELECT * FROM {search.DOCS}")
        words = []
        for schema, table in (("main", search.INDEX), ("temp", "fresh")):
            conn.execute(
                f"CREATE VIRTUAL TABLE temp.v_{table} USING fts5vocab({schema}, {table}, instance)"
            )
            words.append(set(conn.execute(f"SELECT term, doc, col, offset FROM temp.v_{table}")))
        assert words[0] == words[1]
        assert words[0], "the index is empty"
    finally:
        conn.close()


def assert_documents_are_made_as_the_rows_would_make_them(path) -> None:
    made = {(r[0], r[1], r[2]) for r in rows(path, search._CONVERSATION_ROWS)}
    made |= {(r[0], r[1], r[2]) for r in rows(path, search._CUSTOMER_ROWS)}
    assert set(rows(path, f"SELECT doc_id, title, body FROM {search.DOCS}")) == made


def test_documents_come_with_each_page_and_the_index_keeps_up_with_them(sandbox, tmp_path):
    path = tmp_path / "m.db"
    sync_into(sandbox, path)
    assert_documents_are_made_as_the_rows_would_make_them(path)
    assert_index_holds_the_documents(path)
    sandbox.store.add_thread(3, "message", "<p>A <i>quokka</i> wrote in.</p>")
    sandbox.store.update_conversation(4, subject="Wombat crossing")
    sync_into(sandbox, path)  # incremental: changed records leave the index, then come back
    assert_documents_are_made_as_the_rows_would_make_them(path)
    assert_index_holds_the_documents(path)
    assert numbers(path, "quokka") == [number_of(path, 3)]
    assert numbers(path, "wombat") == [number_of(path, 4)]


def test_a_record_saved_again_leaves_the_index_until_the_refresh(tmp_path):
    db = mirror.open_mirror(tmp_path / "m.db")
    children = ["threads", "attachments", "conversation_tags", "conversation_custom_fields"]

    def save(subject: str, with_document: bool = True) -> None:
        thread = {"id": 10, "type": "customer", "body": f"<p>{subject} in a thread</p>"}
        record = {"id": 1, "subject": subject, "updatedAt": "2024-01-01T00:00:00Z"}
        rows = records.conversation_rows({**record, "_embedded": {"threads": [thread]}})
        if not with_document:  # a batch without the text a document needs
            rows["threads"][0].pop("body_text")
        with db.conn:
            mirror.save_records(db.conn, "conversations", rows, children)

    def found(word: str) -> list[int]:
        return [r["id"] for r in search.search(db.conn, word)]

    save("Zanzibar invoice")
    assert search.refresh(db.conn) == 1 and found("zanzibar") == [1]
    save("Quantum marmalade")
    hits = db.conn.execute(
        f"SELECT rowid FROM {search.INDEX} WHERE {search.INDEX} MATCH 'zanzibar'"
    )
    assert hits.fetchall() == []  # out of the index as soon as the new row is written
    assert found("zanzibar") == [] and found("marmalade") == [1]
    save("Saffron ledger", with_document=False)  # its old thread text stays in the row
    assert found("saffron") == [1] and found('"quantum marmalade in a thread"') == [1]
    save("Cobalt ledger")
    save("Umber", with_document=False)  # saved twice before a refresh: left the index once
    assert found("umber") == [1]
    assert found('"cobalt ledger in a thread"') == [1]
    db.conn.close()
    assert_documents_are_made_as_the_rows_would_make_them(tmp_path / "m.db")
    assert_index_holds_the_documents(tmp_path / "m.db")


def test_a_conversation_is_one_document_whose_threads_come_and_go_with_it(sandbox, tmp_path):
    path = tmp_path / "m.db"
    sandbox.store.add_thread(5, "message", "<p>The <b>okapi</b> arrived.</p>")
    sync_into(sandbox, path)
    number = number_of(path, 5)
    assert numbers(path, "okapi") == [number]
    sandbox.store.add_thread(5, "message", "<p>And the narwhal too.</p>")
    sync_into(sandbox, path)  # incremental: the conversation is indexed again, whole
    assert numbers(path, "okapi") == numbers(path, "narwhal") == [number]
    assert scalar(path, "SELECT count(*) FROM search_index") == sum(
        scalar(path, f"SELECT count(*) FROM {t}") for t in SEARCHED
    )
    db = mirror.open_mirror(path)
    with db.conn:  # a thread removed by hand journals its conversation for the next refresh
        db.execute("DELETE FROM threads WHERE body_text LIKE '%okapi%'")
    db.conn.close()
    assert numbers(path, "okapi") == []
    assert numbers(path, "narwhal") == [number]


def test_an_index_with_a_document_per_thread_is_rebuilt_when_the_mirror_opens(sandbox, tmp_path):
    path = tmp_path / "m.db"
    sync_into(sandbox, path)
    db = mirror.open_mirror(path)
    with db.conn:  # the index as versions before one document per conversation made it
        db.execute(f"DROP TABLE {search.INDEX}")
        db.execute(
            f"CREATE VIRTUAL TABLE {search.INDEX} USING fts5(kind UNINDEXED, ref_id UNINDEXED, "
            "title, body, tokenize = 'unicode61 remove_diacritics 2')"
        )
        db.execute(f"INSERT INTO {search.INDEX} (rowid, title) VALUES (5, 'stale')")  # conv 1
    db.conn.close()
    mirror.open_mirror(path).conn.close()
    assert scalar(path, "SELECT count(*) FROM search_index") == sum(
        scalar(path, f"SELECT count(*) FROM {t}") for t in SEARCHED
    )
    assert numbers(path, "stale") == [] and numbers(path, "refund")


def test_a_sync_indexes_each_commit_group_as_it_goes(sandbox, tmp_path, monkeypatch):
    pending_at_each_refresh = []
    refresh = search.refresh

    def counting(conn):
        pending_at_each_refresh.append(refresh(conn))
        return pending_at_each_refresh[-1]

    monkeypatch.setattr(sync_module.search, "refresh", counting)
    monkeypatch.setattr(mirror.Checkpoints, "INTERVAL", 0.0)  # a commit after every page
    monkeypatch.setattr(sync_module, "INDEX_EVERY", 0.0)  # and an index step after each
    path = tmp_path / "m.db"
    sync_into(sandbox, path, page_size=10, workers=2)
    start, *while_reading, at_the_end = pending_at_each_refresh
    records = sum(scalar(path, f"SELECT count(*) FROM {t}") for t in SEARCHED)
    assert start == 0
    assert len([n for n in while_reading if n]) > 10  # in steps, not in one pass
    assert sum(while_reading) + at_the_end == records  # each record indexed once
    assert_documents_are_made_as_the_rows_would_make_them(path)
    assert_index_holds_the_documents(path)


def test_a_record_whose_document_did_not_change_is_not_indexed_again(
    sandbox, tmp_path, monkeypatch
):
    path = tmp_path / "m.db"
    sync_into(sandbox, path)
    indexed = []
    refresh = search.refresh
    monkeypatch.setattr(sync_module.search, "refresh", lambda conn: indexed.append(refresh(conn)))
    sandbox.store.set_conversation_tags(5, ["retagged"])  # same subject and threads
    sandbox.store.update_conversation(6, subject="Tangerine dispatch")
    sync_into(sandbox, path)
    assert rows(path, "SELECT name FROM conversation_tags WHERE conversation_id = 5") == [
        ("retagged",)
    ]
    assert indexed == [0, 1]  # conversation 6 only, though 5 and others were read again
    assert numbers(path, "tangerine") == [number_of(path, 6)]
    assert_documents_are_made_as_the_rows_would_make_them(path)
    assert_index_holds_the_documents(path)
