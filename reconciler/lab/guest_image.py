"""The lab's tiny bootable base image, built only from Debian packages and cached.

Why: end-to-end tests need a real guest OS that boots from its own (RBD) disk with a plain
domain XML, acknowledges PCI hot-unplug (so virtio detach completes) and reports on its
serial console which block devices and NICs (with their MACs) it sees.  A full distribution
image would be large and slow under TCG; this one is Debian's kernel plus a static C init in
an initramfs, on a FAT "superfloppy" made bootable with syslinux.  It boots to
`VOLCTL-GUEST: ready` in seconds.

Everything is built once into the cache dir (kept by `lab down`) and keyed by a hash of its
inputs, so a later `lab up` only imports the cached raw file into RBD.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import shutil
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from reconciler.lab.proc import LabError, run

DEFAULT_CACHE_DIR = Path("/var/cache/volctl-lab")
READY_LINE = "VOLCTL-GUEST: ready"
BLOCKS_PREFIX = "VOLCTL-GUEST: blocks"
NICS_PREFIX = "VOLCTL-GUEST: nics"
IMAGE_MIB = 64
BUILD_VERSION = "1"
# no_timer_check, tsc=reliable: a loaded host makes TCG timing checks fail or fall back to
# slow clocksources; nokaslr and mitigations=off only save boot time in the test guest
KERNEL_ARGS = (
    "console=ttyS0,115200 loglevel=4 panic=10 no_timer_check tsc=reliable nokaslr mitigations=off"
)
# modules the init loads (their dependencies are found in the .ko files and loaded first);
# the crc *_generic ones are soft dependencies of sd_mod's t10-pi chain
MODULE_ROOTS = (
    "virtio_pci",
    "virtio_blk",
    "virtio_net",
    "virtio_scsi",
    "crct10dif_generic",
    "crc64_rocksoft_generic",
    "sd_mod",
    "button",
    "evdev",
)
INIT_SOURCE = Path(__file__).with_name("guest") / "init.c"

Log = Callable[[str], None]


def _syslinux_cfg() -> str:
    return (
        "SERIAL 0 115200\n"
        "PROMPT 0\n"
        "DEFAULT volctl\n"
        "LABEL volctl\n"
        "  LINUX /vmlinuz\n"
        "  INITRD /initrd.gz\n"
        f"  APPEND {KERNEL_ARGS}\n"
    )


def kernel_package() -> str:
    """The Debian package of the current default kernel (linux-image-X-amd64)."""
    out = run(["apt-cache", "depends", "linux-image-amd64"], timeout=60)
    for line in out.splitlines():
        m = re.match(r"\s*Depends:\s*(linux-image-\S+)", line)
        if m:
            return m.group(1)
    raise LabError("cannot find the kernel package behind linux-image-amd64")


def _module_index(moddir: Path) -> dict[str, Path]:
    return {p.name[:-3].replace("-", "_"): p for p in moddir.rglob("*.ko")}


def _module_deps(path: Path) -> list[str]:
    found = re.search(rb"\0depends=([^\0]*)\0", path.read_bytes())
    if not found:
        return []
    return [d.replace("-", "_") for d in found.group(1).decode().split(",") if d]


def _module_order(index: dict[str, Path], roots: tuple[str, ...] = MODULE_ROOTS) -> list[str]:
    """ROOTS plus their dependencies, dependencies first."""
    order: list[str] = []

    def visit(name: str) -> None:
        if name in order:
            return
        if name not in index:
            raise LabError(f"kernel module {name} not found in the Debian kernel package")
        for dep in _module_deps(index[name]):
            visit(dep)
        order.append(name)

    for root in roots:
        visit(root)
    return order


def _has_modules(kdir: Path) -> bool:
    try:
        _module_order(_module_index(kdir / "mods"))
    except LabError:
        return False
    return True


def _modules_key() -> str:
    return hashlib.sha256("\0".join(MODULE_ROOTS).encode()).hexdigest()[:8]


def ensure_kernel(cache: Path, log: Log) -> Path:
    """A dir with `vmlinuz` and `mods/*.ko` from Debian's kernel package (downloaded once).

    A cached dir is used only if it holds every module of MODULE_ROOTS; a new module set is
    extracted into a dir of its own (`kernel+KEY-VERSION`, a name older volctl versions do
    not glob), so a cache shared with them stays valid for both.
    """
    existing = [k.parent for k in sorted(cache.glob("kernel*/vmlinuz"))]
    usable = [k for k in existing if _has_modules(k)]
    if usable:
        return usable[-1]
    try:
        pkg = kernel_package()
    except LabError:  # no package lists yet (a fresh or slimmed machine)
        log("apt-get update (no package lists for linux-image-amd64)")
        run(["apt-get", "update", "-qq"], timeout=600)
        pkg = kernel_package()
    prefix = f"kernel+{_modules_key()}" if existing else "kernel"
    kdir = cache / f"{prefix}-{pkg.removeprefix('linux-image-')}"
    log(f"downloading {pkg} (Debian) into {cache}")
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        try:
            run(["apt-get", "download", pkg], cwd=tmp, timeout=600)
        except LabError:  # stale package lists: the version moved on in the archive
            log("apt-get update (stale package lists)")
            run(["apt-get", "update", "-qq"], timeout=600)
            pkg = kernel_package()
            kdir = cache / f"{prefix}-{pkg.removeprefix('linux-image-')}"
            run(["apt-get", "download", pkg], cwd=tmp, timeout=600)
        debs = list(Path(tmp).glob("*.deb"))
        if not debs:
            raise LabError(f"apt-get download {pkg} produced no .deb")
        root = Path(tmp) / "x"
        run(["dpkg-deb", "-x", str(debs[0]), str(root)], timeout=300)
        stage = Path(tmp) / "kernel"
        (stage / "mods").mkdir(parents=True)
        vmlinuz = sorted((root / "boot").glob("vmlinuz-*"))
        if not vmlinuz:
            raise LabError(f"{pkg} has no /boot/vmlinuz-*")
        shutil.copy2(vmlinuz[0], stage / "vmlinuz")
        index = _module_index(root / "lib" / "modules")
        for name in _module_order(index):
            shutil.copy2(index[name], stage / "mods" / f"{name}.ko")
        try:
            stage.rename(kdir)
        except OSError:  # another lab finished the same download first
            if not (kdir / "vmlinuz").exists():
                raise
    return kdir


def _cpio_entry(
    ino: int, name: str, mode: int, data: bytes = b"", rdev: tuple[int, int] = (0, 0)
) -> bytes:
    encoded = name.encode() + b"\0"
    fields = (ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1], len(encoded), 0)
    head = b"070701" + b"".join(b"%08X" % v for v in fields) + encoded
    head += b"\0" * ((4 - len(head) % 4) % 4)
    return head + data + b"\0" * ((4 - len(data) % 4) % 4)


def write_initrd(
    kdir: Path, init_binary: Path, out: Path, roots: tuple[str, ...] = MODULE_ROOTS
) -> None:
    """A gzip'd newc cpio: /init, /mods/*.ko + /mods/order, /dev/console and mount points."""
    order = _module_order(_module_index(kdir / "mods"), roots)
    entries: list[bytes] = []
    ino = 1
    for d in ("dev", "proc", "sys", "mods"):
        entries.append(_cpio_entry(ino, d, stat.S_IFDIR | 0o755))
        ino += 1
    entries.append(_cpio_entry(ino, "dev/console", stat.S_IFCHR | 0o600, rdev=(5, 1)))
    ino += 1
    entries.append(_cpio_entry(ino, "init", stat.S_IFREG | 0o755, init_binary.read_bytes()))
    ino += 1
    entries.append(_cpio_entry(ino, "mods/order", stat.S_IFREG | 0o644, "\n".join(order).encode()))
    for name in order:
        ino += 1
        data = (kdir / "mods" / f"{name}.ko").read_bytes()
        entries.append(_cpio_entry(ino, f"mods/{name}.ko", stat.S_IFREG | 0o644, data))
    entries.append(_cpio_entry(ino + 1, "TRAILER!!!", 0))
    with gzip.open(out, "wb", compresslevel=6) as fh:
        fh.write(b"".join(entries))


def _cache_key(kdir: Path) -> str:
    h = hashlib.sha256()
    for part in (BUILD_VERSION, kdir.name, _syslinux_cfg(), str(IMAGE_MIB), *MODULE_ROOTS):
        h.update(part.encode() + b"\0")
    h.update(INIT_SOURCE.read_bytes())
    return h.hexdigest()[:12]


def ensure_base_image(cache: Path, log: Log) -> Path:
    """The cached bootable raw image, built (and boot-checked under qemu) if missing."""
    cache.mkdir(parents=True, exist_ok=True)
    kdir = ensure_kernel(cache, log)
    image = cache / f"base-{_cache_key(kdir)}.img"
    if image.exists():
        return image
    t0 = time.monotonic()
    log(f"building the base image {image.name}")
    with tempfile.TemporaryDirectory(dir=cache) as tmpdir:
        tmp = Path(tmpdir)
        run(["gcc", "-static", "-O2", "-o", str(tmp / "init"), str(INIT_SOURCE)], timeout=120)
        write_initrd(kdir, tmp / "init", tmp / "initrd.gz")
        (tmp / "syslinux.cfg").write_text(_syslinux_cfg())
        raw = tmp / "base.img"
        with raw.open("wb") as fh:
            fh.truncate(IMAGE_MIB * 1024 * 1024)
        run(["mkfs.vfat", "-n", "VOLCTLBASE", "-i", "564f4c43", str(raw)], timeout=60)
        env = dict(os.environ, MTOOLS_SKIP_CHECK="1")
        files = [str(kdir / "vmlinuz"), str(tmp / "initrd.gz"), str(tmp / "syslinux.cfg")]
        run(["mcopy", "-i", str(raw), *files, "::"], timeout=60, env=env)
        run(["syslinux", "--install", str(raw)], timeout=60, env=env)
        boot_check(raw, tmp / "console.log", log)
        raw.rename(image)
    log(f"base image built and boot-checked in {time.monotonic() - t0:.1f} s")
    return image


def boot_check(raw: Path, console: Path, log: Log, timeout: float = 240.0) -> None:
    """Boot RAW from its own disk under plain qemu (TCG) and wait for the ready line."""
    cmd = [
        "qemu-system-x86_64",
        "-machine", "pc,accel=tcg",
        "-m", "256",
        "-nodefaults",
        "-display", "none",
        "-serial", f"file:{console}",
        "-drive", f"file={raw},format=raw,if=virtio,readonly=on",
        "-nic", "user,model=virtio-net-pci,mac=52:54:00:00:00:01",
        "-no-reboot",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = console.read_text(errors="replace") if console.exists() else ""
            if READY_LINE in text and f"{NICS_PREFIX} eth0:52:54:00:00:00:01" in text:
                log("boot check passed: the image boots from its own disk")
                return
            if proc.poll() is not None:
                break
            time.sleep(0.2)
    finally:
        proc.kill()
        proc.wait(timeout=10)
    text = console.read_text(errors="replace") if console.exists() else ""
    raise LabError("base image did not boot:\n" + "\n".join(text.splitlines()[-20:]))
