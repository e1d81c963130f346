"""Endpoint handlers: a Request in, a Response out; all data access goes through the store."""

import json
import random
import re
from dataclasses import dataclass, field
from urllib.parse import quote

from . import query as q
from . import render, validate
from .errors import ApiFailure, bad_request, field_error, not_found
from .models import FOLDER_ASSIGNED, FOLDER_MINE


@dataclass
class Request:
    """What a handler needs: the store, route parameters, query string and raw body."""

    store: object
    method: str
    path: str
    params: dict
    query: dict
    body: bytes = b""

    def json(self):
        """The body parsed as JSON; malformed or empty bodies are a 400."""
        if not self.body.strip():
            raise bad_request([field_error("", "Request body may not be empty")])
        try:
            return json.loads(self.body)
        except (UnicodeDecodeError, ValueError) as exc:
            raise bad_request([field_error("", f"Malformed JSON: {exc}")]) from None


@dataclass
class Response:
    """Status, headers and an encoded body (str or bytes)."""

    status: int
    body: str | bytes = ""
    headers: dict = field(default_factory=dict)
    content_type: str = "application/json"


def created(ident: int) -> Response:
    """201 with the new entity's id in `Resource-ID` and an empty body."""
    return Response(201, headers={"Resource-ID": str(ident)})


NO_CONTENT = 204


def _embed(query: dict, default: str) -> tuple:
    value = query.get("embed", default)
    return tuple(part.strip() for part in value.split(",") if part.strip())


def _paged(key: str, encoded: list, query: dict) -> Response:
    page, size = q.parse_paging(query)
    items = q.page_slice(encoded, page, size)
    return Response(200, render.page_envelope(key, items, size, len(encoded), page))


def _conversation(store, conv_id: int):
    conv = store.conversations.get(conv_id)
    if conv is None:
        raise not_found("Conversation")
    return conv


# ----- conversations -------------------------------------------------------------------


def create_conversation(req: Request) -> Response:
    store = req.store
    body = req.json()
    with store.lock:
        spec = validate.conversation_create(store, body)
        return created(store.create_conversation(spec))


def get_conversation(req: Request) -> Response:
    store = req.store
    with store.lock:
        _conversation(store, req.params["id"])
        embed = _embed(req.query, "threads")
        return Response(200, store.conversation_json(req.params["id"], embed, in_list=False))


def list_conversations(req: Request) -> Response:
    store = req.store
    page, size = q.parse_paging(req.query)
    embed = _embed(req.query, "")
    with store.lock:
        plan = q.conversation_query(store, req.query)
        indexes = {"updatedAt": store.conv_updated, "createdAt": store.conv_created}
        ids, total = q.run(store.conversations, indexes, plan, page, size)
        items = [store.conversation_json(i, embed, in_list=True) for i in ids]
    return Response(200, render.page_envelope("conversations", items, size, total, page))


def update_conversation(req: Request) -> Response:
    store = req.store
    body = req.json()
    with store.lock:
        _conversation(store, req.params["id"])
        changes = validate.conversation_update(store, body)
        store.update_conversation(req.params["id"], **changes)
    return Response(NO_CONTENT)


def delete_conversation(req: Request) -> Response:
    store = req.store
    with store.lock:
        _conversation(store, req.params["id"])
        store.delete_conversation(req.params["id"])
    return Response(NO_CONTENT)


def update_custom_fields(req: Request) -> Response:
    store = req.store
    body = req.json()
    with store.lock:
        conv = _conversation(store, req.params["id"])
        store.set_conversation_fields(conv.id, validate.conversation_fields(store, conv, body))
    return Response(NO_CONTENT)


def update_tags(req: Request) -> Response:
    store = req.store
    body = req.json()
    with store.lock:
        conv = _conversation(store, req.params["id"])
        store.set_conversation_tags(conv.id, validate.tags(body))
    return Response(NO_CONTENT)


def create_thread(req: Request) -> Response:
    store = req.store
    body = req.json()
    with store.lock:
        conv = _conversation(store, req.params["id"])
        kwargs = validate.thread_create(store, conv, body)
        return created(store.add_thread(conv.id, **kwargs))


def list_timelogs(req: Request) -> Response:
    store = req.store
    with store.lock:
        conv = _conversation(store, req.params["id"])
        encoded = [render.to_json(render.timelog(store.timelogs[t])) for t in conv.timelog_ids]
    return _paged("timelogs", encoded, req.query)


# ----- customers -----------------------------------------------------------------------


def _email_values(values) -> list[str]:
    return [v.get("value") if isinstance(v, dict) else v for v in values or ()]


def create_customer(req: Request) -> Response:
    store = req.store
    body = req.json()
    with store.lock:
        data = validate.customer(body)
        emails = _email_values(data.get("emails"))
        taken = store.email_owner_conflicts(None, emails)
        if emails and len(taken) == len(emails):
            raise ApiFailure(
                409,
                "Customer with this email already exists",
                [field_error("emails", "already exists", ", ".join(taken))],
            )
        return created(store.create_customer(data))


def get_customer(req: Request) -> Response:
    store = req.store
    with store.lock:
        if req.params["id"] not in store.customers:
            raise not_found("Customer")
        return Response(200, store.customer_json(req.params["id"]))


def list_customers(req: Request) -> Response:
    store = req.store
    page, size = q.parse_paging(req.query)
    with store.lock:
        plan = q.customer_query(store, req.query)
        indexes = {"updatedAt": store.cust_updated, "createdAt": store.cust_created}
        ids, total = q.run(store.customers, indexes, plan, page, size)
        items = [store.customer_json(i) for i in ids]
    return Response(200, render.page_envelope("customers", items, size, total, page))


def update_customer(req: Request) -> Response:
    store = req.store
    body = req.json()
    with store.lock:
        customer_id = req.params["id"]
        if customer_id not in store.customers:
            raise not_found("Customer")
        data = validate.customer(body)
        emails = _email_values(data.get("emails")) + _email_values(data.get("emails_add"))
        taken = store.email_owner_conflicts(customer_id, emails)
        if taken:
            raise ApiFailure(
                409,
                "Email belongs to another customer",
                [field_error("emails", "already exists", ", ".join(taken))],
            )
        store.update_customer(customer_id, **data)
    return Response(NO_CONTENT)


def update_customer_fields(req: Request) -> Response:
    store = req.store
    body = req.json()
    with store.lock:
        if req.params["id"] not in store.customers:
            raise not_found("Customer")
        store.set_customer_fields(req.params["id"], validate.customer_fields(store, body))
    return Response(NO_CONTENT)


# ----- mailboxes, tags -----------------------------------------------------------------


def list_mailboxes(req: Request) -> Response:
    store = req.store
    with store.lock:
        user_id = q.int_param(req.query, "userId")
        boxes = sorted(store.mailboxes.values(), key=lambda m: m.id)
        if user_id is not None:
            user = store.users.get(user_id)
            allowed = (
                set()
                if user is None
                else (set(store.mailboxes) if user.role == "admin" else user.mailbox_ids)
            )
            boxes = [m for m in boxes if m.id in allowed]
        encoded = [render.to_json(render.mailbox(m)) for m in boxes]
    return _paged("mailboxes", encoded, req.query)


def _mailbox(store, mailbox_id: int):
    mailbox = store.mailboxes.get(mailbox_id)
    if mailbox is None:
        raise not_found("Mailbox")
    return mailbox


def list_mailbox_fields(req: Request) -> Response:
    store = req.store
    with store.lock:
        _mailbox(store, req.params["id"])
        encoded = [
            render.to_json(render.custom_field(d)) for d in store.mailbox_fields(req.params["id"])
        ]
    return _paged("custom_fields", encoded, req.query)


def list_folders(req: Request) -> Response:
    store = req.store
    with store.lock:
        mailbox = _mailbox(store, req.params["id"])
        user_id = q.int_param(req.query, "userId")
        folder_id = q.int_param(req.query, "folderId")
        folders = [f for f in store.folders.values() if f.mailbox_id == mailbox.id]
        if user_id is not None:
            folders = [f for f in folders if f.user_id in (None, user_id)]
        if folder_id is not None:
            folders = [f for f in folders if f.id == folder_id]
        totals, active = store.folder_counts(mailbox.id)
        mine = [
            f.id
            for f in store.folders.values()
            if f.mailbox_id == mailbox.id and f.type == FOLDER_MINE
        ]
        encoded = []
        for item in folders:
            if item.type == FOLDER_ASSIGNED:
                total, live = sum(totals[i] for i in mine), sum(active[i] for i in mine)
            else:
                total, live = totals[item.id], active[item.id]
            encoded.append(render.to_json(render.folder(item, total, live)))
    return _paged("folders", encoded, req.query)


def list_tags(req: Request) -> Response:
    store = req.store
    with store.lock:
        conv_id = q.int_param(req.query, "conversationId")
        if conv_id is None:
            tags = sorted(store.tags.values(), key=lambda t: t.id)
        else:
            conv = store.conversations.get(conv_id)
            tags = sorted((store.tags[t] for t in conv.tag_ids), key=lambda t: t.id) if conv else []
        encoded = [render.to_json(render.tag(t)) for t in tags]
    return _paged("tags", encoded, req.query)


# ----- users, webhooks, storage --------------------------------------------------------


def create_user(req: Request) -> Response:
    store = req.store
    body = req.json()
    with store.lock:
        data = validate.user_create(body)
        if store.user_by_email(data["email"]) is not None:
            raise ApiFailure(
                409,
                "User with this email already exists",
                [field_error("email", "already exists", data["email"])],
            )
        return created(store.create_user(data))


def get_user(req: Request) -> Response:
    store = req.store
    with store.lock:
        user = store.users.get(req.params["id"])
        if user is None:
            raise not_found("User")
        return Response(200, render.to_json(render.user(user)))


def list_users(req: Request) -> Response:
    store = req.store
    with store.lock:
        users = sorted(store.users.values(), key=lambda u: u.id)
        if req.query.get("email"):
            wanted = req.query["email"].strip().casefold()
            users = [u for u in users if u.email.casefold() == wanted]
        encoded = [render.to_json(render.user(u)) for u in users]
    return _paged("users", encoded, req.query)


def create_webhook(req: Request) -> Response:
    body = validate.webhook_create(req.json())
    return created(req.store.create_webhook(body["url"], body["events"]))


def delete_webhook(req: Request) -> Response:
    if not req.store.delete_webhook(req.params["id"]):
        raise not_found("Webhook")
    return Response(NO_CONTENT)


def get_attachment(req: Request) -> Response:
    """An uploaded file, served as a download that no browser renders as a page of ours."""
    store = req.store
    with store.lock:
        item = store.attachments.get(req.params["id"])
        if item is None or (item.data is None and not item.generated):
            raise not_found("Attachment")
        headers = {
            "Content-Disposition": attachment_disposition(item.file_name),
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "sandbox",
        }
        data = item.data if item.data is not None else seeded_file(item.id, item.size)
        return Response(200, data, headers, served_type(item.mime_type))


# Types a browser would run scripts in: an upload of one is served as plain bytes.
ACTIVE_TYPES = re.compile(r"html|xml|javascript|ecmascript|svg|x-shockwave", re.IGNORECASE)
MIME_TYPE = re.compile(r"[A-Za-z0-9!#$&^_.+-]+/[A-Za-z0-9!#$&^_.+-]+")


def served_type(uploaded: str | None) -> str:
    """The Content-Type an uploaded file is served with: as uploaded unless it is active
    content or not a plain `type/subtype`."""
    kind = (uploaded or "").split(";", 1)[0].strip()
    if not MIME_TYPE.fullmatch(kind) or ACTIVE_TYPES.search(kind):
        return "application/octet-stream"
    return kind.lower()


def attachment_disposition(file_name: str) -> str:
    """`attachment` with the name as plain ASCII (no quotes, slashes or controls) and whole
    in UTF-8 (RFC 6266), so the header cannot be broken out of and the download keeps it."""
    name = file_name.replace("\\", "/").rsplit("/", 1)[-1] or "attachment"
    plain = re.sub(r"[^A-Za-z0-9._ -]", "_", name).strip(" .") or "attachment"
    return f"attachment; filename=\"{plain}\"; filename*=UTF-8''{quote(name, safe='')}"


def seeded_file(ident: int, size: int) -> bytes:
    """The made-up content of a seeded attachment: the same bytes for the same id and size."""
    return random.Random(ident).randbytes(size)
