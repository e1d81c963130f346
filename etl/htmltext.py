"""Helpdesk HTML -> readable plain text, for spreadsheets and the full-text index.

Paragraphs and line breaks survive as blank lines and newlines, list items get a dash, links
keep their address, and scripts, styles and markup disappear. A body with no tags at all is
plain text already and is returned as it is, so its own line breaks are kept.

Three readers, fastest first, each leaving what it does not accept to the next: bodies of
attribute-free tags (most helpdesk mail) by a split or plain replacing; well-formed markup by
one regular expression, which takes about half the time of the standard library's parser; and
that parser for everything else. Tests hold the first two to the parser's output.
"""

from __future__ import annotations

import re
from html import unescape
from html.parser import HTMLParser

_TAG = re.compile(r"<[A-Za-z!/]")
_SPACES = re.compile(r"[ \t\f\v\r\n\u00a0]+")


def _collapse(text: str) -> str:
    """Each run of spaces, tabs, newlines and no-break spaces as one space.

    Most text has nothing to collapse, and looking for that takes a few substring searches,
    against about 20 ns a character for the regular expression.
    """
    if (
        "  " in text
        or "\n" in text
        or "\t" in text
        or "\xa0" in text
        or "\r" in text
        or "\f" in text
        or "\v" in text
    ):
        return _SPACES.sub(" ", text)
    return text


_BLANK_LINES = re.compile(r"\n{3,}")

_PARAGRAPH = frozenset(
    "p div blockquote pre table ul ol dl h1 h2 h3 h4 h5 h6 section article header footer "
    "form fieldset address figure hr".split()
)
_LINE = frozenset("br tr li dt dd caption".split())
_CELL = frozenset(("td", "th"))
_HIDDEN = frozenset(("script", "style", "head", "title", "template", "noscript"))


class _Text:
    """Collects readable text from tag and text events, however they were parsed."""

    def __init__(self) -> None:
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
        self.parts.append(data if self.pre else _collapse(data))

    def text(self) -> str:
        return _tidy("".join(self.parts))


def _tidy(text: str) -> str:
    """Lines without edge spaces, at most one blank line in a row, none at the ends."""
    lines = [line.strip(" ") for line in text.split("\n")]
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


class _Parser(_Text, HTMLParser):
    """The standard library's tolerant parser, for markup the tokenizer below leaves to it."""

    def __init__(self) -> None:
        _Text.__init__(self)
        HTMLParser.__init__(self, convert_charrefs=True)


# One token of well-formed markup: text, a start or end tag with quoted or plain attributes, a
# comment, a doctype or processing instruction, or a `<` that cannot open a tag ("3 < 4").
# Anything else (unclosed tags, <script> and <style>, odd declarations) goes to _Parser.
_TOKEN = re.compile(
    r"""(?P<text>[^<]+)"""
    r"""|<(?P<end>/?)(?P<tag>[A-Za-z][^\t\n\r\f />\x00]*)"""
    r"""(?P<attrs>(?:[\s/]+[^\s/>"'=]+(?:\s*=\s*(?:"[^"]*"|'[^']*'|[^\s"'=<>`]+))?)*)[\s/]*>"""
    r"""|<!--.*?-->|<![Dd][Oo][Cc][Tt][Yy][Pp][Ee][^>]*>|<\?[^>]*>"""
    r"""|(?P<lt><)(?=[^A-Za-z!/?])""",
    re.S,
)
_ATTR = re.compile(r"""[\s/]([^\s/>"'=]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'=<>`]+)))?""")
_RAW_TEXT = frozenset(("script", "style"))


def _attrs(text: str) -> list[tuple[str, str | None]]:
    pairs = []
    for name, double, single, plain in _ATTR.findall(text):
        value = double or single or plain
        pairs.append((name.lower(), unescape(value) if "&" in value else value))
    return pairs


def _tokenized(html: str) -> _Text | None:
    """Events for well-formed markup, or None if any of it needs the full parser."""
    sink = _Text()
    pos, size = 0, len(html)
    match = _TOKEN.match
    while pos < size:
        token = match(html, pos)
        if token is None:
            return None
        text, tag = token["text"], token["tag"]
        if text is not None:
            sink.handle_data(unescape(text) if "&" in text else text)
        elif token["lt"]:
            sink.handle_data("<")
        elif tag is not None:
            tag = tag.lower()
            if tag in _RAW_TEXT:
                return None
            if token["end"]:
                sink.handle_endtag(tag)
            elif html[token.end() - 2] == "/":
                sink.handle_startendtag(tag, _attrs(token["attrs"]))
            else:
                sink.handle_starttag(tag, _attrs(token["attrs"]))
        pos = token.end()
    return sink


# Most helpdesk bodies are only tags without attributes (`<p>`, `<br>`, `<b>`), and links:
# each tag becomes a line break or nothing, and a link its label and address, which one split
# and a few comprehensions do at a third of the tokenizer's cost. Other tags (links with more
# than an address or with markup inside, images, <pre>, hidden content) are the tokenizer's.
_BARE_TAG = re.compile(
    r"""<(/?)([A-Za-z][A-Za-z0-9]*)\s*/?>|<[Aa]\s+[Hh][Rr][Ee][Ff]="([^"\s]*)">([^<]*)</[Aa]>"""
)
_LITERAL_LT = re.compile(r"<(?=[^A-Za-z!/?])")  # "3 < 4": text, as the tokenizer reads it
_BARE_START = {
    **dict.fromkeys(_PARAGRAPH, "\n\n"),
    **dict.fromkeys(_LINE, "\n"),
    "li": "\n- ",
    **dict.fromkeys(_CELL, " "),
}
_BARE_END = {**dict.fromkeys(_PARAGRAPH, "\n\n"), **dict.fromkeys(_LINE - {"br", "li"}, "\n")}
_NOT_BARE = frozenset(("a", "img", "pre", *_HIDDEN))


def _data(text: str) -> str:
    return _collapse(unescape(text) if "&" in text else text)


def _link(href: str, label: str, entities: bool) -> str:
    """A link as `_Text` writes it: the label, then the address unless the label is it."""
    text = _data(label) if entities else label
    address = (unescape(href) if "&" in href else href).strip()
    if address.lower().startswith("mailto:"):
        address = address[7:]
    if address.startswith(("http", "www")) or "@" in address:
        shown = text.strip()
        if address != shown:
            return f"{text} ({address})" if shown else text + address
    return text


def _bare(html: str) -> str | None:
    """The text of markup made only of attribute-free tags and links, or None if it holds more."""
    entities = "&" in html
    if not entities:
        # Whitespace runs never cross a tag, so collapsing them first is collapsing each text.
        html = _collapse(html)
        if html.count("<") == html.count("<p>") + html.count("</p>") + html.count("<br>"):
            return _tidy(html.replace("<p>", "\n\n").replace("</p>", "\n\n").replace("<br>", "\n"))
    parts = _BARE_TAG.split(html)  # text, "/" or "", tag name, href, label, text, ...
    ends, tags, hrefs = parts[1::5], parts[2::5], parts[3::5]
    links = len(tags) - hrefs.count(None)  # each took two "<"
    if len(tags) + links + len(_LITERAL_LT.findall(html)) != html.count("<") or html.endswith("<"):
        return None
    names = [tag and tag.lower() for tag in tags]  # None for a link
    if not _NOT_BARE.isdisjoint(names):
        return None
    texts = [_data(text) for text in parts[0::5]] if entities else parts[0::5]
    pieces = [""] * (2 * len(tags) + 1)
    pieces[0::2] = texts
    pieces[1::2] = [
        (_BARE_END if end else _BARE_START).get(name, "")
        if href is None
        else _link(href, label, entities)
        for end, name, href, label in zip(ends, names, hrefs, parts[4::5], strict=True)
    ]
    return _tidy("".join(pieces))


def html_to_text(html: str | None) -> str | None:
    """Readable text of an HTML body; never raises (a body it cannot read comes back as is)."""
    if html is None:
        return None
    if not isinstance(html, str):
        html = str(html)
    if not _TAG.search(html):
        return html
    try:
        text = _bare(html)
        if text is not None:
            return text
        sink = _tokenized(html)
        if sink is None:
            sink = _Parser()
            sink.feed(html)
            sink.close()
        return sink.text()
    except Exception:  # noqa: BLE001 - a search index must not break a sync over odd markup
        return html
