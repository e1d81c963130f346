"""An emulation of the Zendesk Support API, for trying `etl migrate zendesk` without an account.

    from etl.sandbox.zendesk import ZendeskSandbox
    with ZendeskSandbox(seed=1, tickets=40) as zd:
        requests.get(zd.url + "/api/v2/incremental/tickets/cursor.json?start_time=0",
                      auth=(zd.email + "/token", zd.token))

Seeded: three agents (two of them users of the Smarticks sandbox, one not), end users, tickets
in every status and channel with public replies, private notes, attachments and inline images,
two deleted tickets and one marked as spam. Faults: `rate_limit_every` (429 with Retry-After),
`error_rate` (503), `page_limit` (smaller pages, to see paging).
"""

from .server import ZendeskSandbox
from .store import ZendeskStore

__all__ = ["ZendeskSandbox", "ZendeskStore"]
