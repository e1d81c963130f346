"""Helpdesk HTML -> readable plain text, for spreadsheets and the full-text index.

Paragraphs and line breaks survive as blank lines and newlines, list items get a dash, links
keep their address, and scripts, styles and markup disappear. A body with no tags at all is
plain text already and is returned as it is, so its own line breaks are kept. The one reader
is the standard library's tolerant `HTMLParser`.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

_TAG = re.compile(r"<[A-Za-z!/]")
_SPACES = re.compile(r"[ \t\f\v\r\n\u00a0]+")
_BLANK_LINES = re.compile(r"\n{3,}")

_PARAGRAPH = frozenset(
    "p div blockquote pre table ul ol dl h1 h2 h3 h4 h5 h6 section article header footer "
    "form fieldset address figure hr".split()
)
_LINE = frozenset("br tr li dt dd caption".split())
_CELL = frozenset(("td", "th"))
_HIDDEN = frozenset(("script", "style", "head", "title", "template", "noscript"))


class _Reader(HTMLParser):
    """Collects readable text from the parser's tag and text events."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.hidden = 0
        self.pre = 0
        self.links: list[tuple[str | None, int]] = []  # (href, len(parts) at <a>)

    def _break(self, text: str) -> None:
        self.parts.append(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _HIDDEN:
            self.hidden += 1
        elif tag in _PARAGRAPH:
            self._break("\n\n")
            if tag == "pre":
                self.pre += 1
        elif tag == "li":
            self._break("\n- ")
        elif tag in _LINE:
            self._break("\n")
        elif tag in _CELL:
            self._break(" ")
        elif tag == "a":
            self.links.append((dict(attrs).get("href"), len(self.parts)))
        elif tag == "img":
            alt = (dict(attrs).get("alt") or "").strip()
            if alt:
                self.parts.append(f"[{alt}]")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _HIDDEN:
            return  # <script/> opens nothing
        self.handle_starttag(tag, attrs)
        if tag == "a":
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in _HIDDEN:
            self.hidden = max(0, self.hidden - 1)
        elif tag in _PARAGRAPH:
            self._break("\n\n")
            if tag == "pre":
                self.pre = max(0, self.pre - 1)
        elif tag in _LINE and tag not in ("br", "li"):
            self._break("\n")
        elif tag == "a" and self.links:
            href, start = self.links.pop()
            label = _SPACES.sub(" ", "".join(self.parts[start:])).strip()
            address = (href or "").strip()
            if address.lower().startswith("mailto:"):
                address = address[7:]
            if address.startswith(("http", "www")) or "@" in address:
                if address != label:
                    self.parts.append(f" ({address})" if label else address)

    def handle_data(self, data: str) -> None:
        if self.hidden:
            return
        self.parts.append(data if self.pre else _SPACES.sub(" ", data))

    def text(self) -> str:
        return _tidy("".join(self.parts))


def _tidy(text: str) -> str:
    """Lines without edge spaces, at most one blank line in a row, none at the ends."""
    lines = [line.strip(" ") for line in text.split("\n")]
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


def html_to_text(html: str | None) -> str | None:
    """Readable text of an HTML body; never raises (a body it cannot read comes back as is)."""
    if html is None:
        return None
    if not isinstance(html, str):
        html = str(html)
    if not _TAG.search(html):
        return html
    try:
        parser = _Reader()
        parser.feed(html)
        parser.close()
        return parser.text()
    except Exception:  # noqa: BLE001 - a search index must not break a sync over odd markup
        return html
