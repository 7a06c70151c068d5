"""Markdown of hostile patterns must render in bounded, linear time (issue 14).

    .venv/bin/python tests/bench/markdown_hostile.py            # writes results/markdown_hostile.md
    .venv/bin/python tests/bench/markdown_hostile.py --no-write

Each pattern is rendered through `hitl.lib.markdown.render_markdown` (the page's renderer; `--email`
for the inline-styles variant) at 500 KB (the largest content a request may carry) and at the largest
size rendered as Markdown (`MAX_MARKDOWN`; larger content is shown as escaped plain text), cold (a
fresh content each time: the per-content cache is bypassed). Goal: every case under one second.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

import django  # noqa: E402

django.setup()

from hitl.lib import markdown  # noqa: E402

PATTERNS = {
    "unbalanced [": "[",
    "unclosed links [a](": "[a](",
    "images in links [![": "[![",
    "balanced nesting [[[…]]]": None,
    "emphasis *a ": "*a ",
    "strong/em **_": "**_",
    "blockquotes > ": "> ",
    "nested lists": "  - ",
    "ordered lists 1. ": "1. ",
    "backticks `": "`",
    "backtick runs `` x ": "`` x ",
    "angle brackets <": "<",
    "entities &#": "&#",
}


def _text(pattern: str | None, size: int, salt: int) -> str:
    if pattern is None:
        half = size // 2
        body = "[" * half + "]" * (size - half)
    else:
        body = (pattern * (size // len(pattern) + 1))[:size]
    return f"{salt}\n{body}"[:size]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--email", action="store_true", help="inline styles (the email variant)")
    args = parser.parse_args()
    sizes = [500_000, markdown.MAX_MARKDOWN]
    rows, worst = [], 0.0
    salt = int(time.time())
    for name, pattern in PATTERNS.items():
        cells = []
        for size in sizes:
            salt += 1
            text = _text(pattern, size, salt)
            start = time.perf_counter()
            markdown.render_markdown(text, inline_styles=args.email)
            elapsed = time.perf_counter() - start
            worst = max(worst, elapsed)
            cells.append(f"{elapsed * 1000:.0f} ms")
        rows.append(f"| {name} | {' | '.join(cells)} |")
    header = [
        f"# Hostile Markdown ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC)",
        "",
        f"`{' '.join(sys.argv)}` on {platform.node()} ({platform.machine()}, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f}), CPython {platform.python_version()}.",
        "",
        f"| pattern | {sizes[0] // 1000} KB (plain-text path) | {sizes[1] // 1000} KB (Markdown path) |",
        "|---|---:|---:|",
    ]
    report = "\n".join(
        [*header, *rows, "", f"Worst: {worst * 1000:.0f} ms; goal < 1000 ms: {'met' if worst < 1 else 'NOT met'}.", ""]
    )
    print(report)
    if not args.no_write:
        (Path(__file__).parent / "results" / "markdown_hostile.md").write_text(report)


if __name__ == "__main__":
    main()
