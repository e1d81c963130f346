"""Pages decoded with each record's text kept: the same data as json.loads, and texts that
are exactly the server's."""

from __future__ import annotations

import json
import random
from collections import Counter

import pytest
import requests
from helpers_mirror import rows, sync_into

from etl import records
from etl.rawjson import Sourced, detached_texts, page_reader, text_of
from etl.resources import CONVERSATIONS, CUSTOMERS

STYLES = [
    {"separators": (",", ":")},  # compact, as the sandbox writes
    {"ensure_ascii": False},
    {"indent": 2},
    {"indent": "\t", "ensure_ascii": False},
]


def conversation(cid: int, layout: str = "threads-first") -> dict:
    threads = [{"id": cid * 10 + n, "body": f"<p>Reply {n} \u00e9\u062a</p>"} for n in range(3)]
    embedded = {
        "threads-first": {"threads": threads, "tags": [{"id": 1, "name": "vip"}]},
        "threads-last": {"tags": [{"id": 1, "name": "vip"}], "threads": threads},
        "threads-only": {"threads": threads},
        "no-threads": {"tags": []},
        "empty-threads": {"threads": []},
    }[layout]
    return {
        "id": cid,
        "subject": 'A "quoted" \\ subject with "_embedded":{ inside',
        # a nested object with an _embedded of its own, ahead of the conversation's
        "customer": {"id": 5, "_embedded": {"threads": [{"id": -1}]}},
        "_embedded": embedded,
        "_links": {"self": {"href": f"/api/conversations/{cid}"}},
    }


def page(items: list, key: str = "conversations", **style) -> bytes:
    document = {"_embedded": {key: items}, "page": {"size": 100, "totalElements": len(items)}}
    return json.dumps(document, **style).encode()


def without_threads(record: dict) -> dict:
    kept = dict(record)
    kept["_embedded"] = {k: v for k, v in record["_embedded"].items() if k != "threads"}
    return kept


@pytest.mark.parametrize("style", STYLES, ids=["compact", "utf8", "indent", "tabs"])
@pytest.mark.parametrize(
    "layout", ["threads-first", "threads-last", "threads-only", "no-threads", "empty-threads"]
)
def test_conversations_keep_their_text_without_threads_and_each_thread_its_own(style, layout):
    body = page([conversation(1, layout), conversation(2, layout)], **style)
    decoded = page_reader("conversations", "threads")(body)
    assert decoded == json.loads(body)
    for record in decoded["_embedded"]["conversations"]:
        assert isinstance(record, Sourced)
        assert json.loads(text_of(record)) == without_threads(record)
        text = text_of(record)  # the server's text up to its own _embedded, as it was
        assert text[: text.rindex('"_embedded"')] in body.decode()
        threads = record["_embedded"].get("threads")
        texts = detached_texts(record)
        if threads is None:
            assert texts is None
        else:
            assert [json.loads(t) for t in texts] == threads
            assert all(t in body.decode() for t in texts)  # exactly the server's text


def test_text_in_the_mirror_is_the_servers_and_data_the_same_as_from_json_loads():
    body = page([conversation(1), conversation(2, "threads-last")], **STYLES[0])
    fast = page_reader("conversations", "threads")(body)["_embedded"]["conversations"]
    plain = json.loads(body)["_embedded"]["conversations"]
    for mine, theirs in zip(fast, plain, strict=True):
        kept, encoded = records.conversation_rows(mine), records.conversation_rows(theirs)
        for table, table_rows in kept.items():
            for row, other in zip(table_rows, encoded[table], strict=True):
                assert {k: v for k, v in row.items() if k != "raw_json"} == {
                    k: v for k, v in other.items() if k != "raw_json"
                }
                if "raw_json" in row:
                    assert json.loads(row["raw_json"]) == json.loads(other["raw_json"])
        threads = kept["threads"]
        assert [t["raw_json"] for t in threads] == detached_texts(mine)[::-1]  # oldest first
        assert kept["conversations"][0]["raw_json"] == text_of(mine)


def test_a_conversation_read_without_detaching_its_threads_is_stored_without_them():
    body = page([conversation(1)], **STYLES[0])
    record = page_reader("conversations")(body)["_embedded"]["conversations"][0]
    assert '"threads"' in text_of(record)  # this reader kept the whole text
    stored = records.conversation_rows(record)["conversations"][0]["raw_json"]
    assert json.loads(stored) == without_threads(record)


def test_records_of_other_lists_keep_their_whole_text():
    items = [{"id": 1, "firstName": "Zo\u00eb", "_embedded": {"emails": [{"value": "z@x"}]}}]
    body = page(items, "customers", ensure_ascii=True)
    decoded = page_reader("customers")(body)
    record = decoded["_embedded"]["customers"][0]
    assert text_of(record) == json.dumps(items[0])
    assert records.customer_rows(record)["customers"][0]["raw_json"] == json.dumps(items[0])


@pytest.mark.parametrize(
    "body",
    [
        b'{"_embedded":{"conversations":[null, 3, {"id": 1}]}}',  # not every item an object
        b'{"_embedded":{"conversations":{"id": 1}}}',  # not a list
        b'{"_embedded":{"conversations":[{"_embedded":{"threads":{"id":1}},"id":2}]}}',
        b'{"_embedded":{"conversations":[{"_embedded":{},"id":2},{"id":3}]},"page":{}}',
        b"\xef\xbb\xbf" + b'{"_embedded":{"conversations":[{"id":1,"_embedded":{"threads":[]}}]}}',
        b'[{"id": 1}]',
        b'{"_embedded":{"conversations":[]}}',
        b'{"_embedded" : { "conversations" : [ { "id" : 1 , "_embedded" : { "threads" : [ ] } } ] }'
        b" }",
    ],
)
def test_shapes_it_does_not_expect_decode_as_json_loads_decodes_them(body):
    assert page_reader("conversations", "threads")(body) == json.loads(body)


@pytest.mark.parametrize(
    "body", [b'{"_embedded":{"conversations":[{"id":1}]}} trailing', b"<html>", b'{"a":1,}']
)
def test_what_is_not_json_raises_as_json_loads_does(body):
    with pytest.raises(ValueError):
        json.loads(body)
    with pytest.raises(ValueError):
        page_reader("conversations", "threads")(body)


def random_value(rng: random.Random, depth: int):
    kind = rng.choice("sndbloaa" if depth < 3 else "sndb")
    if kind == "s":
        return "".join(rng.choice('ab "\\/{}[],:\u00e9\u4e2d\n') for _ in range(rng.randint(0, 8)))
    if kind == "n":
        return rng.choice([0, -1.5, 10**20, 3])
    if kind == "d":
        return None
    if kind == "b":
        return rng.random() < 0.5
    if kind == "l":
        return [random_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    keys = ["id", "_embedded", "threads", "x", '"q"', "_links"]
    return {rng.choice(keys): random_value(rng, depth + 1) for _ in range(rng.randint(0, 4))}


def test_random_documents_decode_as_json_loads_decodes_them():
    rng = random.Random(5)
    reader = page_reader("conversations", "threads")
    kinds: Counter = Counter()
    for _ in range(400):
        items = [random_value(rng, 0) for _ in range(rng.randint(0, 3))]
        for item in items:
            if isinstance(item, dict) and rng.random() < 0.7:
                item["_embedded"] = {"threads": [random_value(rng, 2) for _ in range(2)]}
        style = rng.choice(STYLES)
        body = page(items, **style)
        decoded = reader(body)
        assert decoded == json.loads(body)
        for record in decoded["_embedded"]["conversations"]:
            if text_of(record) is None:
                kinds["decoded the usual way"] += isinstance(record, dict)
            elif detached_texts(record) is None:
                kinds["whole text"] += 1
                assert json.loads(text_of(record)) == record
            else:
                kinds["threads apart"] += 1
                assert json.loads(text_of(record)) == without_threads(record)
                texts = detached_texts(record)
                assert [json.loads(t) for t in texts] == record["_embedded"]["threads"]
    # most objects were read with their texts, and every path was taken
    assert kinds["threads apart"] > 100 and kinds["whole text"] > 10
    assert kinds["decoded the usual way"] < kinds["threads apart"] / 4


def test_a_synced_mirror_keeps_the_servers_text(sandbox, tmp_path):
    path = tmp_path / "m.db"
    sync_into(sandbox, path)
    headers = {"X-Smarticks-API-Key": sandbox.api_key}
    served = ""
    for resource in (CONVERSATIONS, CUSTOMERS):
        query = {**resource.params, "pageSize": 100}
        for number in (1, 2):
            reply = requests.get(
                f"{sandbox.url}/{resource.path}", {**query, "page": number}, headers=headers
            )
            served += reply.text
    threads = [r[0] for r in rows(path, "SELECT raw_json FROM threads")]
    customers = [r[0] for r in rows(path, "SELECT raw_json FROM customers")]
    conversations = rows(path, "SELECT id, raw_json FROM conversations")
    assert threads and customers and conversations
    assert all(text in served for text in threads + customers)
    for cid, text in conversations:
        record = sandbox.store.get_conversation(cid)
        assert json.loads(text)["subject"] == record["subject"]
        assert "threads" not in json.loads(text)["_embedded"]
