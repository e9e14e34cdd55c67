"""What every user-facing command shares: the config, the REST client and ownership.

Why one module: `get`, `describe` and `apply --wait` all read the controller's REST view and
must fail the same clear way when it is not there; `apply`, `diff` and `delete` all write the
same spec store and must agree on which resources git owns.  The controller is found through
the config (`--config`, `$VOLCTL_CONFIG`, ./volctl.yaml, ...) with `$VOLCTL_API`,
`$VOLCTL_TOKEN` and `$VOLCTL_STORE` overriding single values.

Like the command modules, this one imports only the standard library when it is loaded: the
config, loader and store (yaml, jsonschema, watchdog) are imported by the functions that use
them, so `volctl --help` and `volctl get` never pay for them.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from reconciler.errors import VolctlError

if TYPE_CHECKING:
    from reconciler.config import Config
    from reconciler.loading.diagnostics import Diagnostic
    from reconciler.source.stores import AnyStore

# CLI words -> model kind (singular, plural and kubectl-ish short forms)
KIND_WORDS: dict[str, str] = {}
for _kind, _words in {
    "VirtualMachine": ("vm", "vms", "virtualmachine", "virtualmachines"),
    "Volume": ("volume", "volumes", "vol", "vols"),
    "VolumeAttachment": ("attachment", "attachments", "volumeattachment", "volumeattachments"),
    "Host": ("host", "hosts"),
    "Image": ("image", "images", "img"),
    "InstanceType": ("type", "types", "instancetype", "instancetypes"),
}.items():
    for _w in _words:
        KIND_WORDS[_w] = _kind


def kind_of(word: str) -> str:
    kind = KIND_WORDS.get(word.lower())
    if kind is None:
        raise VolctlError(
            f"unknown resource kind {word!r}; use one of vm, volume, attachment, host, image, type"
        )
    return kind


class Unreachable(VolctlError):
    """The controller's REST view did not answer."""


class ApiError(VolctlError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def config_of(args: argparse.Namespace) -> Config:
    """The config, schema-checked (once per content: `checked_config.py`)."""
    from reconciler.cli import checked_config
    from reconciler.config import load_config

    return load_config(getattr(args, "config", None), read=checked_config.read)


class Client:
    """A tiny JSON client for the controller's REST view."""

    def __init__(self, config: Config, timeout: float = 5.0) -> None:
        self.base = config.api.rstrip("/")
        if not self.base.startswith(("http://", "https://")):
            raise VolctlError(f"api {config.api!r} must be an http:// or https:// URL")
        self.token = config.token
        self.timeout = timeout

    def get(self, path: str, *, read_timeout: float | None = None, **params: str) -> Any:
        """GET a JSON body; `read_timeout` (instead of the client's) for a long poll.  An
        `http://` API is asked over a plain socket (`plain_http`: no urllib to import),
        anything else, or an answer that is not plain, through urllib."""
        from urllib.parse import urlencode

        from reconciler.cli import plain_http

        url = self.base + path
        if params:
            url += "?" + urlencode(params)
        headers = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        timeout = self.timeout if read_timeout is None else read_timeout
        try:
            status, body = plain_http.get(url, headers, timeout)
        except plain_http.NotPlain:
            return self._get_urllib(url, headers, timeout)
        except (OSError, ValueError) as exc:
            raise self._unreachable(exc) from exc
        if status >= 400:
            raise ApiError(status, f"{url}: {status} {_error_message(body, status)}")
        try:
            return json.loads(body)
        except ValueError as exc:
            raise self._unreachable(exc) from exc

    def _get_urllib(self, url: str, headers: dict[str, str], timeout: float) -> Any:
        import urllib.error
        import urllib.request  # ssl and http.client: only for https and unusual answers

        req = urllib.request.Request(url, headers=headers)  # noqa: S310
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310
                return json.loads(resp.read())
        except urllib.error.HTTPError as err:
            try:
                message = json.loads(err.read()).get("error", err.reason)
            except (ValueError, AttributeError):
                message = str(err.reason)
            raise ApiError(err.code, f"{url}: {err.code} {message}") from err
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise self._unreachable(getattr(exc, "reason", exc)) from exc

    def _unreachable(self, reason: object) -> Unreachable:
        return Unreachable(
            f"cannot reach the volctl controller at {self.base}: {reason}; "
            "is `volctl run` running? set VOLCTL_API or api: in the config"
        )


def _error_message(body: bytes, status: int) -> str:
    """The REST view's `{"error": ...}`, or the status's reason phrase as urllib gives it."""
    try:
        message = json.loads(body).get("error")
    except (ValueError, AttributeError):
        message = None
    if message:
        return str(message)
    from http import HTTPStatus  # only on an error without a JSON message

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


@dataclass
class Ownership:
    """Which resources another source (git) owns, and its texts for validating references."""

    owner: str = ""
    owned: dict[str, str] = field(default_factory=dict)  # "vm/NAME" -> "path:line"
    context: list[tuple[str, str]] = field(default_factory=list)


def ownership(config: Config, client: Client | None = None) -> Ownership:
    """Learn what git owns from the controller (REST /api/v1/source) and from the git cache
    under the state dir; either may be missing (controller down, no git)."""
    from reconciler.source.git import GitSource, label
    from reconciler.source.store import documents_of, short_key

    info: dict[str, Any] = {}
    if client is not None:
        try:
            info = client.get("/api/v1/source") or {}
        except (Unreachable, ApiError):
            info = {}
    git_cfg = dict(config.git or {})
    url = git_cfg.get("url") or (info.get("url") if info.get("kind") == "git" else None)
    if not url:
        return Ownership()
    branch = str(git_cfg.get("branch") or info.get("branch") or "main")
    path = str(git_cfg.get("path") or info.get("path") or ".")
    own = Ownership(owner=f"git repo {info.get('url') or url} (path {path}, branch {branch})")
    own.owned.update(info.get("owned") or {})
    try:
        git = GitSource(str(url), cache_root=config.state_dir, branch=branch, path=path)
        sha, texts = git.cached()
        own.context = [(label(sha, n), t) for n, t in texts] if sha else []
    except VolctlError:
        texts, own.context = [], []
    docs, _ = documents_of(texts)
    for d in docs:
        own.owned.setdefault(short_key(d.kind, d.name), f"{d.file}:{d.line}")
    return own


def read_inputs(paths: list[str]) -> tuple[list[tuple[str, str]], list[Diagnostic]]:
    from reconciler.loading import sources as spec_sources

    files, problems = spec_sources.expand(paths)
    texts, more = spec_sources.read(files)
    return texts, problems + more


def print_diagnostics(diagnostics: Any, verb: str) -> None:
    diags = list(diagnostics)
    for d in diags:
        print(d, file=sys.stderr)
    noun = "problem" if len(diags) == 1 else "problems"
    print(f"error: {len(diags)} {noun}; nothing was {verb}", file=sys.stderr)


LONG_POLL = 20.0  # seconds one `?afterGeneration=` request may wait on the server


def next_snapshot(
    api: Client, path: str, generation: int | None, wait: float, fallback: float = 1.0
) -> Any:
    """`path` (/api/v1/status or /api/v1/snapshot) once the controller has published a
    generation other than `generation` (the server's long poll), or after `wait` seconds.
    With generation None, at once.  A controller without long polling answers at once with
    the same generation; then this waits `fallback` seconds itself, as older clients did."""
    if generation is None:
        return api.get(path)
    wait = max(0.0, min(wait, LONG_POLL))
    start = time.monotonic()
    body = api.get(
        path,
        read_timeout=wait + api.timeout,
        afterGeneration=str(generation),
        wait=f"{wait:.3f}",
    )
    if body.get("generation") == generation and time.monotonic() - start < wait / 2:
        time.sleep(min(fallback, wait))
    return body


def store_of(config: Config) -> AnyStore:
    """The configured spec store: a directory, or rados://POOL/NAMESPACE (docs/ha.md)."""
    from reconciler.controller.stores import open_store

    return open_store(config)


def age(created: float | None, now: float | None = None) -> str:
    """kubectl-style age: 45s, 12m, 3h, 5d."""
    if not created:
        return "<unknown>"
    secs = max(0, int((now or time.time()) - created))
    if secs < 120:
        return f"{secs}s"
    if secs < 7200:
        return f"{secs // 60}m"
    if secs < 172800:
        return f"{secs // 3600}h"
    return f"{secs // 86400}d"


def add_filename(
    parser: argparse.ArgumentParser,
    required: bool = True,
    help_text: str = "file, directory (recursive *.yaml/*.yml) or '-' for stdin; may be repeated",
) -> None:
    """`-f/--filename PATH...` into `args.paths`, the same for every command that reads specs."""
    parser.add_argument(
        "-f",
        "--filename",
        dest="paths",
        action="extend",
        nargs="+",
        required=required,
        metavar="PATH",
        help=help_text,
    )
