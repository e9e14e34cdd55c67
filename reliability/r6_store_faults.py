"""R6, bad input at the store: files corrupted or truncated on disk, and a full disk.

    .venv/bin/python -m reliability.r6_store_faults --trials 20 --lab-dir DIR

A real `volctl run` converges a small fleet (a running VM with a volume whose reclaimPolicy
is Delete) from a directory store that lives on its own small tmpfs.  Each trial damages the
store behind volctl's back, one case per trial in turn, the file and the offset drawn from
the trial's seed:

* `corrupt`: random bytes over a random span of one store file;
* `truncate`: the file cut at a random length (0 included);
* `rename`: one character of the file's `metadata.name` value flipped (a bit flip that
  still parses, and names another resource);
* `restart`: a corrupted file and the controller SIGKILLed and restarted on it (no last good
  state in memory);
* `full-disk`: the tmpfs filled up, then `volctl apply` of a change to the VM.

Goals, judged from the REST view, libvirt and RBD: a clear error naming the file (and the
line and field where there is one) within a few passes, the last good desired state kept
(`lastAppliedRevision` unchanged), and nothing destroyed: the VM's domain is the same running
domain (id and uuid), the root image and the volume are the same RBD images, the volume is
still attached, and the controller logged no destroying action.  Then the file is restored
and the controller must converge again.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import libvirt
import rbd
import yaml

from bench.common.ctllog import ControllerLog
from bench.common.lab import Lab, add_lab_args, open_lab
from reconciler import identity
from reliability.common.audit import pool_io
from reliability.common.campaign import Campaign, Trial, add_campaign_args
from reliability.common.small import SmallFleet

CASES = ("corrupt", "truncate", "rename", "restart", "full-disk")
DESTROYING = {"DestroyDomain", "StopDomain", "DeleteRoot", "DeleteVolume", "DetachVolume"}
TMPFS_SIZE = "1m"
FAULT_WAIT = 20.0  # a few passes (resync 3 s)


def mount_tmpfs(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE},mode=0755", "tmpfs", str(path)],
        check=True,
    )


def unmount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], check=False)


def world_ids(lab: Lab, fleet: SmallFleet) -> dict[str, Any]:
    """What must not change: the domain (id, uuid, running), the two images' RBD ids, and
    the volume in the domain's live XML."""
    out: dict[str, Any] = {}
    for h in lab.info.hosts:
        conn = libvirt.open(h.uri)
        try:
            with contextlib.suppress(libvirt.libvirtError):
                dom = conn.lookupByName(fleet.vm)
                xml = dom.XMLDesc(0)
                vol = f"{fleet.pool.pool}/{identity.volume_image_name(fleet.volume)}"
                out["domain"] = (h.name, dom.ID(), dom.UUIDString(), bool(dom.isActive()))
                out["attached"] = f"name='{vol}'" in xml or f'name="{vol}"' in xml
        finally:
            conn.close()
    with pool_io(lab, fleet.pool.pool) as io:
        for name in (identity.root_disk_name(fleet.vm), identity.volume_image_name(fleet.volume)):
            try:
                with rbd.Image(io, name, read_only=True) as im:
                    out[name] = im.id()
            except rbd.ImageNotFound:
                out[name] = None
    return out


class R6:
    def __init__(self, lab: Lab, fleet: SmallFleet) -> None:
        self.lab = lab
        self.fleet = fleet
        self.log = ControllerLog(fleet.ctl.log)

    def files(self) -> list[Path]:
        return sorted(p for p in self.fleet.store.rglob("*.yaml") if not p.name.startswith("."))

    def source(self) -> dict[str, Any]:
        body = self.fleet.ctl.get("/api/v1/source")
        return body if isinstance(body, dict) else {}

    def trial(self, t: Trial) -> None:
        case = CASES[t.k % len(CASES)]
        t.facts["case"] = case
        if not self.fleet.wait_converged(300):
            t.fail("not converged before the fault")
            return
        before = world_ids(self.lab, self.fleet)
        applied = self.source().get("lastAppliedRevision")
        self.log.mark()
        if case == "full-disk":
            self.full_disk(t)
        else:
            target = t.rng.choice(self.files())
            original = target.read_bytes()
            rel = str(target.relative_to(self.fleet.store))
            t.facts["file"] = rel
            try:
                damaged = self.damage(t, case, original)
                t.facts["damage"] = repr(damaged[:120])
                target.write_bytes(damaged)
                if case == "restart":
                    self.fleet.ctl.kill()
                    self.fleet.ctl.start()
                self.expect_error(t, rel, damaged, applied, restarted=case == "restart")
            finally:
                target.write_bytes(original)
        self.expect_intact(t, before)
        if not self.fleet.wait_converged(300):
            t.fail("did not converge after the store was restored")
        after = world_ids(self.lab, self.fleet)
        if after != before:
            t.fail(f"the world changed: {before} -> {after}")

    def damage(self, t: Trial, case: str, original: bytes) -> bytes:
        rng = t.rng
        if case == "truncate":
            return original[: rng.randrange(0, len(original))]
        if case == "rename":
            m = re.search(rb"\n  name: (\S+)", original)
            assert m is not None
            i = rng.randrange(m.start(1), m.end(1))
            flip = bytes([original[i] ^ (1 << rng.randrange(0, 5))])
            if not re.fullmatch(rb"[A-Za-z0-9_.-]", flip) or flip == original[i : i + 1]:
                flip = b"x" if original[i : i + 1] != b"x" else b"y"
            return original[:i] + flip + original[i + 1 :]
        start = rng.randrange(0, len(original))
        span = rng.randrange(1, 17)
        return original[:start] + rng.randbytes(span) + original[start + span :]

    def expect_error(
        self, t: Trial, rel: str, damaged: bytes, applied: str | None, *, restarted: bool
    ) -> None:
        """Within a few passes: an error naming the file; the last good revision kept."""
        deadline = time.monotonic() + FAULT_WAIT
        src: dict[str, Any] = {}
        while time.monotonic() < deadline:
            src = self.source()
            if src.get("error") and src.get("lastAttemptedRevision") != applied:
                break
            time.sleep(0.5)
        err = str(src.get("error") or "")
        status = self.fleet.ctl.status()
        err = err or str(status.get("last_error") or "")
        t.facts["error"] = err[:300]
        if not err:
            t.fail(f"no error reported for the damaged {rel} ({damaged[:60]!r})")
            return
        if rel not in err:
            t.fail(f"the error does not name {rel}: {err[:200]}")
        t.facts["error_has_line"] = bool(re.search(re.escape(rel) + r":\d+", err))
        if not restarted and src.get("lastAppliedRevision") != applied:
            t.fail(f"last applied revision moved: {applied} -> {src.get('lastAppliedRevision')}")
        time.sleep(2 * self.fleet.ctl.resync)  # passes on the damaged store

    def full_disk(self, t: Trial) -> None:
        store = self.fleet.store
        vm_file = store / "virtualmachine" / f"{self.fleet.vm}.yaml"
        old = vm_file.read_bytes()
        filler = store / ".filler"
        try:
            with filler.open("wb") as fh, contextlib.suppress(OSError):
                while True:
                    fh.write(b"\0" * 65536)
                    fh.flush()
            docs = [d for d in self.fleet.docs() if d["metadata"]["name"] == self.fleet.vm]
            docs[0]["metadata"]["labels"] = {"trial": str(t.k)}
            path = self.fleet.work / "labelled.yaml"
            path.write_text(yaml.safe_dump_all(docs))
            rc, out = self.fleet.ctl.cli("apply", "-f", str(path))
            t.facts["apply_rc"] = rc
            t.facts["error"] = out.strip()[-300:]
            if rc == 0:
                t.fail(f"apply on a full disk exited 0: {out[-200:]}")
            if "Traceback" in out or "No space left" not in out:
                t.fail(f"apply on a full disk gave no clear error: {out[-300:]}")
            if "virtualmachine/" + self.fleet.vm not in out:
                t.fail(f"the error does not name the file: {out[-300:]}")
            if vm_file.read_bytes() != old:
                t.fail("the VM's store file changed on a full disk")
            leftovers = [p.name for p in vm_file.parent.iterdir() if p.name.startswith(".")]
            if leftovers:
                t.fail(f"temp files left in the store: {leftovers}")
            time.sleep(2 * self.fleet.ctl.resync)
            if self.source().get("error"):
                t.fail(f"the store reads as broken: {self.source().get('error')}")
        finally:
            filler.unlink(missing_ok=True)

    def expect_intact(self, t: Trial, before: dict[str, Any]) -> None:
        now = world_ids(self.lab, self.fleet)
        t.facts["intact"] = now == before
        if now != before:
            t.fail(f"destroyed or changed: {before} -> {now}")
        acts = [
            e for e in self.log.new() if e.get("event") == "action" and e.get("kind") in DESTROYING
        ]
        t.facts["destroying_actions"] = len(acts)
        if acts:
            t.fail(f"destroying actions: {[(a.get('kind'), a.get('resource')) for a in acts][:4]}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="reliability.r6_store_faults", description=__doc__.split("\n")[0]
    )
    add_campaign_args(p, trials=20)
    add_lab_args(p, default_hosts=2)
    args = p.parse_args(argv)
    if args.smoke:
        args.trials = 1
    campaign = Campaign.from_args(
        "r6_store_faults", args, {"cases": list(CASES), "tmpfs_size": TMPFS_SIZE}
    )
    campaign.goals = {
        "clear_errors": "every damaged file named in the error (line and field where any)",
        "last_good_kept": "every trial",
        "destroyed": "0 (domain, images, attachment unchanged; no destroying action)",
    }
    lab = open_lab(args)
    fleet: SmallFleet | None = None
    try:
        fleet = SmallFleet(lab, "r6", mount_store=mount_tmpfs)
        fleet.up()
        r6 = R6(lab, fleet)
        for t in campaign.trials(args.trials, args.trial):
            try:
                r6.trial(t)
            except Exception as exc:  # noqa: BLE001 - a broken trial is a failed trial
                t.fail(f"{type(exc).__name__}: {exc}")
                if not fleet.ctl.alive():
                    fleet.ctl.start()
        rows = campaign.rows
        campaign.summary.update(
            clear_errors=sum(1 for r in rows if r.get("error")),
            last_good_kept=sum(1 for r in rows if r["ok"]),
            destroyed=sum(1 for r in rows if r.get("intact") is False)
            + sum(int(r.get("destroying_actions", 0)) for r in rows),
        )
        return campaign.finish(
            [
                ("trial", "trial"),
                ("case", "case"),
                ("file", "file"),
                ("error_has_line", "line"),
                ("intact", "intact"),
                ("destroying_actions", "destroying"),
                ("ok", "ok"),
                ("error", "error"),
            ]
        )
    finally:
        if fleet is not None:
            fleet.close(unmount=unmount)
        lab.close()


if __name__ == "__main__":
    raise SystemExit(main())
