"""The new text of an email reply: quoted history and signatures removed.

email-reply-parser handles English "On … wrote:", `>` quotes, `--` signatures, "Sent from my …" and
Outlook's From:/Sent: blocks. Before it runs, we cut at separators it does not know: German, French,
Spanish and Dutch quote headers, Outlook's underscore rule and "Original Message" lines, and Apple
Mail's "On … at …, X wrote:" when a client wrapped it onto two lines.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

from email_reply_parser import EmailReplyParser

_CUT_LINES = [
    re.compile(r"^\s*Am .{4,120}(schrieb|geschrieben).{0,80}:\s*$", re.IGNORECASE),  # German
    re.compile(r"^\s*Le .{4,120}a écrit\s*:\s*$", re.IGNORECASE),  # French
    re.compile(r"^\s*El .{4,120}escribió\s*:\s*$", re.IGNORECASE),  # Spanish
    re.compile(r"^\s*Op .{4,120}schreef.{0,80}:\s*$", re.IGNORECASE),  # Dutch
    re.compile(r"^\s*On .{4,200}wrote\s*:\s*$", re.IGNORECASE),  # English, before the library
    re.compile(r"^\s*-{2,}\s*(Original Message|Ursprüngliche Nachricht|Message d'origine)\s*-{2,}\s*$", re.I),
    re.compile(r"^\s*_{20,}\s*$"),  # Outlook's rule above the quoted header block
    re.compile(r"^\s*(From|Von|De|Van)\s*:\s*.+$"),  # Outlook header block (From:/Von: …)
]
# A quote header that a client wrapped: "On Tue, 14 Jan 2026 at 12:00, Alice <a@x>\nwrote:".
_WRAPPED_HEADER = re.compile(r"^\s*(On|Am) [^\n]{4,200}\n[^\n]{0,120}(wrote|schrieb)\s*:\s*$", re.I | re.M)


def strip_quotes(text: str) -> str:
    text = (text or "").replace("\r\n", "\n").replace("\r", "\n")
    wrapped = _WRAPPED_HEADER.search(text)
    if wrapped:
        text = text[: wrapped.start()]
    lines = text.split("\n")
    for index, line in enumerate(lines):
        if index > 0 and any(pattern.match(line) for pattern in _CUT_LINES):
            lines = lines[:index]
            break
    return EmailReplyParser.parse_reply("\n".join(lines)).strip()


class _TextExtractor(HTMLParser):
    """HTML → text, dropping quoted history (<blockquote>, Gmail's and Outlook's quote containers).

    Outlook (web, new and 365) does not wrap the original: it writes an empty `#appendonsend` marker,
    an `<hr>`, the "From: … Sent: …" block in `#divRplyFwdMsg`, then the original as siblings. So at
    either marker (or the Mac's `#mail-editor-reference-message-container`) everything after is history.
    """

    _HISTORY_IDS = ("divRplyFwdMsg", "appendonsend", "mail-editor-reference-message-container")

    _BLOCK = {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "table"}
    _QUOTE_CLASSES = ("gmail_quote", "moz-cite-prefix", "yahoo_quoted", "protonmail_quote")

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skip_depth = 0
        self.stack: list[tuple[str, bool]] = []
        self.history = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        classes = attributes.get("class") or ""
        if attributes.get("id") in self._HISTORY_IDS:
            self.history = True
        skip = tag in ("blockquote", "script", "style", "head") or any(name in classes for name in self._QUOTE_CLASSES)
        if tag not in ("br", "img", "hr", "meta", "link", "input"):
            self.stack.append((tag, skip))
            if skip:
                self.skip_depth += 1
        if tag in self._BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        while self.stack:
            open_tag, skipped = self.stack.pop()
            if skipped:
                self.skip_depth -= 1
            if open_tag == tag:
                break
        if tag in self._BLOCK:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if self.skip_depth == 0 and not self.history:
            self.parts.append(data)


def html_to_text(html: str) -> str:
    parser = _TextExtractor()
    parser.feed(html or "")
    parser.close()
    text = "".join(parser.parts)
    lines = [re.sub(r"[ \t\xa0]+", " ", line).strip() for line in text.split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
