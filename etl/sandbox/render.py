"""Turn internal records into the API's JSON shapes (pure: read-only use of the store's maps)."""

import json

from .timefmt import fmt_dashed, fmt_time, humanize_ago


def to_json(document) -> str:
    """Encode like the reference (PHP json_encode): ASCII only, slashes escaped as `\\/`."""
    return json.dumps(document, separators=(",", ":")).replace("/", "\\/")


def user_ref(store, user_id):
    """The short user object embedded in conversations and threads."""
    user = store.users.get(user_id) if user_id is not None else None
    if user is None:
        return None
    return {
        "id": user.id,
        "type": "user",
        "firstName": user.first_name,
        "lastName": user.last_name,
        "photoUrl": user.photo_url,
        "email": user.email,
    }


def primary_email(customer) -> str | None:
    """The customer's first email, if any."""
    return customer.emails[0]["value"] if customer.emails else None


def customer_ref(store, customer_id):
    """The short customer object embedded in conversations and threads."""
    customer = store.customers.get(customer_id) if customer_id is not None else None
    if customer is None:
        return None
    return {
        "id": customer.id,
        "type": "customer",
        "firstName": customer.first_name,
        "lastName": customer.last_name,
        "photoUrl": customer.photo_url,
        "email": primary_email(customer),
    }


def author_ref(store, author):
    """`createdBy` for a (kind, id) author."""
    kind, ident = author
    return user_ref(store, ident) if kind == "user" else customer_ref(store, ident)


def field_values(definitions, values: dict) -> list:
    """`customFields`/`customerFields`: set values in definition order, dropdowns with text."""
    out = []
    for definition in definitions:
        if definition.id not in values:
            continue
        value = values[definition.id]
        text = ""
        if definition.type == "dropdown" and definition.options:
            text = definition.options.get(str(value), "")
        out.append({"id": definition.id, "name": definition.name, "value": value, "text": text})
    return out


def attachment(item) -> dict:
    """One attachment's metadata."""
    return {
        "id": item.id,
        "fileName": item.file_name,
        "fileUrl": item.file_url,
        "mimeType": item.mime_type,
        "size": item.size,
    }


def thread(store, item) -> dict:
    """One thread as in `_embedded.threads`."""
    return {
        "id": item.id,
        "type": item.type,
        "status": item.status,
        "state": item.state,
        "action": item.action,
        "body": item.body,
        "source": {"type": item.source_type, "via": item.source_via},
        "customer": customer_ref(store, item.customer_id),
        "createdBy": author_ref(store, item.author),
        "assignedTo": user_ref(store, item.assigned_to),
        "to": item.to,
        "cc": item.cc,
        "bcc": item.bcc,
        "createdAt": fmt_time(item.created_at),
        "openedAt": fmt_time(item.opened_at),
        "_embedded": {
            "attachments": [attachment(store.attachments[a]) for a in item.attachment_ids]
        },
    }


def timelog(item) -> dict:
    """One timelog (dash-separated times, as the reference shows them)."""
    return {
        "id": item.id,
        "conversationId": item.conversation_id,
        "conversationStatus": item.conversation_status,
        "userId": item.user_id,
        "timeSpent": item.time_spent,
        "paused": item.paused,
        "finished": item.finished,
        "createdAt": fmt_dashed(item.created_at),
        "updatedAt": fmt_dashed(item.updated_at),
    }


def conversation(store, conv, embed=("threads",), in_list=False) -> dict:
    """A conversation; `threads` is a count in lists and `threadsCount` for a single GET."""
    waiting = None
    if conv.waiting_since is not None:
        waiting = {
            "time": fmt_time(conv.waiting_since),
            "friendly": humanize_ago(conv.updated_at - conv.waiting_since),
            "latestReplyFrom": conv.latest_reply_from,
        }
    creator_kind, creator_id = conv.created_by
    creator = author_ref(store, conv.created_by)
    doc = {
        "id": conv.id,
        "number": conv.number,
        ("threads" if in_list else "threadsCount"): len(conv.thread_ids),
        "type": conv.type,
        "folderId": conv.folder_id,
        "status": conv.status,
        "state": conv.state,
        "subject": conv.subject,
        "preview": conv.preview,
        "mailboxId": conv.mailbox_id,
        "assignee": user_ref(store, conv.assignee_id),
        "createdBy": {
            "id": creator_id,
            "type": creator_kind,
            "email": creator["email"] if creator else None,
        },
        "createdAt": fmt_time(conv.created_at),
        "updatedAt": fmt_time(conv.updated_at),
        "closedBy": conv.closed_by,
        "closedByUser": user_ref(store, conv.closed_by),
        "closedAt": fmt_time(conv.closed_at),
        "userUpdatedAt": fmt_time(conv.user_updated_at),
        "customerWaitingSince": waiting,
        "source": {"type": conv.source_type, "via": conv.source_via},
        "cc": conv.cc,
        "bcc": conv.bcc,
        "customer": customer_ref(store, conv.customer_id),
        "customFields": field_values(store.mailbox_fields(conv.mailbox_id), conv.custom_fields),
    }
    embedded = {}
    if "threads" in embed:
        embedded["threads"] = [thread(store, store.threads[t]) for t in conv.thread_ids]
    if "timelogs" in embed:
        embedded["timelogs"] = [timelog(store.timelogs[t]) for t in conv.timelog_ids]
    if "tags" in embed:
        embedded["tags"] = [{"id": t, "name": store.tags[t].name} for t in conv.tag_ids]
    if embedded:
        doc["_embedded"] = embedded
    return doc


def customer(store, item) -> dict:
    """A customer, identical in GET one and in lists."""
    address = item.address or {}
    return {
        "id": item.id,
        "firstName": item.first_name,
        "lastName": item.last_name,
        "company": item.company,
        "jobTitle": item.job_title,
        "photoType": item.photo_type,
        "photoUrl": item.photo_url,
        "createdAt": fmt_time(item.created_at),
        "updatedAt": fmt_time(item.updated_at),
        "notes": item.notes,
        "customerFields": field_values(store.customer_field_defs(), item.fields),
        "_embedded": {
            "emails": item.emails,
            "phones": item.phones,
            "social_profiles": item.social_profiles,
            "websites": item.websites,
            "address": {
                key: address.get(key) for key in ("city", "state", "zip", "country", "address")
            },
        },
    }


def user(item) -> dict:
    """A user (dash-separated times, as the reference shows them)."""
    return {
        "id": item.id,
        "firstName": item.first_name,
        "lastName": item.last_name,
        "email": item.email,
        "role": item.role,
        "alternateEmails": item.alternate_emails,
        "jobTitle": item.job_title,
        "phone": item.phone,
        "timezone": item.timezone,
        "photoUrl": item.photo_url,
        "language": item.language,
        "createdAt": fmt_dashed(item.created_at),
        "updatedAt": fmt_dashed(item.updated_at),
    }


def mailbox(item) -> dict:
    """A mailbox (dash-separated times, as the reference shows them)."""
    return {
        "id": item.id,
        "name": item.name,
        "email": item.email,
        "createdAt": fmt_dashed(item.created_at),
        "updatedAt": fmt_dashed(item.updated_at),
    }


def custom_field(item) -> dict:
    """A mailbox custom field definition; options as the reference shows per type."""
    if item.type == "dropdown":
        options = dict(item.options or {})
    elif item.type == "date":
        options = None
    else:
        options = ""
    return {
        "id": item.id,
        "name": item.name,
        "type": item.type,
        "options": options,
        "required": item.required,
        "sortOrder": item.sort_order,
    }


def folder(item, total: int, active: int) -> dict:
    """A mailbox folder with its counts."""
    return {
        "id": item.id,
        "name": item.name,
        "type": item.type,
        "userId": item.user_id,
        "totalCount": total,
        "activeCount": active,
        "meta": None,
    }


def tag(item) -> dict:
    """A tag with its usage counter."""
    return {"id": item.id, "name": item.name, "counter": item.counter, "color": item.color}


def page_envelope(key: str, items_json: list[str], size: int, total: int, number: int) -> str:
    """The list envelope around already-encoded items."""
    pages = -(-total // size) if size else 0
    page = to_json({"size": size, "totalElements": total, "totalPages": pages, "number": number})
    return '{"_embedded":{"' + key + '":[' + ",".join(items_json) + ']},"page":' + page + "}"
