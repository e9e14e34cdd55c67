"""The new user's GitOps on the real lab: the lab's inventory (Hosts, Image, InstanceTypes) is
applied to the store and the workloads are committed to git.  A pull request is reviewed with
`volctl plan --rev` before it lands, `volctl run` (on an hour-long poll) applies the branch, and
a push webhook makes the merged pull request land at once.  Checked against libvirt itself."""

from __future__ import annotations

import datetime as dt
import json
import time
import urllib.error
import urllib.request
from pathlib import Path

import libvirt

from reconciler.lab.testing import LabPool

from .test_usage_lab import (
    CONVERGE,
    commit,
    controller,
    domain_state,
    git,
    http,
    until,
    vm_doc,
    volctl,
)

TOKEN = "lab-hook-token-0123456789abcdef"


def test_store_inventory_git_workloads_review_and_webhook(
    lab_pool: LabPool, tmp_path: Path
) -> None:
    applied = volctl(lab_pool, "apply", "-f", str(lab_pool.info.inventory_path))
    assert applied.returncode == 0, applied.stderr
    with lab_pool.config_path.open("a") as cfg:
        cfg.write(f"webhook: {{token: {TOKEN}}}\n")
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.email", "ops@example.com")
    git(repo, "config", "user.name", "ops")
    first = commit(repo, {"dc/vms/git_vm.yaml": vm_doc("git_vm")}, "one VM on the lab image")
    git(repo, "checkout", "-q", "-b", "pr")
    head = commit(repo, {"dc/vms/db_vm.yaml": vm_doc("db_vm")}, "a database")
    git(repo, "update-ref", "refs/pull/1/head", head)
    git(repo, "checkout", "-q", "main")
    git(repo, "branch", "-q", "-D", "pr")
    bad = commit(repo, {"dc/vms/bad_vm.yaml": vm_doc("bad_vm").replace("lab-base", "nosuch")}, "x")
    git(repo, "reset", "-q", "--hard", first)
    url = f"file://{repo}"

    # review before anything runs: the pull request's head, merged with the store's inventory
    review = volctl(lab_pool, "plan", "--git", url, "--path", "dc", "--rev", "refs/pull/1/head")
    assert review.returncode == 2, review.stdout + review.stderr
    assert "Plan: 2 to add, 0 to change, 0 to destroy." in review.stdout
    assert f"(commit {head[:12]}, path dc), merged with the apply store" in review.stderr
    rejected = volctl(lab_pool, "plan", "--git", url, "--path", "dc", "--rev", bad)
    assert rejected.returncode == 1
    assert (
        f"git {bad[:12]}:dc/vms/bad_vm.yaml:7: VirtualMachine/bad_vm: spec.image: refers to "
        "Image 'nosuch', which is not defined" in rejected.stderr
    ), rejected.stderr
    assert "store: lab-base)" in rejected.stderr

    extra = ("--git", url, "--path", "dc", "--interval", "3600")
    with controller(lab_pool, *extra) as (base, log):
        until("git_vm Ready", lambda: http(base, "/api/v1/vms/git_vm")[1].get("phase") == "Ready",
              CONVERGE, log)  # fmt: skip
        src = http(base, "/api/v1/source")[1]
        assert src["lastAppliedRevision"].startswith(f"{first}+")  # git merged with the store
        assert src["error"] is None
        assert set(src["owned"]) == {"vm/git_vm"}
        assert list(domain_state(lab_pool, "git_vm").values()) == [libvirt.VIR_DOMAIN_RUNNING]

        git(repo, "merge", "-q", "--ff-only", "refs/pull/1/head")
        assert http(base, "/hooks/git", method="POST")[0] == 401
        t0 = time.time()
        code, _ = http_post(base, {"Authorization": f"Bearer {TOKEN}"})
        assert code == 202
        # at once: the pass the hook starts loads the new commit (an hour-long poll otherwise);
        # it is published as applied when that pass, which starts the new VM, ends
        fetched = until(
            "the hook's pass to load the merged commit", lambda: revision_loaded(log, head), 5, log
        )
        assert fetched - t0 < 5
        until(
            "the merged pull request to be applied",
            lambda: http(base, "/api/v1/source")[1]["lastAppliedRevision"].startswith(head),
            CONVERGE,
            log,
        )
        until("db_vm Ready", lambda: http(base, "/api/v1/vms/db_vm")[1].get("phase") == "Ready",
              CONVERGE, log)  # fmt: skip
        assert list(domain_state(lab_pool, "db_vm").values()) == [libvirt.VIR_DOMAIN_RUNNING]
        assert TOKEN not in log.read_text()


def revision_loaded(log: Path, head: str) -> float | None:
    """When the controller loaded a revision of commit HEAD (unix time), from its JSON log."""
    for line in log.read_text().splitlines():
        if '"source.revision"' in line:
            ev = json.loads(line)
            if str(ev.get("revision", "")).startswith(head):
                return dt.datetime.fromisoformat(ev["timestamp"].replace("Z", "+00:00")).timestamp()
    return None


def http_post(base: str, headers: dict[str, str]) -> tuple[int, object]:
    req = urllib.request.Request(base + "/hooks/git", data=b"{}", headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())
