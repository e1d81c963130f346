"""`etl migrate` carries every customer of the source with their whole profile, over real HTTP:
source emulation -> a Smarticks sandbox, through `etl load customers`' path (ledger, matching,
filling in what a customer on the target lacks)."""

import time

import pytest
from helpers_migrate import FALLBACK, figure, kill_halfway_then_rerun, migrate
from helpers_migrate import empty_target as empty_target  # the fixture `target`
from helpers_migrate import working_in_tmp as working_in_tmp  # `in_tmp`, autouse

from etl.sandbox import Sandbox
from etl.sandbox.freshdesk import FreshdeskSandbox
from etl.sandbox.freshdesk.store import CONTACT_FIELDS
from etl.sandbox.helpscout import HelpScoutSandbox
from etl.sandbox.zendesk import ZendeskSandbox
from etl.sandbox.zendesk.store import USER_FIELDS


@pytest.fixture
def zendesk():
    with ZendeskSandbox(seed=1, tickets=40, page_limit=10) as server:
        yield server


def plan_field(target) -> str:
    """`--customer-field Plan=ID`: the target's customer field named Plan."""
    ident = next(d.id for d in target.store.customer_field_defs() if d.name == "Plan")
    return f"Plan={ident}"


def by_email(target) -> dict[str, dict]:
    """Target customers by each of their emails, and the email-less ones by first phone."""
    out = {}
    for ident in target.store.customer_ids():
        customer = target.store.get_customer(ident)
        keys = [e["value"] for e in customer["_embedded"]["emails"]]
        out.update({k: customer for k in keys or [customer["_embedded"]["phones"][0]["value"]]})
    return out


def zendesk_people(zendesk):
    """The end users a migration carries: not agents, not suspended spammers."""
    users = zendesk.store.users.values()
    return [u for u in users if u.role == "end-user" and not u.suspended]


def test_every_zendesk_end_user_arrives_with_the_whole_profile(zendesk, target, tmp_path):
    db = tmp_path / "m.db"
    result = migrate(zendesk, target, db, "--fallback-user", FALLBACK,
                     "--customer-field", plan_field(target))  # fmt: skip
    assert result.exit_code == 0, result.output
    people = zendesk_people(zendesk)
    with_tickets = {t.requester_id for t in zendesk.store.tickets.values()}
    assert len(people) == 30 and len([p for p in people if p.id not in with_tickets]) == 6
    assert figure(result.output, "customers created") == 30
    assert "skipped: 3 agents, 1 suspended (spam)" in result.output
    found = by_email(target)
    assert len(target.store.customer_ids()) == 30  # the tickets found them: none twice
    titles = {key: title for key, _, title in USER_FIELDS}
    store = zendesk.store
    for user in people:
        got = found[user.email or user.phone]
        first, _, last = user.name.partition(" ")
        assert (got["firstName"], got["lastName"]) == (first, last)
        emails = [user.email] if user.email else []
        emails += [v for kind, v in user.identities if kind == "email"]
        assert [e["value"] for e in got["_embedded"]["emails"]] == emails
        phones = [user.phone] if user.phone else []
        phones += [v for kind, v in user.identities if kind == "phone_number"]
        assert [p["value"] for p in got["_embedded"]["phones"]] == phones
        twitter = [{"value": v, "type": "twitter"} for k, v in user.identities if k == "twitter"]
        assert [
            {k: s[k] for k in ("value", "type")} for s in got["_embedded"]["social_profiles"]
        ] == twitter
        company = store.organizations.get(user.organization_id)
        assert got["company"] == company
        notes = "\n\n".join(p for p in (user.notes, user.details) if p) or None
        assert got["notes"] == notes
        fields = {f["name"]: f["value"] for f in got["customerFields"]}
        plan = user.user_fields.get("plan")
        assert fields == ({titles["plan"]: plan} if plan else {})
    # The conversations point at those customers, the phone-only ones included.
    convs = [target.store.get_conversation(i) for i in target.store.conversation_ids()]
    assert {c["customer"]["id"] for c in convs} <= set(target.store.customer_ids())
    assert "customer field Account manager (no target customer has it" in result.output


def test_a_lost_ledger_finds_every_customer_and_creates_none(zendesk, target, tmp_path):
    first = migrate(zendesk, target, tmp_path / "a.db", "--fallback-user", FALLBACK)
    assert first.exit_code == 0, first.output
    before = len(target.store.customer_ids())
    again = migrate(zendesk, target, tmp_path / "b.db", "--fallback-user", FALLBACK)
    assert again.exit_code == 0, again.output
    assert figure(again.output, "customers created") == 0
    assert figure(again.output, "customers on the target") == 30  # by email, else by phone
    assert len(target.store.customer_ids()) == before == 30
    assert figure(again.output, "created") == 0  # and the conversations are found too


def test_a_customer_on_the_target_is_filled_in_never_overwritten(zendesk, target, tmp_path):
    people = zendesk_people(zendesk)
    user = next(u for u in people if any(k == "email" for k, _ in u.identities))
    mine = target.store.create_customer(
        {
            "firstName": "Kept",
            "notes": "Our own note",
            "emails": [{"value": user.email}],
            "phones": [{"value": "+1 555 0100", "type": "home"}],
        }  # fmt: skip
    )
    result = migrate(zendesk, target, tmp_path / "m.db", "--fallback-user", FALLBACK)
    assert result.exit_code == 0, result.output
    assert figure(result.output, "customers filled in") == 1
    assert figure(result.output, "customers created") == 29
    got = target.store.get_customer(mine)
    assert (got["firstName"], got["notes"]) == ("Kept", "Our own note")
    assert got["lastName"] == user.name.partition(" ")[2]  # it had none
    second = [v for k, v in user.identities if k == "email"]
    assert [e["value"] for e in got["_embedded"]["emails"]] == [user.email, *second]
    assert [p["value"] for p in got["_embedded"]["phones"]][:2] == ["+1 555 0100", user.phone]


def test_a_change_at_the_source_after_cut_over_is_filled_in(zendesk, target, tmp_path):
    db = tmp_path / "m.db"
    assert migrate(zendesk, target, db, "--fallback-user", FALLBACK).exit_code == 0
    user = next(u for u in zendesk_people(zendesk) if not u.identities and u.email)
    zendesk.store.update_user(user.id, identities=[("phone_number", "+4512345678")])
    zendesk.store.settle()  # a minute passes: the export holds back the last one
    again = migrate(zendesk, target, db, "--fallback-user", FALLBACK)
    assert again.exit_code == 0, again.output
    assert "(1 read now" in again.output  # the user export's cursor: only the change
    assert figure(again.output, "customers filled in") == 1
    assert figure(again.output, "customers created") == 0
    got = by_email(target)[user.email]
    assert [p["value"] for p in got["_embedded"]["phones"]] == [user.phone, "+4512345678"]


def profile(customer: dict) -> dict:
    """What a target customer holds, in plain values (ids and dates left out)."""
    embedded = customer["_embedded"]
    address = {k: v for k, v in (embedded.get("address") or {}).items() if v}
    return {
        "name": (customer["firstName"], customer["lastName"]),
        "emails": [e["value"] for e in embedded["emails"]],
        "phones": [(p["value"], p["type"]) for p in embedded["phones"]],
        "social": [(p["value"], p["type"]) for p in embedded["social_profiles"]],
        "websites": [w["value"] for w in embedded["websites"]],
        "company": customer["company"],
        "jobTitle": customer["jobTitle"],
        "notes": customer["notes"],
        "address": address,
        "fields": {f["name"]: f["value"] for f in customer["customerFields"]},
    }


def test_every_help_scout_customer_arrives_with_the_whole_profile(target, tmp_path):
    with HelpScoutSandbox(seed=2, conversations=30, page_limit=7) as helpscout:
        result = migrate(helpscout, target, tmp_path / "m.db", "--fallback-user", FALLBACK,
                         "--customer-field", plan_field(target))  # fmt: skip
        people = list(helpscout.store.customers.values())
    assert result.exit_code == 0, result.output
    assert figure(result.output, "customers created") == len(people) == 20
    found = {}
    for ident in target.store.customer_ids():
        got = profile(target.store.get_customer(ident))
        found[(got["emails"] or [got["phones"][0][0]])[0]] = got
    assert len(found) == 20  # the conversations found them: none twice
    for person in people:
        address = dict(person.address or {})
        lines = address.pop("lines", None)
        if address:
            address["zip"] = address.pop("postalCode")
            address["address"] = ", ".join(lines)
        assert found[person.email or person.phones[0][0]] == {
            "name": (person.first, person.last),
            "emails": ([person.email] if person.email else []) + [e for e, _ in person.emails],
            "phones": person.phones,
            "social": person.social,
            "websites": person.websites,
            "company": person.organization,
            "jobTitle": person.job_title,
            "notes": person.background,
            "address": address,
            "fields": {"Plan": person.properties["plan"]} if person.properties else {},
        }


def test_every_freshdesk_contact_arrives_with_the_whole_profile(target, tmp_path):
    plan = next(d.id for d in target.store.customer_field_defs() if d.name == "Plan")
    with FreshdeskSandbox(seed=2, tickets=30, page_limit=6) as freshdesk:
        result = migrate(freshdesk, target, tmp_path / "m.db", "--fallback-user", FALLBACK,
                         "--customer-field", f"Plan={plan}")  # fmt: skip
        people = list(freshdesk.store.contacts.values())
        companies = dict(freshdesk.store.companies)
    assert result.exit_code == 0, result.output
    assert figure(result.output, "customers created") == len(people) == 19
    assert "customer field Region (no target customer has it" in result.output
    found = {}
    for ident in target.store.customer_ids():
        got = profile(target.store.get_customer(ident))
        found[(got["emails"] or [got["phones"][0][0]])[0]] = got
    assert len(found) == 19
    labels = {name: label for name, _, label in CONTACT_FIELDS}
    for person in people:
        first, _, last = person.name.partition(" ")
        phones = [(person.phone, "work")] if person.phone else []
        phones += [(person.mobile, "mobile")] if person.mobile else []
        assert found[person.email or person.phone] == {
            "name": (first, last),
            "emails": ([person.email] if person.email else []) + person.other_emails,
            "phones": phones,
            "social": [(person.twitter_id, "twitter")] if person.twitter_id else [],
            "websites": [],
            "company": companies.get(person.company_id),
            "jobTitle": person.job_title,
            "notes": person.description,
            "address": {"address": person.address} if person.address else {},
            "fields": {labels["plan"]: person.custom_fields["plan"]}
            if person.custom_fields.get("plan")
            else {},
        }


@pytest.mark.parametrize("flavor", [HelpScoutSandbox, FreshdeskSandbox])
def test_a_rerun_or_a_lost_ledger_creates_no_customer_twice(flavor, target, tmp_path):
    with flavor(seed=4, page_limit=8) as source:
        first = migrate(source, target, tmp_path / "a.db", "--fallback-user", FALLBACK)
        assert first.exit_code == 0, first.output
        count = len(target.store.customer_ids())
        rerun = migrate(source, target, tmp_path / "a.db", "--fallback-user", FALLBACK)
        lost = migrate(source, target, tmp_path / "b.db", "--fallback-user", FALLBACK)
    assert rerun.exit_code == 0 and lost.exit_code == 0, rerun.output + lost.output
    assert "(0 read now" in rerun.output
    assert figure(rerun.output, "customers loaded before") == count
    assert figure(lost.output, "customers created") == 0
    assert figure(lost.output, "customers on the target") == count
    assert len(target.store.customer_ids()) == count


def test_customers_killed_halfway_are_created_once_on_the_rerun(zendesk, tmp_path):
    """kill -9 while customers are being created (the target answers slowly), then a rerun:
    every end user exactly once, and the conversations point at them."""
    with Sandbox(empty=True, latency=0.02) as target:
        customers = lambda server: len(server.store.customer_ids())  # noqa: E731
        kill_halfway_then_rerun(zendesk, target, tmp_path, 8, 30, customers, workers=2)
        people = [target.store.get_customer(i) for i in target.store.customer_ids()]
        keys = [(p["_embedded"]["emails"] or p["_embedded"]["phones"])[0]["value"] for p in people]
        assert len(keys) == len(set(keys)) == 30
        convs = [target.store.get_conversation(i) for i in target.store.conversation_ids()]
        assert len(convs) == 37 and {c["customer"]["id"] for c in convs} <= {
            p["id"] for p in people
        }


def test_a_dry_run_reads_every_customer_and_sends_nothing(zendesk, target, tmp_path):
    result = migrate(zendesk, target, tmp_path / "m.db", "--fallback-user", FALLBACK, "--dry-run")
    assert result.exit_code == 0, result.output
    assert figure(result.output, "customers would be sent") == 30
    assert figure(result.output, "customers to create") == 30
    assert not target.store.customer_ids() and not target.store.conversation_ids()
    assert {r[1] for r in target.request_log if r[0] != "GET"} == set()


def test_a_phone_only_requesters_ticket_points_at_the_customer_migrated_before(
    zendesk, target, tmp_path
):
    store = zendesk.store
    caller = next(u for u in zendesk_people(zendesk) if not u.email)
    store.new_ticket(caller.id, "Called about an invoice", "Please call me back.")
    store.settle()
    result = migrate(zendesk, target, tmp_path / "m.db", "--fallback-user", FALLBACK)
    assert result.exit_code == 0, result.output
    assert len(target.store.customer_ids()) == 30  # the ticket found its customer by ledger
    mine = next(
        target.store.get_customer(i)
        for i in target.store.customer_ids()
        if [p["value"] for p in target.store.get_customer(i)["_embedded"]["phones"]]
        == [caller.phone]
    )
    convs = [target.store.get_conversation(i) for i in target.store.conversation_ids()]
    called = [c for c in convs if c["subject"] == "Called about an invoice"]
    assert [c["customer"]["id"] for c in called] == [mine["id"]]


@pytest.mark.parametrize("flavor", [HelpScoutSandbox, FreshdeskSandbox])
def test_a_customer_changed_at_the_source_since_is_filled_in(flavor, target, tmp_path):
    """The customers' walk goes on from where the last one began (modifiedSince,
    _updated_since): only the changed customer is read, and what it gained is added."""
    db = tmp_path / "m.db"
    with flavor(seed=5, page_limit=8) as source:
        assert migrate(source, target, db, "--fallback-user", FALLBACK).exit_code == 0
        people = getattr(source.store, "contacts", None) or source.store.customers
        person = next(p for p in people.values() if p.email)
        with source.store.lock:
            if flavor is HelpScoutSandbox:
                person.phones = [*person.phones, ("+4799887766", "home")]
                person.modified_at = int(time.time()) + 5
            else:
                person.other_emails = [*person.other_emails, "second.address@example.org"]
                person.updated_at = int(time.time()) + 5
        again = migrate(source, target, db, "--fallback-user", FALLBACK)
    assert again.exit_code == 0, again.output
    assert "(1 read now" in again.output
    assert figure(again.output, "customers filled in") == 1
    assert figure(again.output, "customers created") == 0
    got = next(
        target.store.get_customer(i)
        for i in target.store.customer_ids()
        if person.email in [e["value"] for e in target.store.get_customer(i)["_embedded"]["emails"]]
    )
    values = [e["value"] for e in got["_embedded"]["emails"] + got["_embedded"]["phones"]]
    assert ("+4799887766" if flavor is HelpScoutSandbox else "second.address@example.org") in values
