"""Credentials out of every URL we show: a password in the server URL, a token in a file URL.

A URL is printed in summaries, errors, warnings and run records; what it carries to
authenticate (the `user:password@` part, a signed file URL's `token`) is shown as `***`.
The mirror keeps file URLs as the server sent them: only what is shown is redacted.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK = "***"
# Query parameters that authenticate whoever holds the URL (lower case).
SECRET_PARAMS = frozenset(
    {
        "token",
        "access_token",
        "api_key",
        "apikey",
        "key",
        "password",
        "secret",
        "signature",
        "sig",
        "x-amz-signature",
        "x-amz-credential",
        "x-amz-security-token",
        "x-goog-signature",
        "x-goog-credential",
    }
)
_URL = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>]+")


def redact_url(url: str) -> str:
    """The URL with its user info and secret query values shown as `***`."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return MASK
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{MASK}@{netloc.rpartition('@')[2]}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(name.lower() in SECRET_PARAMS for name, _ in pairs):
            pairs = [(n, MASK if n.lower() in SECRET_PARAMS else v) for n, v in pairs]
            query = urlencode(pairs, safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact_text(text: str) -> str:
    """`text` with every URL in it redacted (for messages built from other libraries' errors)."""
    return _URL.sub(lambda found: redact_url(found[0]), text)
