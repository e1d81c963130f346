"""Attachments travel as `data`: read from a file beside the input, or downloaded at load time.

A `fileUrl` pointing at the source is never passed on (it dies with the source). A file that
cannot be read or downloaded is left out of its thread and noted; the conversation loads.
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
                left_out.append(f"attachment {ref['fileName']} ({_why(exc)})")
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


def _why(exc: Exception) -> str:
    """Why a file was left out, without its URL (a source URL may carry an access token)."""
    if isinstance(exc, OSError):
        return "could not be read"
    if isinstance(exc, ApiError):
        head = f"HTTP {exc.status}" if exc.status else "no answer"
        return f"not downloaded: {head}" + (f": {exc.detail}" if exc.detail else "")
    return "not downloaded"
