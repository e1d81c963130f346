"""An emulation of the Freshdesk API v2, for trying `etl migrate freshdesk` without an account.

    from etl.sandbox.freshdesk import FreshdeskSandbox
    with FreshdeskSandbox(seed=1, tickets=30) as fd:
        requests.get(fd.url + "/api/v2/tickets", auth=(fd.api_key, "X"))

Seeded: three agents (two of them users of the Smarticks sandbox), contacts, tickets in every
status and source with replies, customer answers, private notes, attachments on signed links
to another host, inline images on the account, one spam and one deleted ticket.
"""

from .server import FreshdeskSandbox
from .store import FreshdeskStore

__all__ = ["FreshdeskSandbox", "FreshdeskStore"]
