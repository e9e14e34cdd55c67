"""`volctl diff`: kubectl's exit codes for every kind of error, and `--rev` against a real
repository (what merging a pull request would change in the desired state)."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.cli.main import main
from tests.source.specs import BASE, vm, volume
from tests.source.test_git import commit, git


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for var in ("VOLCTL_CONFIG", "VOLCTL_API", "VOLCTL_TOKEN", "VOLCTL_STORE"):
        monkeypatch.delenv(var, raising=False)
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.email", "t@example.com")
    git(repo, "config", "user.name", "t")
    cfg = tmp_path / "volctl.yaml"
    cfg.write_text(
        f"api: http://127.0.0.1:1\nstore: {tmp_path / 'store'}\nstateDir: {tmp_path / 'state'}\n"
        f"git: {{url: 'file://{repo}', path: specs}}\n"
    )
    monkeypatch.setenv("VOLCTL_CONFIG", str(cfg))
    return tmp_path


def test_diff_of_a_pull_request_against_the_followed_branch(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = env / "repo"
    main_sha = commit(repo, {"specs/base.yaml": BASE, "specs/web.yaml": vm("web")}, "web")
    git(repo, "checkout", "-q", "-b", "pr")
    git(repo, "rm", "-q", "specs/web.yaml")
    head = commit(repo, {"specs/db.yaml": vm("db"), "specs/v.yaml": volume("v", 2)}, "db")
    git(repo, "checkout", "-q", "main")

    assert main(["diff", "--rev", "pr"]) == 1
    out, err = capsys.readouterr()
    assert f"+++ git {head[:12]}:specs/db.yaml:1" in out
    assert f"+++ git {head[:12]}:specs/v.yaml:1" in out
    assert "+  size: 2" in out
    assert f"--- git {main_sha[:12]}:specs/web.yaml:1" in out
    assert "-  name: web" in out
    assert "InstanceType" not in out  # unchanged resources are not shown
    assert f"comparing with main (commit {main_sha[:12]})" in err

    assert main(["diff", "--rev", "main"]) == 0
    assert capsys.readouterr().out == ""
    assert main(["diff", "--rev", "main", "--base", "pr"]) == 1
    assert f"--- git {head[:12]}:specs/db.yaml:1" in capsys.readouterr().out


def test_every_error_exits_2_never_1(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = env / "repo"
    commit(repo, {"specs/base.yaml": BASE}, "base")
    git(repo, "checkout", "-q", "-b", "pr")
    bad = commit(repo, {"specs/db.yaml": vm("db", itype="xxl")}, "bad")
    git(repo, "checkout", "-q", "main")

    assert main(["diff", "--rev", "pr"]) == 2  # invalid revision
    err = capsys.readouterr().err
    assert f"git {bad[:12]}:specs/db.yaml:4: VirtualMachine/db: spec.instanceType:" in err
    assert main(["diff", "--rev", "no-such-branch"]) == 2  # cannot be fetched
    assert "revision 'no-such-branch' not found" in capsys.readouterr().err
    assert main(["diff"]) == 2  # nothing to compare
    spec = env / "v.yaml"
    spec.write_text(volume("v"))
    assert main(["diff", "-f", str(spec), "--rev", "pr"]) == 2
    assert main(["--config", str(env / "missing.yaml"), "diff", "-f", str(spec)]) == 2
    assert "config file not found" in capsys.readouterr().err
    (env / "store").write_text("a file where the store directory should be\n")
    assert main(["diff", "-f", str(spec)]) == 2  # unreadable store: an error, not "different"
    assert "error:" in capsys.readouterr().err
