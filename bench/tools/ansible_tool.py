"""Ansible with the community.libvirt collection, the way an Ansible user would write it.

One inventory host per lab host (`ansible_connection=local`, the libvirt URI as a variable),
forks = number of hosts, so hosts are worked in parallel and each host's VMs in a loop.
Per VM: the root clone and the volume with the `rbd` CLI in a shell task guarded by
`rbd info` (there is no RBD module in the `ansible` package), then
`community.libvirt.virt command=define` with the same domain XML the other tools use, then
`community.libvirt.virt state=running`.  community.libvirt has no module to hot-attach a
disk, so the volume's `<disk>` is part of the defined XML (attached at define time, no live
attach call); the end state (running domain, both images opened by qemu) is the same.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import tempfile
from pathlib import Path

import yaml

from bench.common.fleet import GIB, Fleet
from bench.tools.base import ToolRun, ToolUnavailable, run_logged, tail

BIN = Path(sys.executable).parent


class Ansible:
    name = "ansible"
    rbd_backed = True

    def __init__(self, forks: int = 0) -> None:
        self.forks = forks
        self.work: Path | None = None
        self.notes = [
            "ansible: ansible-playbook, community.libvirt.virt (define with the same domain "
            "XML + state=running), RBD via `rbd` CLI shell tasks guarded by `rbd info`; no "
            "hot-attach module exists, so the volume <disk> is in the defined XML (cold attach)"
        ]

    def prepare(self, fleet: Fleet) -> None:
        if not (BIN / "ansible-playbook").exists():
            raise ToolUnavailable("ansible-playbook is not installed (pip install -e '.[bench]')")
        if importlib.util.find_spec("lxml") is None:  # community.libvirt.virt needs it
            raise ToolUnavailable("community.libvirt.virt needs lxml (the bench extra)")
        self.work = Path(tempfile.mkdtemp(prefix="volctl-bench-ansible-", dir="/var/tmp"))
        info = fleet.lab.info
        xml_dir = self.work / "xml"
        xml_dir.mkdir()
        lines = ["[lab]"]
        host_vars: dict[str, list[dict[str, str]]] = {}
        for vm in fleet.vms:
            xml = fleet.domain_xml(vm).replace("</devices>", fleet.disk_xml(vm) + "</devices>")
            (xml_dir / f"{vm.name}.xml").write_text(xml)
            host_vars.setdefault(vm.host, []).append(
                {
                    "name": vm.name,
                    "root": vm.root_image,
                    "vol": vm.volume_image,
                    "xml": str(xml_dir / f"{vm.name}.xml"),
                }
            )
        for host, vms in host_vars.items():
            hv = self.work / "host_vars"
            hv.mkdir(exist_ok=True)
            (hv / f"{host}.yml").write_text(
                yaml.safe_dump({"libvirt_uri": fleet.lab.host(host).uri, "vms": vms})
            )
            lines.append(
                f"{host} ansible_connection=local ansible_python_interpreter={sys.executable}"
            )
        (self.work / "inventory.ini").write_text("\n".join(lines) + "\n")
        rbd = f"rbd --conf {info.ceph_conf} -p {info.pool}"
        root, vol = "{{ item.root }}", "{{ item.vol }}"
        exists = ">/dev/null 2>&1 && echo exists || "
        clone_cmd = (
            f"{rbd} info {root} {exists}({rbd} clone {fleet.parent} {info.pool}/{root} && "
            f"{rbd} resize --size {fleet.disk_gib * GIB // 2**20}M {root})"
        )
        vol_cmd = f"{rbd} info {vol} {exists}{rbd} create --size {fleet.volume_gib * 1024}M {vol}"
        play = [
            {
                "name": "bench fleet",
                "hosts": "lab",
                "gather_facts": False,
                "tasks": [
                    {
                        "name": "root disk: COW clone of the base image, grown",
                        "ansible.builtin.shell": clone_cmd,
                        "register": "clone",
                        "changed_when": "'exists' not in clone.stdout",
                        "loop": "{{ vms }}",
                    },
                    {
                        "name": "volume",
                        "ansible.builtin.shell": vol_cmd,
                        "register": "vol",
                        "changed_when": "'exists' not in vol.stdout",
                        "loop": "{{ vms }}",
                    },
                    {
                        "name": "define the domain",
                        "community.libvirt.virt": {
                            "command": "define",
                            "uri": "{{ libvirt_uri }}",
                            "xml": "{{ lookup('file', item.xml) }}",
                        },
                        "loop": "{{ vms }}",
                    },
                    {
                        "name": "start it",
                        "community.libvirt.virt": {
                            "name": "{{ item.name }}",
                            "state": "running",
                            "uri": "{{ libvirt_uri }}",
                        },
                        "loop": "{{ vms }}",
                    },
                ],
            }
        ]
        (self.work / "site.yml").write_text(yaml.safe_dump(play, sort_keys=False))
        self.log = str(self.work / "ansible.log")
        self.forks_used = self.forks or max(1, len(fleet.hosts))

    def _play(self) -> ToolRun:
        assert self.work is not None
        env = dict(os.environ)
        env.update(
            ANSIBLE_LOCAL_TEMP=str(self.work / "tmp"),
            ANSIBLE_REMOTE_TEMP=str(self.work / "tmp"),
            ANSIBLE_NOCOLOR="1",
            ANSIBLE_RETRY_FILES_ENABLED="0",
            ANSIBLE_STDOUT_CALLBACK="default",
            ANSIBLE_HOST_KEY_CHECKING="0",
        )
        rc, _ = run_logged(
            [
                str(BIN / "ansible-playbook"),
                "-i",
                str(self.work / "inventory.ini"),
                "-f",
                str(self.forks_used),
                str(self.work / "site.yml"),
            ],
            self.log,
            env=env,
            cwd=str(self.work),
        )
        return ToolRun(
            ok=rc == 0, error="" if rc == 0 else tail(self.log), extra={"forks": self.forks_used}
        )

    def converge(self, fleet: Fleet) -> ToolRun:
        return self._play()

    def rerun(self, fleet: Fleet) -> ToolRun:
        return self._play()

    def cleanup(self, fleet: Fleet) -> None:
        pass

    def close(self) -> None:
        if self.work is not None:
            shutil.rmtree(self.work, ignore_errors=True)
