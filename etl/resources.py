"""The API's list endpoints described as data: path, envelope key, cursor and fixed filters."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# The conversation list returns only `active` conversations unless `status` says otherwise:
# a backup must ask for every status explicitly.
ALL_STATUSES = "active,pending,closed,spam"


@dataclass(frozen=True)
class Resource:
    """One list endpoint. `per_mailbox` endpoints are read once for each mirrored mailbox."""

    name: str
    path: str
    key: str
    params: dict[str, Any] = field(default_factory=dict)
    cursor_field: str | None = None
    since_param: str | None = None
    per_mailbox: bool = False

    @property
    def incremental(self) -> bool:
        return self.cursor_field is not None

    def path_for(self, mailbox_id: int | None = None) -> str:
        return self.path.format(mailbox_id=mailbox_id)


MAILBOXES = Resource("mailboxes", "api/mailboxes", "mailboxes")
FOLDERS = Resource("folders", "api/mailboxes/{mailbox_id}/folders", "folders", per_mailbox=True)
CUSTOM_FIELDS = Resource(
    "custom_fields", "api/mailboxes/{mailbox_id}/custom_fields", "custom_fields", per_mailbox=True
)
USERS = Resource("users", "api/users", "users")
TAGS = Resource("tags", "api/tags", "tags")
CUSTOMERS = Resource(
    "customers",
    "api/customers",
    "customers",
    params={"sortField": "updatedAt", "sortOrder": "asc"},
    cursor_field="updatedAt",
    since_param="updatedSince",
)
CONVERSATIONS = Resource(
    "conversations",
    "api/conversations",
    "conversations",
    params={
        "status": ALL_STATUSES,
        "embed": "threads,tags",
        "sortField": "updatedAt",
        "sortOrder": "asc",
    },
    cursor_field="updatedAt",
    since_param="updatedSince",
)

# Order matters: conversations refer to mailboxes, users, customers and tags.
ALL = (MAILBOXES, FOLDERS, CUSTOM_FIELDS, USERS, TAGS, CUSTOMERS, CONVERSATIONS)
BY_NAME = {r.name: r for r in ALL}


def with_timelogs(resource: Resource) -> Resource:
    """The conversation endpoint asked to embed timelogs as well."""
    params = dict(resource.params, embed=resource.params["embed"] + ",timelogs")
    return Resource(**{**resource.__dict__, "params": params})
