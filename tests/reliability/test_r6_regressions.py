"""The store defects R6 found (seed 905356985), reproduced on a real directory store.

* trial 7 flipped one byte of `metadata.name` in `virtualmachine/edge-vm.yaml` ("etge-vm"):
  the store read a VirtualMachine etge-vm and no edge-vm, so edge-vm left the desired state
  (the controller would destroy it); only a reference from an attachment happened to stop it,
  with an error naming the attachment's file instead of the damaged one.  Trial 2 did the
  same to an Image.
* trial 1 cut `host/h2.yaml` inside its `uri:` value: still valid YAML, so the host silently
  got another URI.
* trials 4 and 9 filled the store's disk: `volctl apply` died with a traceback.

Fixed in `SpecStore`: a file `<kind>/<name>.yaml` must define exactly that resource and end
with a newline (what the store writes), and a failed write names the file and what was
applied.  The full disk is a real tmpfs (the suite runs as root, like `make test`).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.cli.main import main
from reconciler.source.store import SpecStore

from ..source.specs import BASE, attachment, vm, volume

# trial 1's cut: the rest of the uri and the lines after it are gone
HOST_CUT = "---\napiVersion: volctl.io/v1\nkind: Host\nmetadata:\n  name: h1\nspec:\n  uri: tes"


def stored(tmp_path: Path, *texts: str) -> SpecStore:
    store = SpecStore(tmp_path / "store")
    store.apply([("in.yaml", "---\n".join([BASE, *texts]))])
    assert store.fetch().state is not None
    return store


@pytest.mark.parametrize("with_attachment", [False, True])
def test_a_flipped_name_in_a_store_file_is_refused_naming_that_file(
    tmp_path: Path, *, with_attachment: bool
) -> None:
    extra = [volume("edge-vol"), attachment("edge-vol", "edge-vol", "edge-vm")]
    store = stored(tmp_path, vm("edge-vm"), *(extra if with_attachment else []))
    good = store.fetch().revision
    path = store.path_for("VirtualMachine", "edge-vm")
    path.write_text(path.read_text().replace("edge-vm", "etge-vm"))
    rev = store.fetch()
    assert rev.state is None  # no desired state without edge-vm: the last good one stays
    text = "\n".join(rev.errors)
    assert f"{path}:5: metadata.name: this store file holds VirtualMachine/edge-vm" in text
    assert "VirtualMachine/etge-vm" in text
    assert store.status().last_applied_revision == good
    # `volctl apply` of the resource repairs it (the damaged file does not block its own fix)
    store.apply([("fix.yaml", vm("edge-vm"))])
    assert store.fetch().state is not None


def test_a_renamed_image_is_refused_naming_the_image_file(tmp_path: Path) -> None:
    store = stored(tmp_path, vm("edge-vm"))
    path = store.path_for("Image", "cirros")
    path.write_text(path.read_text().replace("cirros", "cirrps"))
    text = "\n".join(store.fetch().errors)
    assert f"{path}:5: metadata.name:" in text


def test_a_file_cut_mid_line_is_refused(tmp_path: Path) -> None:
    store = stored(tmp_path, vm("edge-vm"))
    path = store.path_for("Host", "h1")
    path.write_text(HOST_CUT)
    rev = store.fetch()
    assert rev.state is None
    assert f"{path}:7: the file ends in the middle of a line" in "\n".join(rev.errors)
    # and every writer refuses to build on it, naming it
    with pytest.raises(Exception, match="ends in the middle of a line"):
        store.apply([("in.yaml", volume("other"))])
    assert store.delete([("Host", "h1"), ("VirtualMachine", "edge-vm")], dry_run=True)


def test_a_store_file_emptied_or_left_as_a_comment_is_refused(tmp_path: Path) -> None:
    store = stored(tmp_path, vm("edge-vm"))
    path = store.path_for("VirtualMachine", "edge-vm")
    for text in ("", "---\n", "---\n# apiVersion: volctl.io/v1\n"):
        path.write_text(text)
        rev = store.fetch()
        assert rev.state is None, text
        assert str(path) in "\n".join(rev.errors)


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    mnt = tmp_path / "store"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)], check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_apply_on_a_full_disk_is_a_clear_error_and_changes_nothing(
    tiny_disk: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "volctl.yaml"
    config.write_text(f"store: {tiny_disk}\napi: http://127.0.0.1:9\n")
    spec = tmp_path / "in.yaml"
    spec.write_text("---\n".join([BASE, vm("edge-vm")]))
    assert main(["--config", str(config), "apply", "-f", str(spec)]) == 0
    vm_file = tiny_disk / "virtualmachine" / "edge-vm.yaml"
    before = vm_file.read_bytes()
    with contextlib.suppress(OSError), (tiny_disk / ".filler").open("wb") as fh:
        while True:
            fh.write(b"\0" * 4096)
            fh.flush()
    assert os.statvfs(tiny_disk).f_bavail == 0
    spec.write_text(vm("edge-vm").replace("metadata: {", "metadata: {labels: {a: b}, "))
    capsys.readouterr()
    assert main(["--config", str(config), "apply", "-f", str(spec)]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert f"error: cannot write {vm_file}: No space left on device" in err
    assert "keeps its previous content" in err
    assert vm_file.read_bytes() == before
    assert not [p for p in vm_file.parent.iterdir() if p.name.startswith(".")]
