"""A local, faithful Smarticks REST API with deterministic seed data and fault switches.

    from etl.sandbox import Sandbox
    with Sandbox(seed=1, conversations=200) as sb:
        requests.get(sb.url + "/api/conversations", headers={"X-Smarticks-API-Key": sb.api_key})

Where the reference is silent or ambiguous, the sandbox decides:
- conversation lists default to `status=active` only (the reference's trap, kept); no `state`
  means every state; `updatedSince`/`createdSince` mean strictly after, at one-second resolution;
- ties in every sort are broken by id ascending, in `desc` order too (desc is not the exact
  reverse of asc within one second); the default order is createdAt desc;
- threads are newest first (createdAt desc, id desc); lists say `"threads": <count>`, a single
  GET says `threadsCount`; lists embed nothing unless `embed` is given, a GET embeds threads;
- users, mailboxes and timelogs show times as `2021-04-21T13-24-01Z` (the reference's quirk);
- JSON is encoded like PHP's json_encode: non-ASCII as \\uXXXX and `/` as `\\/`;
- changing status, assignTo or mailboxId needs `byUser` (400 otherwise), as documented;
- a new customer is refused (409) only when every email it lists already exists; emails that
  exist are skipped; a customer update with another customer's email is a 409;
- seeded attachments point at https://files.example.org (metadata only, port-independent so
  responses stay byte-identical) unless `attachment_files=N`: then they point at the sandbox,
  which serves made-up content of at most N bytes each; uploaded `data` attachments are
  served at `<url>/storage/attachment/<id>/<fileName>` without a key, as downloads (active
  types such as text/html as application/octet-stream). Faults hit files too;
- a request without a valid key is refused before its body is read, and no body may exceed
  `max_body_mb` (413).
"""

from .serve import serve_forever
from .server import Sandbox
from .store import Store

__all__ = ["Sandbox", "Store", "serve_forever"]
