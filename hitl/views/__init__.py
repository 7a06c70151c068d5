"""Reviewer pages (SPEC §4), server-rendered: `inbox`, `review` (the review page and its actions),
`magic` (magic links), with `access` the one access helper they share, `context` what the review page
shows besides the request, `forms`, `link_session` (magic-link markers in the session), `urls`.

House style: short function views; `load_request` is the one access helper; one service call; a
redirect. Magic-link GETs only show (mail scanners open links); every change is a POST with a CSRF token.
"""
