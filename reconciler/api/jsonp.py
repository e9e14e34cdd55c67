"""JSONP for the seed's endpoints, so the seed's own GUI (and scripts built like it) work.

Why: the seed's clients call every endpoint as `$.ajax({dataType: 'jsonp', jsonp:
'jsonp_callback', ...})`, i.e. through a `<script>` tag.  Such a client sees no status code and
no body unless the answer is a script that calls its callback; a 404 or 405 reaches it as a
failed script load and the page stays empty.  So with `jsonp_callback=NAME` a seed endpoint
answers 200 `/**/NAME(<the plain mode's JSON body>);`, and the seed's mutating endpoints answer
the seed's own failure value (`vmid` 0, `status` 0, `volumeid` 0) with the explanation.

This is a layer over the replies of `seed.py`, not a second implementation: the handlers stay
the same and only the response is wrapped, so both modes give the same answers.

Safety: the callback name is the only thing taken from the request into the body, and only
after it matched a strict identifier pattern (else 400, nothing echoed).  The `/**/` prefix
keeps the first bytes of the answer fixed, whatever the name, so no content sniffer (the old
Flash "Rosetta" attack) can read it as anything but script.  A script tag cannot carry an
`Authorization` header, so with a token configured a JSONP request gets the failure shape with
"a bearer token is required" and never data (see `token_required`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

from reconciler.api import seed
from reconciler.api.seed import Reply

PARAM = "jsonp_callback"
CONTENT_TYPE = "application/javascript; charset=utf-8"
MAX_NAME = 64
_IDENT = r"[A-Za-z_$][A-Za-z0-9_$]*"
_NAME = re.compile(rf"{_IDENT}(?:\.{_IDENT})*")
# words that cannot start a call expression: `new(...)` or `delete(...)` is not a callback
_RESERVED = frozenset(
    (
        "break", "case", "catch", "class", "const", "continue", "debugger", "default", "delete",
        "do", "else", "enum", "export", "extends", "false", "finally", "for", "function", "if",
        "import", "in", "instanceof", "let", "new", "null", "return", "static", "super",
        "switch", "this", "throw", "true", "try", "typeof", "var", "void", "while", "with",
        "yield", "await",
    )
)  # fmt: skip

# the seed's failure value of each mutating endpoint (its server answered 200 with these)
FAILURE_KEY = {
    "/vm/create": "vmid",
    "/vm/destroy": "status",
    "/volume/create": "volumeid",
    "/volume/destroy": "status",
    "/volume/attach": "status",
    "/volume/detach": "status",
}
QUERY_PATHS = frozenset({"/vm/query", "/vm/types", "/image/list", "/volume/query"})
ID_PARAM = {"/vm/query": "vmid", "/volume/query": "volumeid"}
PATHS = QUERY_PATHS | frozenset(FAILURE_KEY)
NO_HEADER_ERROR = (
    "a bearer token is required: this volctl has a token configured and a JSONP request "
    "cannot send the Authorization header; call the endpoint with Authorization: Bearer TOKEN "
    "(with `cors:` configured, a page on another origin can), see docs/rest.md"
)


def wanted(path: str, query: Mapping[str, list[str]]) -> bool:
    """True when this is a seed endpoint called the JSONP way."""
    return path in PATHS and PARAM in query


def callback(query: Mapping[str, list[str]]) -> str | Reply:
    """The validated callback name, or the 400 answer (which never echoes the name)."""
    values = query.get(PARAM, [])
    if len(values) != 1:
        return Reply(400, {"error": f"query parameter {PARAM} given more than once"})
    name = values[0]
    if not name or len(name) > MAX_NAME:
        return Reply(400, {"error": f"{PARAM} must be 1 to {MAX_NAME} characters"})
    if not _NAME.fullmatch(name) or name.split(".", 1)[0] in _RESERVED:
        return Reply(
            400,
            {
                "error": f"{PARAM} must be a JavaScript identifier or dotted path "
                "(letters, digits, _ and $; dots between names)"
            },
        )
    return name


def failure(path: str, error: str) -> dict[str, object]:
    """The seed's failure shape for `path`: `{"vmid": 0, "error": ...}` for the mutating
    endpoints, `{"error": ...}` (as for an unknown id) for the query endpoints."""
    key = FAILURE_KEY.get(path)
    return {key: 0, "error": error} if key else {"error": error}


def refused(path: str) -> Reply:
    """A mutating endpoint: the seed's failure value and the declarative way, never an action."""
    return Reply(200, failure(path, seed.mutating(path).body["error"]))


def token_required(path: str) -> Reply:
    return Reply(200, failure(path, NO_HEADER_ERROR))


def answer(path: str, reply: Reply) -> Reply:
    """A query endpoint's reply as JSONP sends it: the same body, except that a 400 (which
    quotes the malformed value in the plain mode) says what is expected without quoting it,
    so that nothing from the request but the validated callback name reaches the script."""
    if reply.status != 400:
        return reply
    param = ID_PARAM.get(path, "the query")
    return Reply(400, {"error": f"{path} needs {param}=N, a non-negative integer, given once"})


def wrap(name: str, reply: Reply) -> Reply:
    """`reply` as a script calling `name`: status 200 (a script tag sees no status), same body."""
    text = json.dumps(reply.body, separators=(",", ":"))  # ASCII-only: U+2028 cannot end a line
    return Reply(200, f"/**/{name}({text});\n".encode(), (("Content-Type", CONTENT_TYPE),))
