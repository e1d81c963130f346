"""HTML bodies read as text: what each kind of markup becomes."""

import pytest

from etl.htmltext import html_to_text


@pytest.mark.parametrize(
    ("html", "text"),
    [
        ("<p>Hi <b>there</b></p><p>bye</p>", "Hi there\n\nbye"),
        ("<ul><li>one</li><li>two</li></ul>", "- one\n- two"),
        (
            '<a href="https://e.example/x">docs</a> and '
            '<a href="mailto:a@b.example">a@b.example</a>',
            "docs (https://e.example/x) and a@b.example",
        ),
        ('<a href="/faq">FAQ</a>', "FAQ"),  # a relative address says nothing outside the helpdesk
        ("<p>Hi <script>if (a<b) {}</script>there</p><p>bye", "Hi there\n\nbye"),
        ("3 < 4 &amp; 5 > 2<br>next", "3 < 4 & 5 > 2\nnext"),
        ("<pre>  two  spaces </pre>", "two  spaces"),
        ('<img alt="logo" src=x>x', "[logo]x"),
        ("<table><tr><td>a</td><td>b</td></tr></table>", "a b"),
        ("<p>a</p>\n\n\n<p>b</p>  <br> <br>", "a\n\nb"),
        ("<p>Zo&euml;&nbsp;and&#233;</p>", "Zoë and\u00e9"),
    ],
)
def test_markup_becomes_readable_text(html, text):
    assert html_to_text(html) == text


def test_text_without_tags_keeps_its_own_line_breaks():
    assert html_to_text("plain\n\n  text") == "plain\n\n  text"
    assert html_to_text(None) is None


def test_markup_it_cannot_read_comes_back_as_it_is():
    assert html_to_text('<p class="unclosed>x') == '<p class="unclosed>x'
