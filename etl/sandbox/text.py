"""Small text helpers shared by the store and the seeder."""

import html
import re

_TAG = re.compile(r"<[^>]+>")
_SPACE = re.compile(r"\s+")
PREVIEW_LENGTH = 255


def preview_of(body: str) -> str:
    """Plain-text preview: tags stripped, entities decoded, whitespace collapsed, truncated."""
    if "<" in body:
        body = _TAG.sub(" ", body[: PREVIEW_LENGTH * 8])
    if "&" in body:
        body = html.unescape(body)
    return _SPACE.sub(" ", body[: PREVIEW_LENGTH * 4]).strip()[:PREVIEW_LENGTH]


def digits(phone: str | None) -> str:
    """A phone number reduced to its digits, for matching."""
    return "".join(ch for ch in phone or "" if ch.isdigit())


def valid_email(value: object) -> bool:
    """A loose email shape check: something@something.tld, no spaces."""
    if not isinstance(value, str) or " " in value or value.count("@") != 1:
        return False
    local, _, domain = value.partition("@")
    return bool(local) and "." in domain.strip(".")
