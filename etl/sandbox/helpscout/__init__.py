"""An emulation of Help Scout's Mailbox API 2.0, for trying `etl migrate helpscout`.

    from etl.sandbox.helpscout import HelpScoutSandbox
    with HelpScoutSandbox(seed=1, conversations=30) as hs:
        token = requests.post(hs.url + "/v2/oauth2/token", data={
            "grant_type": "client_credentials", "client_id": hs.client_id,
            "client_secret": hs.client_secret}).json()["access_token"]

Seeded: three users (two of them users of the Smarticks sandbox), customers, conversations in
every status (spam included) and type, with customer threads, replies, notes, status line
items, attachments and inline images on the web file host. Faults as every emulation has.
"""

from .server import HelpScoutSandbox
from .store import HelpScoutStore

__all__ = ["HelpScoutSandbox", "HelpScoutStore"]
