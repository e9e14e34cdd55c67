"""`volctl plan --git URL --rev REV`: a pull request's commit planned against the live world.

The world is real libvirt (test:/// hosts) converged by the controller from the `main` branch
of a real repository merged with a real apply store (the inventory lives in the store, the
workloads in git); storage is the in-memory pool (the test driver has no RBD).  The pull
request's head is on no branch (`refs/pull/7/head`), as on a forge, so it must be fetched.
The assertions are the plan's summary line and the exit codes 0/2/1.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from reconciler.backends.libvirt_backend import LibvirtHypervisor
from reconciler.cli import plan_cmd
from reconciler.cli.main import build_parser
from reconciler.config import Config, load_config
from reconciler.controller.wiring import BackendConnections, build_runtime
from reconciler.source.factory import build_source
from reconciler.source.store import SpecStore
from tests.execute.fakeworld import FakeStorage
from tests.source.test_git import commit, git

from .test_testdriver import node

INVENTORY = """\
apiVersion: volctl.io/v1
kind: Host
metadata: {{name: h1}}
spec: {{uri: "{h1}"}}
---
apiVersion: volctl.io/v1
kind: Host
metadata: {{name: h2}}
spec: {{uri: "{h2}"}}
---
apiVersion: volctl.io/v1
kind: InstanceType
metadata: {{name: small}}
spec: {{tid: 1, cpu: 1, ram: 512, disk: 1}}
---
apiVersion: volctl.io/v1
kind: Image
metadata: {{name: base}}
spec: {{id: 1, source: {{rbd: "rbd/base@base"}}}}
"""


def vm(name: str, image: str = "base") -> str:
    return (
        f"apiVersion: volctl.io/v1\nkind: VirtualMachine\nmetadata: {{name: {name}}}\n"
        f"spec: {{instanceType: small, image: {image}}}\n"
    )


class KeptOpen(BackendConnections):
    """The CLI closes its connections after planning; a test:/// host's state lives only as
    long as its connection, so here the world outlives the command (as a real host does)."""

    def close(self) -> None:
        pass


class World:
    """Hosts, pool, store, repository and a config naming them; `connect` is what the CLI
    uses to reach the world (the same hypervisors, since test:/// state is per connection)."""

    def __init__(self, tmp_path: Path) -> None:
        self.hosts: dict[str, LibvirtHypervisor] = {}
        self.storage = FakeStorage()
        for name in ("h1", "h2"):
            path = tmp_path / f"{name}.xml"
            path.write_text(node(4, 4096))
            self.hosts[name] = LibvirtHypervisor(
                name, f"test://{path}", timeout=5.0, installation=self.storage.installation
            )
        self.storage.add_base("base")
        self.repo = tmp_path / "repo"
        self.repo.mkdir()
        git(self.repo, "init", "-q", "-b", "main")
        git(self.repo, "config", "user.email", "t@example.com")
        git(self.repo, "config", "user.name", "t")
        self.cfg_path = tmp_path / "volctl.yaml"
        self.cfg_path.write_text(
            f"store: {tmp_path / 'store'}\nstateDir: {tmp_path / 'state'}\n"
            f"git: {{url: 'file://{self.repo}', path: specs, branch: main}}\n"
        )
        self.config = load_config(str(self.cfg_path))
        SpecStore(self.config.store).apply(
            [
                (
                    "inventory.yaml",
                    INVENTORY.format(h1=self.hosts["h1"].uri, h2=self.hosts["h2"].uri),
                )
            ],
            context=[],
        )

    def connect(self, config: Config) -> BackendConnections:
        assert config.store == self.config.store
        return KeptOpen(self.storage, open_host=lambda h: self.hosts[h.meta.name])

    def plan(self, *argv: str) -> int:
        args: argparse.Namespace = build_parser().parse_args(
            ["--config", str(self.cfg_path), "plan", *argv]
        )
        return plan_cmd.run(args, connect=self.connect)


@pytest.fixture(autouse=True)
def logging_as_it_was() -> Iterator[None]:
    """`volctl plan` configures structlog for the process (level warning); later tests in
    this process capture info events, so the configuration is put back afterwards."""
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = World(tmp_path)
    yield w
    for hv in w.hosts.values():
        hv.close()


def converge_main(world: World) -> None:
    """The controller, reading main merged with the store, makes the world match."""
    source = build_source(world.config)
    rt = build_runtime(
        world.config,
        source,
        storage=world.storage,
        open_host=lambda h: world.hosts[h.meta.name],
    )
    result = rt.controller.run_until_converged()
    assert result.snapshot.converged, result.snapshot.last_error
    source.close()


def test_a_pull_request_is_planned_before_it_lands(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    commit(world.repo, {"specs/web1.yaml": vm("web1"), "specs/web2.yaml": vm("web2")}, "webs")
    converge_main(world)
    assert world.plan() == plan_cmd.EXIT_NO_CHANGES
    assert "No changes." in capsys.readouterr().out

    # a pull request: web2 goes, three databases come; its head is on no branch
    git(world.repo, "checkout", "-q", "-b", "pr")
    git(world.repo, "rm", "-q", "specs/web2.yaml")
    dbs = {f"specs/db{i}.yaml": vm(f"db{i}") for i in (1, 2, 3)}
    head = commit(world.repo, dbs, "three databases, one web less")
    git(world.repo, "update-ref", "refs/pull/7/head", head)
    git(world.repo, "checkout", "-q", "main")
    git(world.repo, "branch", "-q", "-D", "pr")

    for rev in ("refs/pull/7/head", head, head[:10]):
        assert world.plan("--rev", rev) == plan_cmd.EXIT_CHANGES, rev
        out, err = capsys.readouterr()
        assert "Plan: 3 to add, 0 to change, 1 to destroy." in out, out
        assert "vm/db1" in out
        assert "vm/web2" in out
        assert f"(commit {head[:12]}, path specs), merged with the apply store" in err
        assert "(4 files)" in err

    # read-only: the world is what main says, and main still plans nothing
    domains = {
        d.name() for hv in world.hosts.values() for d in hv.libvirt_connection().listAllDomains()
    }
    assert domains == {"web1", "web2"}
    assert world.plan("--rev", "main") == plan_cmd.EXIT_NO_CHANGES
    assert "No changes." in capsys.readouterr().out
    assert world.plan("--git", f"file://{world.repo}") == plan_cmd.EXIT_NO_CHANGES
    capsys.readouterr()


def test_an_invalid_pull_request_is_an_error_not_the_last_good_commit(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    commit(world.repo, {"specs/web1.yaml": vm("web1")}, "web1")
    converge_main(world)
    git(world.repo, "checkout", "-q", "-b", "pr")
    bad = commit(world.repo, {"specs/db.yaml": vm("db", image="lab-base")}, "no such image")
    git(world.repo, "checkout", "-q", "main")

    assert world.plan("--rev", "pr") == plan_cmd.EXIT_ERROR
    out, err = capsys.readouterr()
    assert "Plan:" not in out
    assert (
        f"git {bad[:12]}:specs/db.yaml:4: VirtualMachine/db: spec.image: refers to Image "
        f"'lab-base', which is not defined; did you mean 'base'? (Images defined: git {bad[:12]}: "
        "none; store: base)" in err
    ), err
    assert "nothing planned" in err

    assert world.plan("--rev", "no-such-branch") == plan_cmd.EXIT_ERROR
    assert "revision 'no-such-branch' not found" in capsys.readouterr().err
    assert world.plan("--rev", "pr", "-f", str(world.cfg_path)) == plan_cmd.EXIT_ERROR
