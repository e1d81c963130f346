"""Each fast reader of markup must read what it accepts exactly as the standard parser does."""

import random

from etl.htmltext import _BARE_TAG, _bare, _Parser, _tokenized, html_to_text

FRAGMENTS = [
    *("<p>", "</p>", "<br>", "<br/>", "<BR />", '<div class="x y">', "</div>", "<hr/>"),
    *('<a href="https://e.example/a?b=1&amp;c=2">', "</a>", "<a href='mailto:x@y.example'>"),
    *("<A HREF=http://plain.example>", '<a href="x"/>', "<a>", "<li>", "<ul>", "</ul>", "</li>"),
    *("<b>", "</b>", "<span style='color:red'>", "</span>", "<o:p>", "</o:p>", "<p\nclass=a>"),
    *("<td>", "<tr>", "</tr>", "<table>", "</table>", "<pre>", "</pre>", "<h1>", "</h1>"),
    *('<img alt="logo" src=x>', "<img src=x alt=''/>", "<input disabled>", "</p >"),
    *("<!-- note -->", "<!DOCTYPE html>", '<?xml version="1.0"?>', "<blockquote>"),
    *("&amp;", "&nbsp;", "&lt;", "&#233;", "&bogus;", "&amp", "a&b", " < ", "<3", "3 > 2"),
    *("\n", "  ", "\t", "Hello", "Zoë", "word"),
    # links the bare reader takes: an address and a label without markup
    *('<a href="mailto:X@y.example">', '<a href="www.e.example">', '<A HREF="/relative">'),
    *('<a href="x@y.example">', "x@y.example", "https://e.example/a?b=1&c=2", "\u2003"),
    # markup the tokenizer leaves to the standard parser
    *("<script>if (a<b) {}</script>", "<style>p{}</style>", "</ p>", "<!x>", "<"),
    '<p class="unclosed>',
]


def parsed(html: str) -> str:
    parser = _Parser()
    parser.feed(html)
    parser.close()
    return parser.text()


def test_tokenizer_agrees_with_the_standard_parser_on_random_markup():
    rng = random.Random(7)
    tokenized = 0
    for _ in range(4000):
        html = "".join(rng.choice(FRAGMENTS) for _ in range(rng.randint(1, 12)))
        fast = _tokenized(html)
        if fast is not None:
            tokenized += 1
            assert fast.text() == parsed(html), html
    assert tokenized > 1000  # the fast path is really taken


def test_markup_the_tokenizer_refuses_still_comes_out_as_text():
    html = "<p>Hi <script>if (a<b) {}</script>there</p><p>bye"
    assert _tokenized(html) is None
    assert html_to_text(html) == parsed(html) == "Hi there\n\nbye"


def test_bare_tag_bodies_read_as_the_standard_parser_reads_them():
    rng = random.Random(11)
    bare = plain_replaced = 0
    for _ in range(6000):
        html = "".join(rng.choice(FRAGMENTS) for _ in range(rng.randint(1, 12)))
        fast = _bare(html)
        if fast is not None:
            bare += 1
            tags = {tag[:2] for tag in _BARE_TAG.findall(html)}
            plain_replaced += tags <= {("", "p"), ("/", "p"), ("", "br")}
            assert fast == parsed(html), html
    assert bare > 500 and plain_replaced > 50  # both of its paths are really taken


def test_links_read_as_the_standard_parser_reads_them():
    rng = random.Random(13)
    hrefs = ["https://e.example/a?b=1&amp;c=2", "mailto:X@y.example", "www.e.example", "/faq"]
    hrefs += ["x@y.example", "http://e.example/", " https://e.example/ ", "&#104;ttp://e.x"]
    labels = ["", " ", "Help &amp; FAQ", "x@y.example", "https://e.example/a?b=1&c=2"]
    labels += ["\u2003www.e.example ", "  two  words  ", "3 < 4", "&bogus;", "http://e.example/"]
    around = ["", "<p>", "</p>", "<br>", " ", "  ", "see", "&amp;", "\n"]
    taken = 0
    for _ in range(3000):
        html = "".join(rng.choice(around) for _ in range(rng.randint(0, 3)))
        for _ in range(rng.randint(1, 2)):
            html += f'<a href="{rng.choice(hrefs)}">{rng.choice(labels)}</a>'
            html += "".join(rng.choice(around) for _ in range(rng.randint(0, 3)))
        fast = _bare(html)
        if fast is not None:
            taken += 1
            assert fast == parsed(html), html
    assert taken > 1000  # the bare reader really takes links
    # links, images, <pre> and hidden content are the tokenizer's
    for html in ("<p>see <a>here</a></p>", "<img>", "<pre> x </pre>", "<p>a<style>p{}</style>"):
        assert _bare(html) is None
