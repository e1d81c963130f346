"""The sandbox behaves like the Smarticks API reference, over real HTTP on loopback."""

import base64
import re
from collections import Counter
from email.utils import parsedate_to_datetime

import pytest
import requests

from etl.sandbox import Sandbox
from etl.sandbox.timefmt import fmt_time, parse_time

ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
DASHED = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}Z$")
ALL = "active,pending,closed,spam"


def client(sb) -> requests.Session:
    session = requests.Session()
    session.headers["X-Smarticks-API-Key"] = sb.api_key
    return session


def get(sb, path, **params):
    response = client(sb).get(sb.url + path, params=params)
    assert response.status_code == 200, response.text
    return response.json()


def items(document, key="conversations"):
    return document["_embedded"][key]


def all_conversations(sb, **params):
    return items(get(sb, "/api/conversations", status=ALL, pageSize=1000, **params))


def new_conversation(**overrides):
    body = {
        "type": "email",
        "mailboxId": 1,
        "subject": "Hi there",
        "customer": {"email": "new.person@example.org", "firstName": "New"},
        "threads": [
            {"type": "message", "text": "newest: our reply", "user": 1},
            {
                "type": "customer",
                "text": "oldest: question",
                "customer": {"email": "new.person@example.org"},
            },
        ],
    }
    body.update(overrides)
    return body


# ----- auth ----------------------------------------------------------------------------


def test_the_three_ways_to_pass_the_key_are_accepted(sandbox):
    url = sandbox.url + "/api/tags"
    key = sandbox.api_key
    assert requests.get(url, params={"api_key": key}).status_code == 200
    assert requests.get(url, auth=(key, "any-password")).status_code == 200
    assert requests.get(url, headers={"Authorization": f"{key} randompassword"}).status_code == 200
    assert requests.get(url, headers={"X-Smarticks-API-Key": key}).status_code == 200


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"headers": {"X-Smarticks-API-Key": "wrong"}},
        {"auth": ("wrong", "pw")},
        {"params": {"api_key": "x"}},
    ],
)
def test_a_missing_or_wrong_key_is_401_in_the_error_format(sandbox, kwargs):
    response = requests.get(sandbox.url + "/api/conversations", **kwargs)
    assert response.status_code == 401
    body = response.json()
    assert body["errorCode"] == "UNAUTHORIZED" and body["message"]
    assert body["_embedded"] == {"errors": []}


def test_unknown_route_is_404_and_wrong_method_is_405(sandbox):
    api = client(sandbox)
    assert api.get(sandbox.url + "/api/nothing-here").status_code == 404
    wrong = api.delete(sandbox.url + "/api/tags")
    assert wrong.status_code == 405 and "GET" in wrong.headers["Allow"]
    assert api.get(sandbox.url + "/api/conversations/999999").status_code == 404
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    assert api.post(sandbox.url + "/api/customers", data="a=b", headers=form).status_code == 415
    assert api.get(sandbox.url + "/api/tags").status_code == 200  # the kept-alive link is clean


# ----- paging, status default, filters --------------------------------------------------


def test_the_page_envelope_and_paging_cover_every_record_once(sandbox):
    total = sandbox.store.count("conversations")
    seen = []
    for number in (1, 2, 3):
        page = get(sandbox, "/api/conversations", status=ALL, pageSize=50, page=number)
        assert page["page"] == {
            "size": 50,
            "totalElements": total,
            "totalPages": -(-total // 50),
            "number": number,
        }
        seen += [c["id"] for c in items(page)]
    assert sorted(seen) == sandbox.store.conversation_ids()
    past = get(sandbox, "/api/conversations", status=ALL, pageSize=50, page=9)
    assert items(past) == [] and past["page"]["totalElements"] == total
    assert get(sandbox, "/api/tags")["page"]["size"] == 50  # default page size
    assert get(sandbox, "/api/tags", pageSize=5000)["page"]["size"] == 1000  # clamped


def test_status_defaults_to_active_only_and_takes_a_comma_list(sandbox):
    statuses = Counter(
        sandbox.store.conversations[i].status for i in sandbox.store.conversation_ids()
    )
    assert set(statuses) == {"active", "pending", "closed", "spam"}
    default = get(sandbox, "/api/conversations", pageSize=1000)
    assert {c["status"] for c in items(default)} == {"active"}
    assert default["page"]["totalElements"] == statuses["active"]
    two = get(sandbox, "/api/conversations", status="closed,spam", pageSize=1000)
    assert two["page"]["totalElements"] == statuses["closed"] + statuses["spam"]
    assert len(all_conversations(sandbox)) == sum(statuses.values())


def test_updated_since_is_strictly_after(sandbox):
    conversations = all_conversations(sandbox)
    stamp = sorted(c["updatedAt"] for c in conversations)[len(conversations) // 4]
    after = all_conversations(sandbox, updatedSince=stamp, sortField="updatedAt", sortOrder="asc")
    assert after and all(c["updatedAt"] > stamp for c in after)
    assert len(after) == sum(c["updatedAt"] > stamp for c in conversations)
    earlier = fmt_time(parse_time(stamp) - 1)
    including = all_conversations(sandbox, updatedSince=earlier)
    assert len(including) == sum(c["updatedAt"] >= stamp for c in conversations) > len(after)


def test_filters_narrow_the_list(sandbox):
    store = sandbox.store
    conv = store.conversations[store.conversation_ids()[3]]
    email = (
        store.customers[conv.customer_id].emails[0]["value"]
        if store.customers[conv.customer_id].emails
        else None
    )
    if email:
        found = all_conversations(sandbox, customerEmail=email.upper())
        assert conv.id in [c["id"] for c in found]
        assert all(c["customer"]["id"] == conv.customer_id for c in found)
    unassigned = all_conversations(sandbox, assignedTo="")
    assert unassigned and all(c["assignee"] is None for c in unassigned)
    refunds = all_conversations(sandbox, subject="REFUND")
    assert refunds and all("refund" in c["subject"].lower() for c in refunds)
    tagged = all_conversations(sandbox, tag="vip", embed="tags")
    assert tagged and all("vip" in [t["name"] for t in c["_embedded"]["tags"]] for c in tagged)
    one = all_conversations(sandbox, number=conv.number)
    assert [c["id"] for c in one] == [conv.id]
    mailbox = all_conversations(sandbox, mailboxId="1,3")
    assert {c["mailboxId"] for c in mailbox} == {1, 3}


def test_customers_list_filters_and_carries_fields_like_get_one(sandbox):
    listed = items(get(sandbox, "/api/customers", pageSize=1000), "customers")
    assert len(listed) == sandbox.store.count("customers")
    with_email = next(c for c in listed if c["_embedded"]["emails"])
    assert get(sandbox, f"/api/customers/{with_email['id']}") == with_email
    found = items(
        get(sandbox, "/api/customers", email=with_email["_embedded"]["emails"][0]["value"]),
        "customers",
    )
    assert [c["id"] for c in found] == [with_email["id"]]
    by_name = items(
        get(sandbox, "/api/customers", sortField="firstName", sortOrder="asc", pageSize=1000),
        "customers",
    )
    keys = [((c["firstName"] or "").casefold(), c["id"]) for c in by_name]
    assert keys == sorted(keys)


# ----- timestamps, sorting, threads, embed --------------------------------------------


def test_timestamps_have_one_second_resolution_and_users_use_the_dashed_form(sandbox):
    conv = get(sandbox, "/api/conversations/1")
    assert ISO.match(conv["createdAt"]) and ISO.match(conv["updatedAt"])
    assert all(ISO.match(t["createdAt"]) for t in conv["_embedded"]["threads"])
    assert ISO.match(items(get(sandbox, "/api/customers"), "customers")[0]["updatedAt"])
    for user in items(get(sandbox, "/api/users"), "users"):
        assert DASHED.match(user["createdAt"]) and DASHED.match(user["updatedAt"])
    assert DASHED.match(get(sandbox, "/api/users/1")["createdAt"])
    assert DASHED.match(items(get(sandbox, "/api/mailboxes"), "mailboxes")[0]["updatedAt"])
    logged = next(
        c for c in sandbox.store.conversation_ids() if sandbox.store.conversations[c].timelog_ids
    )
    log = items(get(sandbox, f"/api/conversations/{logged}/timelogs"), "timelogs")[0]
    assert DASHED.match(log["createdAt"])


def test_sorting_breaks_ties_by_id_ascending_in_both_orders(sandbox):
    asc = all_conversations(sandbox, sortField="updatedAt", sortOrder="asc")
    keys = [(c["updatedAt"], c["id"]) for c in asc]
    assert keys == sorted(keys)
    desc = all_conversations(sandbox, sortField="updatedAt", sortOrder="desc")
    assert [c["id"] for c in desc] == [
        c["id"] for c in sorted(asc, key=lambda c: (-parse_time(c["updatedAt"]), c["id"]))
    ]
    default = all_conversations(sandbox)
    assert [c["id"] for c in default] == [
        c["id"] for c in sorted(asc, key=lambda c: (-parse_time(c["createdAt"]), c["id"]))
    ]
    by_subject = all_conversations(sandbox, sortField="subject", sortOrder="asc")
    assert [(c["subject"].casefold(), c["id"]) for c in by_subject] == sorted(
        (c["subject"].casefold(), c["id"]) for c in asc
    )


def test_threads_are_newest_first(sandbox):
    for conv in all_conversations(sandbox, embed="threads")[:40]:
        keys = [(t["createdAt"], t["id"]) for t in conv["_embedded"]["threads"]]
        assert keys == sorted(keys, reverse=True)
        assert conv["threads"] == len(keys)


def test_embed_controls_the_embedded_lists(sandbox):
    plain = items(get(sandbox, "/api/conversations", status=ALL))[0]
    assert "_embedded" not in plain and isinstance(plain["threads"], int)
    full = items(get(sandbox, "/api/conversations", status=ALL, embed="threads,tags,timelogs"))[0]
    assert set(full["_embedded"]) == {"threads", "tags", "timelogs"}
    one = get(sandbox, f"/api/conversations/{plain['id']}")
    assert set(one["_embedded"]) == {"threads"} and one["threadsCount"] == plain["threads"]
    assert "_embedded" not in get(sandbox, f"/api/conversations/{plain['id']}", embed="")


def test_many_conversations_share_one_updated_second(sandbox_factory):
    sb = sandbox_factory(seed=3, conversations=700)
    counts = Counter(c.updated_at for c in sb.store.conversations.values())
    sharing = sum(n for n in counts.values() if n > 1)
    assert sharing >= 0.10 * 700
    second, biggest = counts.most_common(1)[0]
    assert biggest > 250
    page = get(
        sb,
        "/api/conversations",
        status=ALL,
        sortField="updatedAt",
        sortOrder="asc",
        updatedSince=fmt_time(second - 1),
        pageSize=100,
    )
    assert {c["updatedAt"] for c in items(page)} == {fmt_time(second)}


def test_the_same_seed_gives_byte_identical_responses(sandbox_factory):
    one, two = (
        sandbox_factory(seed=42, conversations=60),
        sandbox_factory(seed=42, conversations=60),
    )
    other = sandbox_factory(seed=43, conversations=60)
    paths = [
        "/api/conversations?status=" + ALL + "&embed=threads,tags,timelogs&pageSize=100",
        "/api/customers?pageSize=100",
        "/api/users",
        "/api/tags",
        "/api/mailboxes/2/folders",
    ]
    for path in paths:
        first = client(one).get(one.url + path).content
        assert first == client(two).get(two.url + path).content
    assert (
        client(other).get(other.url + paths[0]).content
        != client(one).get(one.url + paths[0]).content
    )


def test_seed_data_is_awkward_on_purpose(sandbox):
    store = sandbox.store
    texts = [c.subject for c in store.conversations.values()] + [
        t.body for t in store.threads.values()
    ]
    joined = "\n".join(texts)
    assert re.search(r"[\u0600-\u06ff]", joined) and re.search(r"[\u0590-\u05ff]", joined)
    assert re.search(r"[\u4e00-\u9fff]", joined) and re.search("[\U0001f300-\U0001faff]", joined)
    assert "&amp;" in joined and "<p>" in joined and "<br>" in joined
    assert any(len(t.body) > 40_000 for t in store.threads.values())
    assert any(s[:1] in "=+-@" for s in (c.subject for c in store.conversations.values()))
    assert {t.type for t in store.threads.values()} >= {"customer", "message", "note", "lineitem"}
    assert {c.state for c in store.conversations.values()} == {"published", "draft", "deleted"}
    assert {c.type for c in store.conversations.values()} == {"email", "phone", "chat"}
    assert any(len(c.emails) > 1 for c in store.customers.values())
    assert store.attachments and store.timelogs


def test_an_empty_sandbox_has_definitions_but_no_conversations(empty_sandbox):
    assert get(empty_sandbox, "/api/conversations", status=ALL)["page"]["totalElements"] == 0
    assert get(empty_sandbox, "/api/customers")["page"]["totalElements"] == 0
    assert get(empty_sandbox, "/api/tags")["page"]["totalElements"] == 0
    assert items(get(empty_sandbox, "/api/mailboxes/1/custom_fields"), "custom_fields")
    assert len(items(get(empty_sandbox, "/api/users"), "users")) == 8


# ----- writes -------------------------------------------------------------------------


def test_create_answers_201_with_resource_id_then_get_shows_it(sandbox):
    api = client(sandbox)
    before = max(c.number for c in sandbox.store.conversations.values())
    response = api.post(sandbox.url + "/api/conversations", json=new_conversation())
    assert response.status_code == 201 and response.content == b""
    conv_id = int(response.headers["Resource-ID"])
    conv = get(sandbox, f"/api/conversations/{conv_id}")
    assert conv["subject"] == "Hi there" and conv["number"] == before + 1
    assert conv["customer"]["email"] == "new.person@example.org"
    assert [t["body"] for t in conv["_embedded"]["threads"]] == [
        "newest: our reply",
        "oldest: question",
    ]
    assert conv["createdBy"]["type"] == "customer"
    assert conv["status"] == "active"


def test_imported_creates_keep_dates_and_send_no_notifications(sandbox):
    api, store = client(sandbox), sandbox.store
    body = new_conversation(
        imported=True,
        createdAt="2020-03-16T14:07:23Z",
        status="closed",
        closedAt="2020-03-17T10:00:00Z",
    )
    body["threads"][0]["createdAt"] = "2020-03-17T09:00:00Z"
    body["threads"][1]["createdAt"] = "2020-03-16T14:07:23Z"
    response = api.post(sandbox.url + "/api/conversations", json=body)
    assert response.status_code == 201
    conv = get(sandbox, f"/api/conversations/{response.headers['Resource-ID']}")
    assert (
        conv["createdAt"] == "2020-03-16T14:07:23Z" and conv["closedAt"] == "2020-03-17T10:00:00Z"
    )
    assert [t["createdAt"] for t in conv["_embedded"]["threads"]] == [
        "2020-03-17T09:00:00Z",
        "2020-03-16T14:07:23Z",
    ]
    assert (store.notifications_sent, store.imported_creates) == (0, 1)
    api.post(sandbox.url + "/api/conversations", json=new_conversation())
    assert (store.notifications_sent, store.imported_creates) == (1, 1)
    thread = api.post(
        sandbox.url + f"/api/conversations/{conv['id']}/threads",
        json={"type": "message", "text": "reply", "user": 1},
    )
    assert thread.status_code == 201 and store.notifications_sent == 2
    api.post(
        sandbox.url + f"/api/conversations/{conv['id']}/threads",
        json={"type": "note", "text": "quiet", "user": 1, "imported": True},
    )
    assert store.notifications_sent == 2


def test_validation_errors_name_each_bad_field(sandbox):
    body = new_conversation(subject="", status="Wrong", customFields=[{"id": 1, "value": "999"}])
    body["threads"][0]["user"] = 9999
    body["threads"][1]["type"] = "tweet"
    response = client(sandbox).post(sandbox.url + "/api/conversations", json=body)
    assert response.status_code == 400
    error = response.json()
    assert error["message"] == "Bad request" and error["errorCode"] == "BAD REQUEST"
    by_path = {e["path"]: e for e in error["_embedded"]["errors"]}
    assert by_path["subject"]["message"] == "may not be empty"
    assert (
        by_path["status"]["rejectedValue"] == "Wrong"
        and "Expected one of" in by_path["status"]["message"]
    )
    assert {"threads[0].user", "threads[1].type", "customFields[0].value"} <= set(by_path)
    assert all(e["source"] == "JSON" for e in by_path.values())
    bad_json = client(sandbox).post(
        sandbox.url + "/api/conversations",
        data="{nope",
        headers={"Content-Type": "application/json"},
    )
    assert bad_json.status_code == 400 and bad_json.json()["errorCode"] == "BAD REQUEST"


def test_customers_conflict_on_existing_email_and_limit_lengths(sandbox):
    api = client(sandbox)
    body = {"firstName": "Mark", "emails": [{"value": "mark.unique@example.org", "type": "work"}]}
    first = api.post(sandbox.url + "/api/customers", json=body)
    assert first.status_code == 201
    again = api.post(sandbox.url + "/api/customers", json=body)
    assert again.status_code == 409 and again.json()["errorCode"] == "CONFLICT"
    too_long = api.post(
        sandbox.url + "/api/customers", json={"firstName": "x" * 41, "company": "c" * 61}
    )
    assert too_long.status_code == 400
    assert {e["path"] for e in too_long.json()["_embedded"]["errors"]} == {"firstName", "company"}
    assert get(sandbox, f"/api/customers/{first.headers['Resource-ID']}")["firstName"] == "Mark"


def test_users_are_unique_by_email(sandbox):
    api = client(sandbox)
    body = {"firstName": "Jo", "lastName": "Doe", "email": "jo.doe@example.org"}
    assert api.post(sandbox.url + "/api/users", json=body).status_code == 201
    assert api.post(sandbox.url + "/api/users", json=body).status_code == 409
    assert [
        u["email"] for u in items(get(sandbox, "/api/users", email="JO.DOE@example.org"), "users")
    ] == ["jo.doe@example.org"]


def test_updates_bump_updated_at_and_tags_are_replaced(sandbox):
    api, store = client(sandbox), sandbox.store
    store.clock = lambda: 1_800_000_000
    conv_id = next(i for i in store.conversation_ids() if store.conversations[i].status == "active")
    url = sandbox.url + f"/api/conversations/{conv_id}"
    assert api.put(url, json={"subject": "Renamed"}).status_code == 204
    conv = get(sandbox, f"/api/conversations/{conv_id}")
    assert conv["subject"] == "Renamed" and conv["updatedAt"] == fmt_time(1_800_000_000)
    assert api.put(url, json={"status": "closed"}).status_code == 400  # byUser is required
    assert api.put(url, json={"byUser": 1, "status": "closed"}).status_code == 204
    assert get(sandbox, f"/api/conversations/{conv_id}")["closedBy"] == 1
    assert api.put(url + "/tags", json={"tags": ["vip", "brand-new"]}).status_code == 204
    assert api.put(url + "/tags", json={"tags": ["brand-new"]}).status_code == 204
    tags = get(sandbox, f"/api/conversations/{conv_id}", embed="tags")["_embedded"]["tags"]
    assert [t["name"] for t in tags] == ["brand-new"]
    listed = items(get(sandbox, "/api/tags", conversationId=conv_id), "tags")
    assert [t["name"] for t in listed] == ["brand-new"]
    field = next(d for d in store.mailbox_fields(conv["mailboxId"]) if d.type == "dropdown")
    option = sorted(field.options)[0]
    put = api.put(
        url + "/custom_fields", json={"customFields": [{"id": field.id, "value": option}]}
    )
    assert put.status_code == 204
    shown = get(sandbox, f"/api/conversations/{conv_id}")["customFields"]
    assert {
        "id": field.id,
        "name": field.name,
        "value": option,
        "text": field.options[option],
    } in shown


def test_folder_counts_follow_every_change_that_moves_a_conversation(sandbox):
    api, store = client(sandbox), sandbox.store

    def counts() -> dict:
        return {
            (m, f["id"]): (f["totalCount"], f["activeCount"])
            for m in store.mailboxes
            for f in items(get(sandbox, f"/api/mailboxes/{m}/folders"), "folders")
        }

    def recounted() -> dict:
        with store.lock:
            store._folder_counts.clear()
        return counts()

    def active_in(mailbox_id: int) -> int:
        return sum(a for (m, _), (_, a) in counts().items() if m == mailbox_id)

    before = counts()
    assert before == recounted()
    conv_id = next(
        i
        for i in store.conversation_ids()
        if store.conversations[i].status == "active" and store.conversations[i].mailbox_id == 1
    )
    url = sandbox.url + f"/api/conversations/{conv_id}"
    active = active_in(1)
    changes = [
        lambda: api.put(url + "/tags", json={"tags": ["vip"]}),
        lambda: api.put(url, json={"byUser": 1, "status": "closed"}),
        lambda: api.put(url, json={"byUser": 1, "status": "active"}),
        lambda: api.put(url, json={"byUser": 1, "mailboxId": 2}),
        lambda: api.post(
            url + "/threads",
            json={"type": "customer", "text": "again", "customer": {"email": "a@example.org"}},
        ),
        lambda: api.post(sandbox.url + "/api/conversations", json=new_conversation()),
        lambda: api.delete(url),
    ]
    seen = []
    for change in changes:
        response = change()
        assert response.status_code < 300, response.text
        assert counts() == recounted()
        seen.append(active_in(1))
    # Sums over folders (the assigned folder also counts its users' own ones), so directions:
    assert seen[0] == active  # a retag moves nothing
    assert seen[1] < seen[0] and seen[2] == active  # closed, then active again
    assert seen[3] < seen[2]  # moved to mailbox 2
    assert seen[5] > seen[4]  # a new active conversation in mailbox 1
    assert counts() != before


def test_delete_then_get_is_404(sandbox):
    api = client(sandbox)
    conv_id = sandbox.store.conversation_ids()[5]
    assert api.delete(sandbox.url + f"/api/conversations/{conv_id}").status_code == 204
    assert api.get(sandbox.url + f"/api/conversations/{conv_id}").status_code == 404
    assert conv_id not in [c["id"] for c in all_conversations(sandbox)]


def test_attachments_sent_as_data_are_served_back(sandbox):
    conv_id = sandbox.store.conversation_ids()[0]
    payload = {
        "type": "note",
        "text": "see file",
        "user": 1,
        "attachments": [
            {
                "fileName": "file.txt",
                "mimeType": "text/plain",
                "data": base64.b64encode(b"file").decode(),
            },
            {"fileName": "far.txt", "fileUrl": "https://example.org/uploads/far.txt"},
        ],
    }
    response = client(sandbox).post(
        sandbox.url + f"/api/conversations/{conv_id}/threads", json=payload
    )
    assert response.status_code == 201
    thread = get(sandbox, f"/api/conversations/{conv_id}")["_embedded"]["threads"][0]
    assert thread["id"] == int(response.headers["Resource-ID"])
    stored, linked = thread["_embedded"]["attachments"]
    assert stored["size"] == 4 and stored["fileUrl"].startswith(sandbox.url)
    assert requests.get(stored["fileUrl"]).content == b"file"
    assert linked["size"] == 0 and linked["fileUrl"] == "https://example.org/uploads/far.txt"


def test_the_store_api_and_request_hook(sandbox):
    store, seen = sandbox.store, []
    sandbox.on_request = lambda method, path, query: seen.append((method, path, query.get("page")))
    store.clock = lambda: 1_900_000_000
    first = store.conversation_ids()[0]
    thread_id = store.add_thread(
        first, "customer", "hello again", customer_email="someone@example.org"
    )
    conv = store.get_conversation(first)
    assert conv["_embedded"]["threads"][0]["id"] == thread_id and conv["status"] == "active"
    assert conv["updatedAt"] == fmt_time(1_900_000_000)
    get(sandbox, "/api/conversations", page=2)
    assert seen == [("GET", "/api/conversations", "2")]
    assert sandbox.request_log[-1][:2] == ("GET", "/api/conversations")


# ----- faults -------------------------------------------------------------------------


def test_rate_limit_answers_every_nth_request_429_with_retry_after(sandbox_factory):
    sb = sandbox_factory(seed=1, conversations=5, rate_limit_every=3, retry_after=2)
    api = client(sb)
    codes = [api.get(sb.url + "/api/tags").status_code for _ in range(6)]
    assert codes == [200, 200, 429, 200, 200, 429]
    limited = [api.get(sb.url + "/api/tags") for _ in range(3)][-1]
    assert (
        limited.headers["Retry-After"] == "2" and limited.json()["errorCode"] == "TOO MANY REQUESTS"
    )
    sb.retry_after_http_date = True
    dated = [api.get(sb.url + "/api/tags") for _ in range(3)][-1]
    assert dated.status_code == 429 and parsedate_to_datetime(dated.headers["Retry-After"])
    sb.rate_limit_every = 0
    assert all(api.get(sb.url + "/api/tags").status_code == 200 for _ in range(4))


def test_error_rate_answers_5xx_and_fault_paths_limit_it(sandbox_factory):
    sb = sandbox_factory(seed=1, conversations=5, error_rate=1.0)
    api = client(sb)
    codes = {api.get(sb.url + "/api/tags").status_code for _ in range(20)}
    assert codes <= {500, 502, 503, 504} and len(codes) > 1
    sb.fault_paths = ("/api/conversations",)
    assert api.get(sb.url + "/api/tags").status_code == 200
    assert api.get(sb.url + "/api/conversations").status_code >= 500
    assert sb.status_counts[200] == 1


def test_drop_rate_closes_the_connection_without_a_response(sandbox_factory):
    sb = sandbox_factory(seed=1, conversations=5, drop_rate=1.0)
    with pytest.raises(requests.ConnectionError):
        client(sb).get(sb.url + "/api/tags", timeout=5)
    assert sb.dropped_connections == 1
    sb.drop_rate = 0.0
    assert client(sb).get(sb.url + "/api/tags").status_code == 200


def test_latency_slows_each_request(sandbox_factory):
    sb = sandbox_factory(seed=1, conversations=5, latency=0.2)
    response = client(sb).get(sb.url + "/api/tags")
    assert response.elapsed.total_seconds() >= 0.2


def test_stop_closes_the_port(sandbox_factory):
    sb = sandbox_factory(seed=1, conversations=5)
    api = client(sb)
    url = sb.url + "/api/tags"
    assert api.get(url).status_code == 200
    sb.stop()
    with pytest.raises(requests.ConnectionError):
        api.get(url, timeout=2)


def test_sandbox_works_as_a_context_manager():
    with Sandbox(seed=2, conversations=3, api_key="k") as sb:
        assert requests.get(sb.url + "/api/tags", params={"api_key": "k"}).status_code == 200
    assert sb.url is None


def test_the_updated_at_index_stays_consistent_under_churn(sandbox):
    store, clock = sandbox.store, [2_000_000_000]
    store.clock = lambda: clock[0]
    ids = store.conversation_ids()
    for step, conv_id in enumerate(ids[::3]):
        clock[0] += step % 2  # pairs of changes share a second
        if step % 5 == 0:
            store.delete_conversation(conv_id)
        elif step % 5 == 1:
            store.add_thread(conv_id, "message", "pinged", user_id=1)
        else:
            store.touch_conversation(conv_id)
    listed = all_conversations(sandbox, sortField="updatedAt", sortOrder="asc")
    expected = sorted((c.updated_at, c.id) for c in store.conversations.values())
    assert [(parse_time(c["updatedAt"]), c["id"]) for c in listed] == expected
    newest = all_conversations(sandbox, updatedSince=fmt_time(2_000_000_000))
    assert {c["id"] for c in newest} == {i for t, i in expected if t > 2_000_000_000}


def test_customer_updates_bump_updated_at_and_reindex_emails(sandbox):
    api, store = client(sandbox), sandbox.store
    store.clock = lambda: 1_850_000_000
    customer_id = store.customer_ids()[0]
    url = sandbox.url + f"/api/customers/{customer_id}"
    assert (
        api.put(url, json={"lastName": "Renamed", "emails": ["fresh@example.org"]}).status_code
        == 204
    )
    shown = get(sandbox, f"/api/customers/{customer_id}")
    assert shown["lastName"] == "Renamed" and shown["updatedAt"] == fmt_time(1_850_000_000)
    assert [e["value"] for e in shown["_embedded"]["emails"]] == ["fresh@example.org"]
    since = items(get(sandbox, "/api/customers", updatedSince=fmt_time(1_849_999_999)), "customers")
    assert [c["id"] for c in since] == [customer_id]
    other = store.customer_ids()[1]
    taken = api.put(sandbox.url + f"/api/customers/{other}", json={"emails": ["fresh@example.org"]})
    assert taken.status_code == 409
    field = store.customer_field_defs()[0]
    put = api.put(
        url + "/customer_fields", json={"customerFields": [{"id": field.id, "value": "41"}]}
    )
    assert put.status_code == 204
    assert {"id": field.id, "name": field.name, "value": "41", "text": ""} in get(
        sandbox, f"/api/customers/{customer_id}"
    )["customerFields"]
