"""Mapping files -> pure row transformations: input rows in, source conversations/customers out.

A mapping is a TOML file (read with `tomllib`) that says where each Smarticks field comes from.
Nothing here talks to the API or the database: the output is normalised, checked data
(timestamps in UTC, statuses mapped, emails checked, limits checked), with every problem named
by file, row and field so the row can go to the rejects file.

The format, in brief (the shipped `mappings/*.toml` are commented examples):

    [source]
    system = "zendesk"        # names the source in the load ledger (ids are unique per system)
    format = "jsonl"          # csv | json | jsonl | xlsx; default from the file extension
    records = "tickets"       # JSON only: dotted path to the list of records
    encoding = "utf-8"        # text files; Excel on Windows writes cp1252
    timezone = "Europe/Paris" # zone of timestamps without an offset; unset: such rows are rejected
    date_formats = ["%d/%m/%Y %H:%M"]   # strptime formats tried after ISO 8601; "unix", "unix_ms"

    [conversation]            # one record = one conversation ...
    id = "id"
    threads = "comments"      # ... with its threads nested in a list; without `threads`, rows
                              #     sharing an `id` form one conversation, one thread per row
    threads_order = "oldest_first"      # the source's order, for threads with equal timestamps
    subject = "subject"
    status = { path = "status", map = "status" }
    type = { path = "via.channel", map = "type", default = "email" }
    createdAt = "created_at"  # default: the first thread's time
    closedAt = "closed_at"
    customer = { email = "requester.email", name = "requester.name" }   # or firstName/lastName
    assignee = "assignee.email"         # an agent's email, matched to the target's users
    mailbox = "mailbox.name"            # a target mailbox name, email or id (--mailbox wins)
    skip = { "deleted at the source" = "deletedAt" }   # reason = spec: not loaded when the
                              #     value is non-empty and not false/no/0
    tags = { path = "tags", split = "," }
    cc = "cc"
    custom_fields = { "Priority" = "priority" }   # target field name = spec; dropdown by label

    [thread]                  # evaluated on each thread (nested) or each row (grouped)
    type = { path = "type", map = "thread_type" }  # customer | message | note | skip | auto
    public = "public"         # false makes an agent's thread a note
    body = "html_body"
    text_to_html = false      # true: the body is plain text; escape it and keep line breaks
    createdAt = "created_at"
    author = { email = "author.email", type = "author.role", name = "author.name" }
    attachments = { path = "attachments", fileName = "file_name", url = "content_url" }

    [customer]                # for `etl load customers`
    id = "id"                 # default: the email
    email = "email"           # or emails = { path = "emails", value = "value", type = "type" }
    firstName = "first_name"

    [values.status]           # value maps, matched case-insensitively; "*" matches the rest
    solved = "closed"

    [lookups.users]           # another file beside the input, indexed by `key`
    file = "users.jsonl"
    key = "id"

A *spec* is a column name or dotted JSON path (`requester.email`, `emails.0.value`; `^.x`
reads the parent record from inside a nested thread), a list of specs (the first non-empty
wins), or a table: `{ path, map, default, split, lookup, field, strip_html, truncate }`,
`{ value = "constant" }`, `{ first = [...] }` or `{ join = [...], sep = " " }`.
"""

from etl.mapping.build import (
    AUTHOR_TYPES,
    LIMITS,
    SKIPPED_THREAD_TYPES,
    STATUSES,
    THREAD_TYPES,
    TYPES,
    Attachment,
    Person,
    Problem,
    RowReject,
    SourceConversation,
    SourceCustomer,
    SourceThread,
    conversations,
    customers,
    identifiable,
)
from etl.mapping.dates import DateProblem, one_second_before, parse_date
from etl.mapping.definition import (
    SHIPPED,
    Mapping,
    MappingError,
    load_mapping,
    parse_mapping,
    resolve_mapping_path,
    shipped_mappings,
)
from etl.mapping.draft import draft_mapping
from etl.mapping.values import (
    Evaluator,
    as_bool,
    as_list,
    get_path,
    html_to_line,
    is_empty,
    split_name,
    text,
    valid_email,
)

__all__ = [
    "AUTHOR_TYPES",
    "LIMITS",
    "SHIPPED",
    "SKIPPED_THREAD_TYPES",
    "STATUSES",
    "THREAD_TYPES",
    "TYPES",
    "Attachment",
    "DateProblem",
    "Evaluator",
    "Mapping",
    "MappingError",
    "Person",
    "Problem",
    "RowReject",
    "SourceConversation",
    "SourceCustomer",
    "SourceThread",
    "as_bool",
    "as_list",
    "conversations",
    "customers",
    "draft_mapping",
    "get_path",
    "html_to_line",
    "is_empty",
    "load_mapping",
    "one_second_before",
    "parse_date",
    "parse_mapping",
    "identifiable",
    "resolve_mapping_path",
    "shipped_mappings",
    "split_name",
    "text",
    "valid_email",
]
