"""Attachments travel as `data`: read from a file beside the input, or downloaded at load time.

A `fileUrl` pointing at the source is never passed on (it dies with the source). A file that
cannot be read or downloaded is left out of its thread and noted; the conversation loads.
What was sent is recorded in the ledger's `expected` (name, size, sha256 per file) for
`etl verify`.
"""

from __future__ import annotations

import base64
import io
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from etl.client import Client, RetryPolicy
from etl.errors import ApiError, EtlError
from etl.ledger import file_digest

DOWNLOAD_ATTEMPTS = 3  # a file host that is gone should not hold the load for minutes


def downloader(client: Client) -> Callable[[str], bytes]:
    """Fetch a URL's bytes with fewer retries than the API gets; the key goes only to the API's
    own origin (Client.download), and the 429 gate is shared with the API client. A host that
    does not answer at all is not asked again in this load: its files are left out at once."""
    files = Client(
        client.url,
        client.api_key,
        timeout=client.timeout,
        deadline=client.deadline,
        retry=RetryPolicy(attempts=DOWNLOAD_ATTEMPTS, max_total_wait=60.0),
        gate=client.gate,
    )

    unreachable: dict[str, ApiError] = {}  # host -> why: its other files are not tried
    lock = threading.Lock()

    def fetch(url: str) -> bytes:
        host = urlsplit(url).netloc.lower()
        with lock:
            known = unreachable.get(host)
        if known is not None:
            raise ApiError(None, "GET", host, f"{known.detail}, earlier in this load")
        out = io.BytesIO()
        try:
            files.download(url, out)
        except ApiError as exc:
            if exc.status is None:  # no answer at all (no such host, refused, timed out)
                with lock:
                    unreachable.setdefault(host, exc)
            raise
        return out.getvalue()

    return fetch


def materialize(
    payload: dict[str, Any], fetch: Callable[[str], bytes], left_out: list[str]
) -> dict[str, Any]:
    """The payload to send: every attachment's content base64-encoded in `data`."""
    if not any("attachments" in t for t in payload.get("threads", [])):
        return payload
    threads = []
    for thread in payload["threads"]:
        if "attachments" not in thread:
            threads.append(thread)
            continue
        attachments = []
        for ref in thread["attachments"]:
            try:
                content = _content(ref, fetch)
            except (OSError, EtlError) as exc:
                left_out.append(f"attachment {ref['fileName']} ({why_not_read(exc)})")
                continue
            clean = {k: v for k, v in ref.items() if not k.startswith("_") and k != "fileUrl"}
            attachments.append(clean | {"data": base64.b64encode(content).decode("ascii")})
        thread = dict(thread, attachments=attachments)
        if not attachments:
            del thread["attachments"]
        threads.append(thread)
    return dict(payload, threads=threads)


def _content(ref: dict[str, Any], fetch: Callable[[str], bytes]) -> bytes:
    if ref.get("_path"):
        return Path(ref["_path"]).read_bytes()
    return fetch(ref["_url"])


def why_not_read(exc: Exception) -> str:
    """Why a file was left out, without its URL (a source URL may carry an access token)."""
    if isinstance(exc, OSError):
        return "could not be read"
    if isinstance(exc, ApiError):
        head = f"HTTP {exc.status}" if exc.status else "no answer"
        return f"not downloaded: {head}" + (f": {exc.detail}" if exc.detail else "")
    return "not downloaded"


def sent_files(thread: dict[str, Any]) -> list[dict[str, Any]]:
    """A sent thread's attachments as the ledger keeps them: fileName, size and sha256 of the
    bytes sent in `data`, in the order sent."""
    out = []
    for ref in thread.get("attachments") or []:
        content = base64.b64decode(ref["data"])
        digest = file_digest(content)
        out.append({"fileName": ref["fileName"], "size": len(content), "sha256": digest})
    return out


def with_sent_files(expected: dict[str, Any], sent: dict[str, Any]) -> dict[str, Any]:
    """`expected` with each thread's files as sent in the payload `sent` (newest first, as the
    API takes it; `expected` lists them oldest first)."""
    threads = [
        [*want[:3], sent_files(thread)]
        for want, thread in zip(expected["threads"], reversed(sent["threads"]), strict=True)
    ]
    return dict(expected, threads=threads)


def with_files_of(expected: dict[str, Any], before: dict[str, Any] | None) -> dict[str, Any]:
    """`expected` with the files recorded `before` for the threads it has unchanged (same type,
    date and body): a catch-up does not send them again, so only the ledger knows their files."""
    recorded: dict[tuple, list] = {}
    for thread in (before or {}).get("threads", []):
        if len(thread) > 3:
            recorded.setdefault(tuple(thread[:3]), []).append(thread[3])
    threads = []
    for thread in expected["threads"]:
        earlier = recorded.get(tuple(thread[:3]))
        threads.append([*thread[:3], earlier.pop(0)] if len(thread) == 3 and earlier else thread)
    return dict(expected, threads=threads)
