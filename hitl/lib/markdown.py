"""Markdown → sanitised HTML, for review pages and emails (SPEC §2 `content`).

Rendered with Python-Markdown (fenced code highlighted by Pygments), then cleaned with nh3: no
scripts, no event-handler attributes, no `javascript:` or `data:` URLs survive, whatever the input.
"""

from __future__ import annotations

import markdown as md
import nh3

ALLOWED_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "code", "dd", "del", "div", "dl", "dt", "em", "h1", "h2", "h3",
    "h4", "h5", "h6", "hr", "i", "img", "kbd", "li", "ol", "p", "pre", "s", "span", "strong", "sub",
    "sup", "table", "tbody", "td", "th", "thead", "tr", "ul",
}  # fmt: skip
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title"},
    "span": {"class", "style"},
    "div": {"class"},
    "code": {"class"},
    "pre": {"class", "style"},
    "td": {"align"},
    "th": {"align"},
}
URL_SCHEMES = {"http", "https", "mailto"}


def render_markdown(text: str, *, inline_styles: bool = False) -> str:
    """Safe HTML for `text`. `inline_styles` puts highlighting colours in style attributes (email)."""
    html = md.markdown(
        text or "",
        extensions=["fenced_code", "tables", "sane_lists", "codehilite"],
        extension_configs={"codehilite": {"guess_lang": False, "noclasses": inline_styles, "css_class": "codehilite"}},
        output_format="html",
    )
    return nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=URL_SCHEMES,
        link_rel="noopener noreferrer nofollow",
        filter_style_properties={"color", "background-color", "font-weight", "font-style"},
    )
