"""The route table: path patterns to per-method handlers, and the matching rules."""

import re

from . import handlers as h
from .errors import ApiFailure

ID = r"(?P<id>\d+)"
ROUTES = (
    (r"/api/conversations", {"GET": h.list_conversations, "POST": h.create_conversation}),
    (
        rf"/api/conversations/{ID}",
        {"GET": h.get_conversation, "PUT": h.update_conversation, "DELETE": h.delete_conversation},
    ),
    (rf"/api/conversations/{ID}/custom_fields", {"PUT": h.update_custom_fields}),
    (rf"/api/conversations/{ID}/tags", {"PUT": h.update_tags}),
    (rf"/api/conversations/{ID}/threads", {"POST": h.create_thread}),
    (rf"/api/conversations/{ID}/timelogs", {"GET": h.list_timelogs}),
    (r"/api/customers", {"GET": h.list_customers, "POST": h.create_customer}),
    (rf"/api/customers/{ID}", {"GET": h.get_customer, "PUT": h.update_customer}),
    (rf"/api/customers/{ID}/customer_fields", {"PUT": h.update_customer_fields}),
    (r"/api/mailboxes", {"GET": h.list_mailboxes}),
    (rf"/api/mailboxes/{ID}/custom_fields", {"GET": h.list_mailbox_fields}),
    (rf"/api/mailboxes/{ID}/folders", {"GET": h.list_folders}),
    (r"/api/tags", {"GET": h.list_tags}),
    (r"/api/users", {"GET": h.list_users, "POST": h.create_user}),
    (rf"/api/users/{ID}", {"GET": h.get_user}),
    (r"/api/webhooks", {"POST": h.create_webhook}),
    (rf"/api/webhooks/{ID}", {"DELETE": h.delete_webhook}),
)
# A file name may hold an encoded "/" (the path is matched decoded): the name takes the rest.
PUBLIC_ROUTES = ((rf"/storage/attachment/{ID}/(?P<name>.+)", {"GET": h.get_attachment}),)
COMPILED = tuple((re.compile(p), m, True) for p, m in ROUTES) + tuple(
    (re.compile(p), m, False) for p, m in PUBLIC_ROUTES
)


def match(path: str):
    """(methods, params, needs_auth) for a path; a 404 ApiFailure when nothing matches."""
    if len(path) > 1:
        path = path.rstrip("/")
    for pattern, methods, needs_auth in COMPILED:
        found = pattern.fullmatch(path)
        if found:
            params = {k: int(v) if k == "id" else v for k, v in found.groupdict().items()}
            return methods, params, needs_auth
    raise ApiFailure(404, f"No route for {path}")


def allowed(methods: dict) -> str:
    """The Allow header value for a route."""
    return ", ".join(sorted({*methods, "OPTIONS"}))
