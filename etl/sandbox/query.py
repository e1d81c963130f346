"""List queries: parse the query string, filter, sort (ties by id ascending) and page.

Sorting by createdAt/updatedAt walks a bisect index, so the common incremental query
(`updatedSince=X&sortField=updatedAt&sortOrder=asc`, every status) costs one slice.
"""

from dataclasses import dataclass, field

from .errors import bad_request, field_error
from .models import STATES, STATUSES, TYPES
from .text import digits
from .timefmt import parse_time

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
CONVERSATION_SORTS = ("createdAt", "mailboxId", "number", "subject", "updatedAt", "waitingSince")
CUSTOMER_SORTS = ("createdAt", "firstName", "lastName", "updatedAt")


def _error(name: str, message: str, value=None):
    return bad_request([field_error(name, message, value, source="QUERY")])


def int_param(query: dict, name: str) -> int | None:
    value = query.get(name)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise _error(name, "must be an integer", value) from None


def _ints(query: dict, name: str) -> set[int] | None:
    value = query.get(name)
    if not value:
        return None
    try:
        return {int(part) for part in value.split(",") if part.strip()}
    except ValueError:
        raise _error(name, "must be comma separated integers", value) from None


def _choices(query: dict, name: str, allowed, default=None) -> set[str] | None:
    value = query.get(name)
    if value is None or value == "":
        return set(default) if default else None
    chosen = {part.strip() for part in value.split(",") if part.strip()}
    wrong = chosen - set(allowed)
    if wrong:
        listed = ", ".join(f"'{a}'" for a in allowed)
        raise _error(name, f"Expected one of these: {listed}", value)
    return chosen


def _time(query: dict, name: str) -> int | None:
    value = query.get(name)
    if not value:
        return None
    try:
        return parse_time(value)
    except ValueError:
        raise _error(
            name, "must be an ISO 8601 date-time, e.g. 2020-01-02T23:00:00Z", value
        ) from None


def _sort(query: dict, allowed) -> tuple[str, bool]:
    sort_field = query.get("sortField") or "createdAt"
    if sort_field not in allowed:
        raise _error("sortField", "Expected one of these: " + ", ".join(allowed), sort_field)
    order = (query.get("sortOrder") or "desc").lower()
    if order not in ("asc", "desc"):
        raise _error("sortOrder", "Expected one of these: asc, desc", order)
    return sort_field, order == "desc"


def parse_paging(query: dict) -> tuple[int, int]:
    """(page, pageSize): page 1-based (below 1 counts as 1), size 1..1000 (default 50)."""
    page = int_param(query, "page") or 1
    size = int_param(query, "pageSize")
    size = DEFAULT_PAGE_SIZE if size is None else min(max(size, 1), MAX_PAGE_SIZE)
    return max(page, 1), size


def page_slice(items, page: int, size: int):
    """The items of one page."""
    start = (page - 1) * size
    return items[start : start + size]


@dataclass
class ListQuery:
    """A parsed list query: predicates over records, an optional `since` window, the order."""

    sort_field: str
    descending: bool
    since: int | None = None  # strictly-after bound on the sort field (index walk)
    predicates: list = field(default_factory=list)


def conversation_query(store, query: dict) -> ListQuery:
    """Parse the conversation list filters; status defaults to `active` alone."""
    sort_field, descending = _sort(query, CONVERSATION_SORTS)
    plan = ListQuery(sort_field, descending)
    preds = plan.predicates
    statuses = _choices(query, "status", STATUSES, default=("active",))
    if statuses != set(STATUSES):
        preds.append(lambda c: c.status in statuses)
    states = _choices(query, "state", STATES)
    if states is not None and states != set(STATES):
        preds.append(lambda c: c.state in states)
    types = _choices(query, "type", TYPES)
    if types is not None:
        preds.append(lambda c: c.type in types)
    mailboxes = _ints(query, "mailboxId")
    if mailboxes is not None:
        preds.append(lambda c: c.mailbox_id in mailboxes)
    folder = int_param(query, "folderId")
    if folder is not None:
        preds.append(_folder_predicate(store, folder))
    if "assignedTo" in query:
        assignee = int_param(query, "assignedTo")
        preds.append(lambda c: c.assignee_id == assignee)
    for name, attr in (("customerId", "customer_id"), ("number", "number")):
        wanted = int_param(query, name)
        if wanted is not None:
            preds.append(lambda c, a=attr, w=wanted: getattr(c, a) == w)
    for name, kind in (("createdByUserId", "user"), ("createdByCustomerId", "customer")):
        wanted = int_param(query, name)
        if wanted is not None:
            preds.append(lambda c, k=kind, w=wanted: c.created_by == (k, w))
    if query.get("customerEmail"):
        owner = store.email_index.get(query["customerEmail"].strip().casefold())
        preds.append(lambda c: owner is not None and c.customer_id == owner)
    if query.get("customerPhone"):
        owners = (
            store.customers_with_phone(query["customerPhone"])
            if digits(query["customerPhone"])
            else set()
        )
        preds.append(lambda c: c.customer_id in owners)
    if query.get("subject"):
        needle = query["subject"].casefold()
        preds.append(lambda c: needle in c.subject.casefold())
    if query.get("tag"):
        tag_id = store.tag_by_name.get(query["tag"].strip().casefold())
        preds.append(lambda c: tag_id in c.tag_ids)
    _since(plan, "createdAt", _time(query, "createdSince"), lambda c: c.created_at)
    _since(plan, "updatedAt", _time(query, "updatedSince"), lambda c: c.updated_at)
    return plan


def _since(plan: ListQuery, sort_field: str, since: int | None, value) -> None:
    """Use the index window when sorting by the same field, else filter (strictly after)."""
    if since is None:
        return
    if plan.sort_field == sort_field:
        plan.since = since
    else:
        plan.predicates.append(lambda r: value(r) > since)


def _folder_predicate(store, folder_id: int):
    folder = store.folders.get(folder_id)
    if folder is not None and folder.type == 40:  # "Assigned": everything with an assignee
        return lambda c: (
            c.mailbox_id == folder.mailbox_id
            and c.assignee_id is not None
            and (c.state == "published" and c.status in ("active", "pending"))
        )
    return lambda c: c.folder_id == folder_id


def customer_query(store, query: dict) -> ListQuery:
    """Parse the customer list filters (exact, case-insensitive names; any email or phone)."""
    sort_field, descending = _sort(query, CUSTOMER_SORTS)
    plan = ListQuery(sort_field, descending)
    preds = plan.predicates
    for name, attr in (("firstName", "first_name"), ("lastName", "last_name")):
        if query.get(name):
            wanted = query[name].casefold()
            preds.append(lambda c, a=attr, w=wanted: (getattr(c, a) or "").casefold() == w)
    if query.get("email"):
        owner = store.email_index.get(query["email"].strip().casefold())
        preds.append(lambda c: c.id == owner)
    if query.get("phone"):
        wanted = digits(query["phone"])
        preds.append(lambda c: any(digits(p["value"]) == wanted for p in c.phones))
    _since(plan, "updatedAt", _time(query, "updatedSince"), lambda c: c.updated_at)
    return plan


SORT_KEYS = {
    "mailboxId": lambda r: r.mailbox_id,
    "number": lambda r: r.number,
    "subject": lambda r: r.subject.casefold(),
    "waitingSince": lambda r: r.waiting_since or 0,
    "firstName": lambda r: (r.first_name or "").casefold(),
    "lastName": lambda r: (r.last_name or "").casefold(),
}


def _combined(preds: list):
    """One predicate for all (the common single-filter case avoids a generator per record)."""
    if len(preds) == 1:
        return preds[0]
    return lambda record: all(p(record) for p in preds)


def run(records: dict, indexes: dict, plan: ListQuery, page: int, size: int):
    """Return (ids of the page, total matches). `indexes` maps sort fields to SortedIndex."""
    index = indexes.get(plan.sort_field)
    if index is not None:
        keys, lo, hi = index.window(plan.descending, plan.since)
        if not plan.predicates:
            start = lo + (page - 1) * size
            return [k[1] for k in keys[start : min(start + size, hi)]], max(hi - lo, 0)
        keep = _combined(plan.predicates)
        matched = [i for _, i in keys[lo:hi] if keep(records[i])]
        return page_slice(matched, page, size), len(matched)
    matched = list(records.values())
    if plan.predicates:
        matched = list(filter(_combined(plan.predicates), matched))
    matched.sort(key=lambda r: r.id)
    matched.sort(key=SORT_KEYS[plan.sort_field], reverse=plan.descending)  # stable: id asc ties
    return [r.id for r in page_slice(matched, page, size)], len(matched)
