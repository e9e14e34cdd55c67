"""`POST /hooks/git` against a real `volctl run` reading a real repository on an hour-long poll
interval: a commit is applied within about a second of an accepted call, and a call without
the token (or with a wrong one) is refused and fetches nothing."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from email.message import Message
from pathlib import Path
from typing import Any

import pytest

from reconciler.api.hooks import GitHook, receive, token_of
from reconciler.errors import SpecError
from tests.source.specs import BASE, vm
from tests.source.test_git import commit, git

TOKEN = "s3cret-hook-token-0123456789"
REPO_ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def post(url: str, headers: dict[str, str], body: bytes = b"{}") -> int:
    req = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as err:
        return err.code


def get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.loads(resp.read())


class Run:
    """`volctl run` as a subprocess, log in `log`."""

    def __init__(self, tmp_path: Path, repo: Path) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        token_file = tmp_path / "hook.token"
        token_file.write_text(TOKEN + "\n")
        self.state = tmp_path / "state"
        self.config = tmp_path / "volctl.yaml"
        self.config.write_text(
            f"listen: 127.0.0.1:{self.port}\nstore: {tmp_path / 'store'}\n"
            f"stateDir: {self.state}\nceph: {{conf: {tmp_path / 'no-ceph.conf'}}}\n"
            f"git: {{url: 'file://{repo}', path: specs, interval: 3600}}\n"
            f"webhook: {{tokenFile: {token_file}}}\n"
        )
        self.log = tmp_path / "run.log"
        cmd = [sys.executable, "-m", "reconciler.cli.main", "--config", str(self.config)]
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [*cmd, "run", "--resync", "3600"],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=REPO_ROOT,
                env={k: v for k, v in os.environ.items() if not k.startswith("VOLCTL_")},
            )

    def applied(self) -> str | None:
        try:
            rev: str | None = get(f"{self.base}/api/v1/source").get("lastAppliedRevision")
        except (urllib.error.URLError, OSError):
            return None
        return rev

    def wait_applied(self, sha: str, timeout: float) -> float:
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            if self.applied() == sha:
                return time.monotonic() - t0
            time.sleep(0.05)
        pytest.fail(f"{sha[:12]} not applied in {timeout}s: {self.log.read_text()[-2000:]}")

    def fetched(self) -> set[str]:
        """The commits the controller's git cache holds for the followed branch."""
        return {
            git(repo, "rev-parse", "refs/volctl/main") for repo in self.state.glob("git/*/repo")
        }

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "repo"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.email", "t@example.com")
    git(path, "config", "user.name", "t")
    return path


@pytest.fixture
def run(tmp_path: Path, repo: Path) -> Iterator[Run]:
    commit(repo, {"specs/base.yaml": BASE}, "base")
    r = Run(tmp_path, repo)
    yield r
    r.stop()


def test_an_accepted_hook_applies_the_new_commit_at_once(run: Run, repo: Path) -> None:
    first = git(repo, "rev-parse", "HEAD")
    run.wait_applied(first, 30)
    hook = f"{run.base}/hooks/git"

    second = commit(repo, {"specs/web.yaml": vm("web")}, "web")
    assert post(hook, {}) == 401
    assert post(hook, {"Authorization": "Bearer wrong-token-wrong-token"}) == 403
    assert post(hook, {"X-Gitlab-Token": TOKEN[:-1]}) == 403
    assert post(hook, {"X-Hub-Signature-256": "sha256=" + "0" * 64}) == 403
    with pytest.raises(urllib.error.HTTPError) as as_get:
        get(hook)
    assert as_get.value.code == 405
    time.sleep(1.5)
    assert run.applied() == first
    assert run.fetched() == {first}  # refused calls fetched nothing

    t0 = time.monotonic()
    assert post(hook, {"Authorization": f"Bearer {TOKEN}"}) == 202
    run.wait_applied(second, 5)
    took = time.monotonic() - t0
    assert took < 2.0, f"applied {took:.2f}s after the hook"

    third = commit(repo, {"specs/db.yaml": vm("db")}, "db")
    body = json.dumps({"ref": "refs/heads/main", "after": third}).encode()
    signature = "sha256=" + hmac.new(TOKEN.encode(), body, hashlib.sha256).hexdigest()
    assert post(hook, {"X-Hub-Signature-256": signature}, body=body) == 202  # GitHub
    assert run.wait_applied(third, 5) < 2.0

    fourth = commit(repo, {"specs/api.yaml": vm("api")}, "api")
    assert post(hook, {"X-Gitlab-Token": TOKEN}) == 202  # GitLab
    assert run.wait_applied(fourth, 5) < 2.0

    run.stop()
    log = run.log.read_text()
    assert "hook.accepted" in log
    assert "hook.rejected" in log
    assert TOKEN not in log
    assert TOKEN[:12] not in log


def test_hook_endpoint_without_a_configured_webhook_is_404() -> None:
    msg = Message()
    msg["Authorization"] = f"Bearer {TOKEN}"
    assert receive(None, "POST", msg, b"").status == 404
    calls: list[int] = []
    hook = GitHook(TOKEN, lambda: calls.append(1))
    assert receive(hook, "GET", msg, b"").status == 405
    assert receive(hook, "POST", msg, b"").status == 202
    assert calls == [1]
    assert TOKEN not in repr(hook)


def test_webhook_token_config(tmp_path: Path) -> None:
    assert token_of({"token": TOKEN}) == TOKEN
    f = tmp_path / "t"
    f.write_text(f"{TOKEN}\n")
    assert token_of({"tokenFile": str(f)}) == TOKEN
    with pytest.raises(SpecError, match="at least 16"):
        token_of({"token": "short"})
    with pytest.raises(SpecError, match="at least 16"):
        token_of({})
    with pytest.raises(SpecError, match="not both"):
        token_of({"token": TOKEN, "tokenFile": str(f)})
    with pytest.raises(SpecError, match="cannot read"):
        token_of({"tokenFile": str(tmp_path / "missing")})
