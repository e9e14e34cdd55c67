"""Controller and CLI configuration: where Ceph is, where the spec store is, where the API is.

One file read by both the controller (`volctl run`) and the CLI, so `volctl lab up` can write
a single config that makes every command point at the lab.  Lookup order: `--config` flag,
`$VOLCTL_CONFIG`, `./volctl.yaml`, `~/.config/volctl/config.yaml`, `/etc/volctl/config.yaml`.
Single values can be overridden by env vars (VOLCTL_API, VOLCTL_TOKEN, VOLCTL_STORE).
The config holds the *path* of a Ceph conf/keyring and the libvirt secret uuid, never a key.
The commands read it through `reconciler.loading.config_file`, which checks it against
`schemas/config.schema.json` the way specs are checked: every problem as `file:line: field:
message`, an unknown key with a `did you mean`, so a typo (`apii:`, `secretUuid:`) is refused
instead of silently falling back to a default.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from reconciler.errors import SpecError
from reconciler.identity import INSTALLATION_NAME
from reconciler.model import Network, NetworkKind

DEFAULT_API = "http://127.0.0.1:8470"
# a browser origin as sent in `Origin:`; `null` (sandboxed pages, file://) is not one on purpose
_ORIGIN = re.compile(r"https?://(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?")


@dataclass(frozen=True)
class CephConfig:
    conf: str = "/etc/ceph/ceph.conf"
    pool: str = "rbd"
    user: str = "admin"  # cephx id used by guests (libvirt secret) and by the controller
    secret_uuid: str | None = None  # libvirt secret that holds the key on every host
    monitors: tuple[tuple[str, int], ...] = ()  # for guests; read from conf when empty


@dataclass(frozen=True)
class Config:
    api: str = DEFAULT_API  # where the CLI finds the controller's REST view
    listen: str = "127.0.0.1:8470"  # where `volctl run` serves it
    token: str | None = None  # optional bearer token for the REST view
    store: str = "/var/lib/volctl/specs"  # `volctl apply` spec store directory
    state_dir: str = "/var/lib/volctl"
    # serial console logs, on each host: libvirt's own log dir exists everywhere and the qemu
    # driver may write there, so no host needs any setup
    console_dir: str = "/var/log/libvirt/qemu"
    # NICs of VMs whose spec and Host name none (None: one user-mode NIC)
    default_networks: tuple[Network, ...] | None = None
    ceph: CephConfig = field(default_factory=CephConfig)
    git: dict[str, Any] | None = None  # {url, branch, path, interval}
    cors_origins: tuple[str, ...] = ()  # `cors: {origins: [...]}`: browser origins that may read
    webhook: dict[str, Any] | None = None  # {token} or {tokenFile}: enables POST /hooks/git
    lease: float = 6.0  # HA leader lease seconds (rados:// store only; docs/ha.md)
    # the name in this installation's ownership marks; None: "<fsid>/<pool>" (identity.py)
    installation: str | None = None
    path: str | None = None  # the file this came from


def _candidates(explicit: str | None) -> list[Path]:
    out: list[Path] = []
    if explicit:
        return [Path(explicit)]
    if os.environ.get("VOLCTL_CONFIG"):
        return [Path(os.environ["VOLCTL_CONFIG"])]
    out.append(Path("volctl.yaml"))
    out.append(Path.home() / ".config" / "volctl" / "config.yaml")
    out.append(Path("/etc/volctl/config.yaml"))
    return out


Reader = Callable[[Path], dict[str, Any]]


def load_config(explicit: str | None = None, *, read: Reader | None = None) -> Config:
    """The config found as the module docstring says, with env overrides applied.

    `read` turns the file into plain data.  The commands pass the schema-checked reader,
    `reconciler.loading.config_file.read_checked` (through its `load_config`): this module
    sits below `loading` in the layer table, so it cannot call the schema check itself.
    """
    cfg = Config()
    for cand in _candidates(explicit):
        if cand.is_file():
            cfg = _parse(cand, read or read_plain)
            break
        if explicit or os.environ.get("VOLCTL_CONFIG"):
            raise SpecError(f"{cand}: config file not found")
    env = os.environ
    if env.get("VOLCTL_API"):
        cfg = replace(cfg, api=env["VOLCTL_API"])
    if env.get("VOLCTL_TOKEN"):
        cfg = replace(cfg, token=env["VOLCTL_TOKEN"])
    if env.get("VOLCTL_STORE"):
        cfg = replace(cfg, store=env["VOLCTL_STORE"])
    return cfg


def read_plain(path: Path) -> dict[str, Any]:
    """The config file's data, unchecked (`loading/config_file.py` is the checked reader)."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise SpecError(f"{path}: cannot read config: {exc}") from exc
    if not isinstance(raw, dict):
        raise SpecError(f"{path}: config must be a mapping")
    return raw


def _parse(path: Path, read: Reader) -> Config:
    raw = read(path)
    ceph_raw = raw.get("ceph") or {}
    mons = tuple(
        (str(m.rsplit(":", 1)[0]), int(m.rsplit(":", 1)[1])) for m in ceph_raw.get("monitors", [])
    )
    ceph = CephConfig(
        conf=str(ceph_raw.get("conf", CephConfig.conf)),
        pool=str(ceph_raw.get("pool", CephConfig.pool)),
        user=str(ceph_raw.get("user", CephConfig.user)),
        secret_uuid=ceph_raw.get("secretUUID"),
        monitors=mons,
    )
    base = Config()
    return Config(
        api=str(raw.get("api", base.api)),
        listen=str(raw.get("listen", base.listen)),
        token=raw.get("token"),
        store=str(raw.get("store", base.store)),
        state_dir=str(raw.get("stateDir", base.state_dir)),
        console_dir=str(raw.get("consoleDir", base.console_dir)),
        default_networks=_networks(path, raw.get("defaultNetworks")),
        ceph=ceph,
        git=raw.get("git"),
        cors_origins=_cors_origins(path, raw.get("cors")),
        webhook=raw.get("webhook"),
        lease=_lease(path, raw.get("lease", base.lease)),
        installation=_installation(path, raw.get("installation")),
        path=str(path),
    )


def _networks(path: Path, value: Any) -> tuple[Network, ...] | None:
    """`defaultNetworks: [{network: N} | {bridge: N} | {user: true}]`, as in VM specs."""
    if value is None:
        return None
    if not isinstance(value, list):
        raise SpecError(f"{path}: defaultNetworks: must be a list")
    out = []
    for i, item in enumerate(value):
        kinds = [k.value for k in NetworkKind]
        if not (isinstance(item, dict) and len(item) == 1 and next(iter(item)) in kinds):
            raise SpecError(
                f"{path}: defaultNetworks[{i}]: must be one of {{network: NAME}}, "
                "{bridge: NAME}, {user: true}"
            )
        ((key, name),) = item.items()
        kind = NetworkKind(key)
        if kind == NetworkKind.USER:
            out.append(Network(kind))
        elif isinstance(name, str) and name:
            out.append(Network(kind, name))
        else:
            raise SpecError(f"{path}: defaultNetworks[{i}].{key}: must be a name")
    return tuple(out)


def _cors_origins(path: Path, raw: Any) -> tuple[str, ...]:
    """`cors: {origins: [ORIGIN, ...]}`; absent means no CORS (only same-origin pages)."""
    if raw is None:
        return ()
    if not isinstance(raw, dict) or set(raw) != {"origins"} or not isinstance(raw["origins"], list):
        raise SpecError(f"{path}: cors: must be a mapping with one key, origins: [ORIGIN, ...]")
    for i, origin in enumerate(raw["origins"]):
        if origin != "*" and not (isinstance(origin, str) and _ORIGIN.fullmatch(origin)):
            raise SpecError(
                f"{path}: cors.origins[{i}]: {origin!r} is not an origin: write "
                "scheme://host[:port] as the browser sends it, e.g. http://dash.example:8080 "
                "(no path, no trailing slash), or '*'"
            )
    return tuple(raw["origins"])


def _installation(path: Path, value: Any) -> str | None:
    """`installation: NAME` (the schema checks it too; this guards the unchecked reader)."""
    if value is None:
        return None
    if not (isinstance(value, str) and re.fullmatch(INSTALLATION_NAME, value)):
        raise SpecError(
            f"{path}: installation: {value!r} is not a valid installation name (letters, "
            "digits and _ . : / -, at most 128, starting and ending with a letter or digit)"
        )
    return value


def _lease(path: Path, value: Any) -> float:
    """`lease: 6`, `lease: 6s` or `lease: 2.5s`: seconds, at least 1."""
    text = str(value).strip().removesuffix("s")
    try:
        seconds = float(text)
    except ValueError:
        raise SpecError(
            f"{path}: lease: {value!r} is not a duration in seconds (e.g. 6s)"
        ) from None
    if seconds < 1:
        raise SpecError(f"{path}: lease: {value!r} must be at least 1s")
    return seconds
