"""CORS for dashboards served from other origins: opt-in, listed origins, read-only methods.

Why: JSONP is the seed's 2013 way for a page on another origin to read the API, and it cannot
send a token.  A modern dashboard uses `fetch()`, which the browser lets read a cross-origin
answer only when the answer names the page's origin in `Access-Control-Allow-Origin`.  With
`cors: {origins: [...]}` in the config the REST view does that for the listed origins (or `*`)
on every GET/HEAD answer, and answers the preflight a `fetch()` with `Authorization: Bearer`
needs.  Without the key nothing changes (no CORS header, preflight refused): the default is
that only same-origin pages (the built-in dashboard) can read the API from a browser.

The API is read-only, so only GET and HEAD are ever allowed, and the only request header a
page may add is `Authorization`.  No credentials mode (`Access-Control-Allow-Credentials`):
volctl uses no cookies, the token is sent explicitly by the page.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from reconciler.api.seed import Reply

ALLOW_METHODS = ("GET", "HEAD")
ALLOW_HEADERS = ("authorization",)
MAX_AGE = 600  # seconds a browser may cache a preflight answer
ANY = "*"


@dataclass(frozen=True)
class Cors:
    origins: frozenset[str]

    @classmethod
    def of(cls, origins: Iterable[str]) -> Cors | None:
        listed = frozenset(origins)
        return cls(listed) if listed else None

    def allows(self, origin: str | None) -> bool:
        return bool(origin) and (ANY in self.origins or origin in self.origins)

    def headers(self, origin: str | None) -> tuple[tuple[str, str], ...]:
        """Headers for a GET/HEAD answer to a request from `origin`."""
        vary = (("Vary", "Origin"),)
        if not origin or not self.allows(origin):
            return vary
        return (("Access-Control-Allow-Origin", ANY if ANY in self.origins else origin), *vary)

    def preflight(self, origin: str | None, method: str | None, headers: str | None) -> Reply:
        """The answer to `OPTIONS` with `Access-Control-Request-Method: method`."""
        if not origin or not self.allows(origin):
            return Reply(403, {"error": f"origin {origin or '(none)'} is not in cors.origins"})
        asked = {h.strip().lower() for h in (headers or "").split(",") if h.strip()}
        if method not in ALLOW_METHODS or not asked <= set(ALLOW_HEADERS):
            return Reply(
                403,
                {"error": "the volctl REST view allows only GET/HEAD with an Authorization header"},
                (("Vary", "Origin"),),
            )
        return Reply(
            204,
            b"",
            (
                *self.headers(origin),
                ("Access-Control-Allow-Methods", ", ".join(ALLOW_METHODS)),
                ("Access-Control-Allow-Headers", "Authorization"),
                ("Access-Control-Max-Age", str(MAX_AGE)),
            ),
        )


def not_configured() -> Reply:
    """`OPTIONS` when no `cors:` is configured: only same-origin pages may read the API."""
    return Reply(
        405,
        {"error": "cross-origin requests are off: add cors: {origins: [...]} to the config"},
        (("Allow", "GET, HEAD"),),
    )
