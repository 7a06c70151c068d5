"""Markdown → sanitised HTML, for review pages and emails (SPEC §2 `content`).

Parsed by cmark-gfm (GitHub's C CommonMark parser, through cmarkgfm: tables, strikethrough): linear
in the input whatever its brackets, emphasis, lists or quotes — where Python-Markdown's inline parser
was super-quadratic on unbalanced `[` (and markdown-it-py, linear but pure Python, took ~30 s on 500 KB
of them: tests/bench/RESULTS.md). Fenced and indented code is highlighted by Pygments with the classes
`static/hitl/pygments.css` styles (`.codehilite`), or inline colours for email; the result is cleaned
with nh3: no scripts, no event-handler attributes, no `javascript:` or `data:` URLs survive, whatever
the input. Each content is rendered once per process and reused (by content hash).
"""

from __future__ import annotations

import hashlib
import html
import re
from functools import lru_cache

import cmarkgfm
import nh3
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import TextLexer, get_lexer_by_name
from pygments.util import ClassNotFound

MAX_INPUT = 1_000_000  # characters; request content is capped at 500 000 (hitl.services.request_input)
MAX_MARKDOWN = 100_000  # larger content is shown as plain, escaped text: bounded time on any input
MAX_NESTING = 32  # elements nested deeper are unwrapped (their text kept): the sanitiser's parser is
# superlinear in depth, and no review content needs more
MAX_HIGHLIGHT = 100_000  # characters of code tokenised per content; beyond, code is shown plain

# cmark's code blocks: `<pre lang="python"><code>…</code></pre>` (fenced with a language) or without
# the attribute. Non-greedy up to a fixed terminator: one linear pass.
_CODE = re.compile(r'<pre(?: lang="([^"]*)")?><code>(.*?)</code></pre>', re.DOTALL)
_TAG = re.compile(r"(<(/?)([a-z][a-z0-9]*)\b[^>]*>)")
_DEEP_QUOTES = re.compile(r"^( {0,3})(?:> ?){" + str(MAX_NESTING + 1) + ",}", re.MULTILINE)
_VOID = frozenset({"br", "hr", "img", "input"})

ALLOWED_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "code", "dd", "del", "div", "dl", "dt", "em", "h1", "h2", "h3",
    "h4", "h5", "h6", "hr", "i", "img", "kbd", "li", "ol", "p", "pre", "s", "span", "strong", "sub",
    "sup", "table", "tbody", "td", "th", "thead", "tr", "ul",
}  # fmt: skip
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title"},
    "span": {"class", "style"},
    "div": {"class", "style"},
    "code": {"class"},
    "pre": {"class", "style"},
    "td": {"align", "style"},
    "th": {"align", "style"},
}
URL_SCHEMES = {"http", "https", "mailto"}


class MarkdownError(ValueError):
    """The content cannot be rendered (too large, or the renderer failed)."""


def _highlight_blocks(raw: str, inline_styles: bool) -> str:
    formatter = HtmlFormatter(cssclass="codehilite", noclasses=inline_styles, wrapcode=True)
    budget = MAX_HIGHLIGHT

    def block(match: re.Match[str]) -> str:
        nonlocal budget
        code = html.unescape(match[2])
        budget -= len(code)
        if budget < 0:
            return f'<div class="codehilite"><pre><code>{match[2]}</code></pre></div>'
        try:
            lexer = get_lexer_by_name(match[1].split()[0]) if (match[1] or "").strip() else TextLexer()
        except ClassNotFound:
            lexer = TextLexer()
        return str(highlight(code, lexer, formatter)).rstrip("\n")

    return _CODE.sub(block, raw)


def _bounded_nesting(raw: str) -> str:
    """Unwrap elements nested deeper than MAX_NESTING, in one pass. cmark's output (raw HTML is not
    passed through) is well-formed, so a stack pairs every closing tag with its opening one."""
    parts = _TAG.split(raw)  # text, tag, "/" or "", name, text, tag, …  (the split runs in C)
    kept: list[bool] = []
    depth = 0
    for index in range(1, len(parts), 4):
        name = parts[index + 2]
        if name in _VOID:
            continue
        if not parts[index + 1]:
            keep = depth < MAX_NESTING
            kept.append(keep)
            if keep:
                depth += 1
            else:
                parts[index] = ""
        elif kept and kept.pop():
            depth -= 1
        else:
            parts[index] = ""
    del parts[2::4], parts[2::3]  # the captured "/" and name (after the first deletion: every 3rd)
    return "".join(parts)


def _collapse_quotes(text: str) -> str:
    """`> > > …` beyond MAX_NESTING on one line is one quote level per marker: keep MAX_NESTING."""
    return _DEEP_QUOTES.sub(lambda m: m[1] + "> " * MAX_NESTING, text)


def _render(text: str, inline_styles: bool) -> str:
    if len(text) > MAX_MARKDOWN:
        return f'<pre class="plain">{html.escape(text)}</pre>'
    try:
        # Raw HTML is left out by the parser (an HTML comment nh3 then drops): cmark's own markup is
        # well-formed, which bounding the nesting relies on.
        raw = _bounded_nesting(cmarkgfm.github_flavored_markdown_to_html(_collapse_quotes(text)))
    except Exception as exc:  # noqa: BLE001  (a C extension: whatever it raises, the content failed)
        raise MarkdownError(f"The content could not be rendered: {exc}") from exc
    return nh3.clean(
        _highlight_blocks(raw, inline_styles),
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=URL_SCHEMES,
        link_rel="noopener noreferrer nofollow",
        filter_style_properties={"color", "background-color", "background", "font-weight", "font-style"},
    )


@lru_cache(maxsize=256)
def _cached(digest: str, inline_styles: bool, text: str) -> str:
    return _render(text, inline_styles)


def render_markdown(text: str, *, inline_styles: bool = False) -> str:
    """Safe HTML for `text`. `inline_styles` puts highlighting colours in style attributes (email).
    Raises MarkdownError for content that cannot be rendered (callers record it)."""
    text = text or ""
    if len(text) > MAX_INPUT:
        raise MarkdownError(f"The content is over {MAX_INPUT} characters.")
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    return _cached(digest, inline_styles, text)
