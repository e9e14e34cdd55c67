"""`POST /hooks/git`: a forge's push notification makes the controller fetch git at once.

Why: polling every `interval` means a merged change can wait a whole interval before it is
even seen; forges call a webhook on push instead (Flux's Receiver).  The hook carries nothing
the controller believes: it only moves the next fetch forward, and that fetch validates the
commit like any other.  It is still guarded by its own token (a forge holds it, so it is not
the REST view's bearer token), compared in constant time and never logged.  Accepted
credentials, so that GitHub, GitLab, Gitea and plain curl all work unchanged:

* `Authorization: Bearer TOKEN` (generic; curl)
* `X-Gitlab-Token: TOKEN` (GitLab)
* `X-Hub-Signature-256: sha256=HMAC-SHA256(TOKEN, body)` (GitHub, Gitea)

404 when no webhook is configured (the endpoint does not exist), 401 without a credential,
403 with a wrong one, 405 for anything but POST, 202 when the fetch was scheduled.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from typing import Any

import structlog

from reconciler.api.seed import Reply
from reconciler.errors import SpecError

log = structlog.get_logger("volctl.hooks")

PATH = "/hooks/git"


@dataclass(frozen=True)
class GitHook:
    """The configured token and what to do on an accepted call (fetch the source now)."""

    token: str
    on_push: Callable[[], None]

    def __repr__(self) -> str:  # the token never reaches a log line through a repr
        return "GitHook(token=***)"


def token_of(settings: Mapping[str, Any], where: str = "webhook") -> str:
    """The token of a `webhook: {token: ...}` or `webhook: {tokenFile: PATH}` config section."""
    token = settings.get("token")
    path = settings.get("tokenFile")
    if token is not None and path is not None:
        raise SpecError(f"{where}: give token or tokenFile, not both")
    if path is not None:
        try:
            token = Path(str(path)).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise SpecError(f"{where}.tokenFile: cannot read {path}: {exc.strerror}") from exc
    if not isinstance(token, str) or len(token) < 16:
        raise SpecError(f"{where}: needs a token (or tokenFile) of at least 16 characters")
    return token


def receive(hook: GitHook | None, method: str, headers: Message, body: bytes) -> Reply:
    if hook is None:
        return Reply(404, {"error": f"no such endpoint: {PATH} (no webhook is configured)"})
    if method != "POST":
        return Reply(405, {"error": f"{PATH} accepts POST only"}, (("Allow", "POST"),))
    given = _credential(headers, body, hook.token)
    if given is None:
        log.warning("hook.rejected", hook="git", reason="no credential")
        return Reply(
            401,
            {
                "error": "missing credential: send Authorization: Bearer TOKEN, "
                "X-Gitlab-Token or X-Hub-Signature-256"
            },
            (("WWW-Authenticate", 'Bearer realm="volctl-hooks"'),),
        )
    via, ok = given
    if not ok:
        log.warning("hook.rejected", hook="git", reason="wrong credential", via=via)
        return Reply(403, {"error": "wrong webhook credential"})
    log.info("hook.accepted", hook="git", via=via)
    hook.on_push()
    return Reply(202, {"status": "accepted", "action": "fetching the git source now"})


def _credential(headers: Message, body: bytes, token: str) -> tuple[str, bool] | None:
    """(which header, whether it is right), or None when no credential was sent."""
    want = token.encode()
    signature = headers.get("X-Hub-Signature-256")
    if signature:
        digest = hmac.new(want, body, hashlib.sha256).hexdigest()
        return "signature", hmac.compare_digest(
            signature.strip().encode(), f"sha256={digest}".encode()
        )
    gitlab = headers.get("X-Gitlab-Token")
    if gitlab:
        return "gitlab", hmac.compare_digest(gitlab.strip().encode(), want)
    scheme, _, value = (headers.get("Authorization") or "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return "bearer", hmac.compare_digest(value.strip().encode(), want)
    return None
