"""Inline images that live at the source (pure): find them in a body, name them in place.

An `<img>` whose address dies with the source account is replaced by `[image: NAME]` once
its file is attached to the same thread, so the body names the attached file instead of a
dead link; one the migration could not fetch says `[image no longer available: NAME]`.
Images hosted anywhere else are left alone.
"""

from __future__ import annotations

import html
import re
from urllib.parse import parse_qs, unquote, urlsplit

IMG = re.compile(r"<img\b[^>]*?\bsrc\s*=\s*(\"[^\"]*\"|'[^']*'|[^\s>]+)[^>]*>", re.IGNORECASE)


def inline_sources(body: str) -> list[str]:
    """Every `<img>` address in an HTML body, entities decoded."""
    return [html.unescape(found.group(1).strip("\"'")) for found in IMG.finditer(body)]


def on_hosts(url: str, hosts: set[str]) -> bool:
    return bool(url) and urlsplit(url).netloc.lower() in hosts


def file_name(url: str) -> str:
    """`.../token/abc/?name=shot.png` -> `shot.png`; else the path's last part."""
    parts = urlsplit(url)
    name = (parse_qs(parts.query).get("name") or [""])[0]
    return name or unquote(parts.path.rstrip("/").rsplit("/", 1)[-1]) or "image"


def name_inline_images(
    body: str, names: dict[str, str], aliases: dict[str, str], dead_hosts: set[str]
) -> str:
    """Each `<img>` whose address (or its alias) is a key of `names` becomes `[image: NAME]`;
    one on `dead_hosts` that is not, `[image no longer available: NAME]`."""

    def replace(found: re.Match) -> str:
        src = html.unescape(found.group(1).strip("\"'"))
        name = names.get(src) or names.get(aliases.get(src, ""))
        if name:
            return f"[image: {html.escape(name)}]"
        if on_hosts(src, dead_hosts):
            return f"[image no longer available: {html.escape(file_name(src))}]"
        return found.group(0)

    return IMG.sub(replace, body)
