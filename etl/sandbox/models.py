"""The sandbox's in-memory records (internal shapes; render.py turns them into API JSON)."""

from dataclasses import dataclass, field

STATUSES = ("active", "pending", "closed", "spam")
STATES = ("draft", "published", "deleted")
TYPES = ("email", "phone", "chat")
THREAD_TYPES = ("customer", "message", "note")

# Folder types from the reference: shared ones have no userId, Mine/Starred belong to a user.
FOLDER_UNASSIGNED, FOLDER_MINE, FOLDER_STARRED = 1, 20, 25
FOLDER_DRAFTS, FOLDER_ASSIGNED, FOLDER_CLOSED, FOLDER_SPAM, FOLDER_DELETED = 30, 40, 60, 80, 110
SHARED_FOLDERS = (
    ("Unassigned", FOLDER_UNASSIGNED),
    ("Drafts", FOLDER_DRAFTS),
    ("Assigned", FOLDER_ASSIGNED),
    ("Closed", FOLDER_CLOSED),
    ("Spam", FOLDER_SPAM),
    ("Deleted", FOLDER_DELETED),
)
USER_FOLDERS = (("Mine", FOLDER_MINE), ("Starred", FOLDER_STARRED))


@dataclass(slots=True)
class Mailbox:
    id: int
    name: str
    email: str
    created_at: int
    updated_at: int


@dataclass(slots=True)
class User:
    id: int
    first_name: str
    last_name: str
    email: str
    created_at: int
    updated_at: int
    role: str = "user"
    alternate_emails: str = ""
    job_title: str = ""
    phone: str = ""
    timezone: str = "UTC"
    photo_url: str | None = None
    language: str = "en"
    mailbox_ids: set = field(default_factory=set)


@dataclass(slots=True)
class Folder:
    id: int
    mailbox_id: int
    name: str
    type: int
    user_id: int | None = None


@dataclass(slots=True)
class CustomField:
    """A conversation custom field (mailbox_id set) or a customer field (mailbox_id None)."""

    id: int
    mailbox_id: int | None
    name: str
    type: str
    options: dict | None = None
    required: bool = False
    sort_order: int = 1


@dataclass(slots=True)
class Tag:
    id: int
    name: str
    color: int = 0
    counter: int = 0


@dataclass(slots=True)
class Customer:
    id: int
    first_name: str | None
    last_name: str | None
    created_at: int
    updated_at: int
    company: str | None = None
    job_title: str | None = None
    photo_type: str | None = None
    photo_url: str | None = None
    notes: str | None = None
    fields: dict = field(default_factory=dict)
    emails: list = field(default_factory=list)  # [{"id", "value", "type"}], first is primary
    phones: list = field(default_factory=list)
    social_profiles: list = field(default_factory=list)
    websites: list = field(default_factory=list)
    address: dict | None = None


@dataclass(slots=True)
class Attachment:
    id: int
    thread_id: int
    file_name: str
    mime_type: str
    size: int
    file_url: str
    data: bytes | None = None
    generated: bool = False  # a seeded file the sandbox makes up (see Store.serve_seeded_files)


@dataclass(slots=True)
class Thread:
    id: int
    conversation_id: int
    type: str  # customer | message | note | lineitem
    body: str
    created_at: int
    status: str
    author: tuple  # ("customer", id) or ("user", id)
    customer_id: int | None = None
    state: str = "published"
    assigned_to: int | None = None
    to: list = field(default_factory=list)
    cc: list = field(default_factory=list)
    bcc: list = field(default_factory=list)
    opened_at: int | None = None
    action: dict | None = None
    source_type: str = "email"
    source_via: str = "customer"
    attachment_ids: list = field(default_factory=list)


@dataclass(slots=True)
class Timelog:
    id: int
    conversation_id: int
    conversation_status: str
    user_id: int
    time_spent: int
    created_at: int
    updated_at: int
    paused: bool = False
    finished: bool = True


@dataclass(slots=True)
class Conversation:
    id: int
    number: int
    type: str
    mailbox_id: int
    subject: str
    status: str
    state: str
    customer_id: int | None
    created_by: tuple  # ("customer", id) or ("user", id)
    created_at: int
    updated_at: int
    folder_id: int = 0
    assignee_id: int | None = None
    closed_by: int | None = None
    closed_at: int | None = None
    user_updated_at: int | None = None
    source_type: str = "email"
    source_via: str = "customer"
    cc: list = field(default_factory=list)
    bcc: list = field(default_factory=list)
    custom_fields: dict = field(default_factory=dict)  # field id -> value (str)
    tag_ids: list = field(default_factory=list)
    thread_ids: list = field(default_factory=list)  # newest first
    timelog_ids: list = field(default_factory=list)  # newest first
    preview: str = ""
    waiting_since: int | None = None
    latest_reply_from: str | None = None


@dataclass(slots=True)
class Webhook:
    id: int
    url: str
    events: list
    created_at: int
