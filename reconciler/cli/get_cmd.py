"""`volctl get KIND [NAME] [-o table|wide|json|yaml|name] [-l SELECTOR] [-w]`, kubectl style.

Reads the REST view only (never libvirt or Ceph), so it is instant and works while a host
hangs; it shows what the controller last observed, with phase, host, ids and age.  `-l`
selects on metadata.labels (`cli/selector.py`); `-w` prints the table, then one line per
resource each time the controller publishes a pass that changed it (`cli/watch.py`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from typing import Any

from reconciler.cli import client, leader_cmd, selector
from reconciler.cli.client import ApiError, Client

COLLECTION = {
    "VirtualMachine": "vms",
    "Volume": "volumes",
    "VolumeAttachment": "attachments",
    "Host": "hosts",
    "Image": "images",
    "InstanceType": "types",
}

Row = Callable[[dict[str, Any], float], list[str]]


def _ids(item: dict[str, Any], *keys: str) -> str:
    ids = item.get("ids") or {}
    return ",".join(f"{k}={ids[k]}" for k in keys if k in ids) or "-"


def _v(value: Any) -> str:
    return "-" if value is None or value == "" else str(value)


def _ready_reason(item: dict[str, Any]) -> str:
    if item.get("lastError"):
        return str(item["lastError"])
    for c in item.get("conditions", []):
        if c["type"] == "Ready" and c["status"] != "True":
            return c.get("message") or c.get("reason") or "-"
    return "-"


def _virt(h: dict[str, Any]) -> str:
    if not h.get("virtType"):
        return "-"
    return f"{h['virtType']} (forced)" if h.get("virtTypeForced") else str(h["virtType"])


COLUMNS: dict[str, tuple[list[str], Row, list[str], Row]] = {
    "vms": (
        ["NAME", "PHASE", "HOST", "VMID", "TYPE", "AGE"],
        lambda i, now: [i["name"], i["phase"], _v(i.get("host")), _v(i["ids"].get("vmid")),
                        _v(i.get("instanceType")), client.age(i.get("created"), now)],
        ["PMID", "TID", "IMAGE", "STATE", "VIRT", "MACS", "MESSAGE"],
        lambda i, _now: [_v(i.get("pmid")), _v(i.get("tid")), _v(i["details"].get("image")),
                        _v(i["details"].get("state")), _v(i["details"].get("virtType")),
                        _v(i["details"].get("macs")), _ready_reason(i)],
    ),
    "volumes": (
        ["NAME", "PHASE", "SIZE", "VOLUMEID", "ATTACHED-TO", "AGE"],
        lambda i, now: [i["name"], i["phase"], _v(i["details"].get("size")),
                        _v(i["ids"].get("volumeid")), _v(i.get("attachedTo")),
                        client.age(i.get("created"), now)],
        ["HOST", "RECLAIM", "RBD-IMAGE", "MESSAGE"],
        lambda i, _now: [_v(i.get("host")), _v(i["details"].get("reclaimPolicy")),
                        _v(i["details"].get("rbdImage")), _ready_reason(i)],
    ),
    "attachments": (
        ["NAME", "PHASE", "VOLUME", "VM", "HOST", "AGE"],
        lambda i, now: [i["name"], i["phase"], _v(i["details"].get("volume")),
                        _v(i["details"].get("vm")), _v(i.get("host")),
                        client.age(i.get("created"), now)],
        ["IDS", "TARGET", "MESSAGE"],
        lambda i, _now: [_ids(i, "volumeid", "vmid"), _v(i["details"].get("target")),
                        _ready_reason(i)],
    ),
    "images": (
        ["NAME", "ID", "PHASE", "SOURCE", "AGE"],
        lambda i, now: [i["name"], _v(i["ids"].get("id")), i["phase"],
                        _v(i["details"].get("source")), client.age(i.get("created"), now)],
        ["RBD-IMAGE", "MESSAGE"],
        lambda i, _now: [_v(i["details"].get("rbdImage") or i["details"].get("parent")),
                        _ready_reason(i)],
    ),
    "types": (
        ["NAME", "TID", "CPU", "RAM(MiB)", "DISK(GiB)"],
        lambda i, _now: [i["name"], _v(i["ids"].get("tid")), _v(i["details"].get("cpu")),
                        _v(i["details"].get("ram")), _v(i["details"].get("disk"))],
        ["VMS"],
        lambda i, _now: [_v(i["details"].get("vms"))],
    ),
    "hosts": (
        ["NAME", "PMID", "STATUS", "CPU(ours+foreign/total)", "RAM-MiB(ours+foreign/total)",
         "VMS"],
        lambda h, _now: [h["name"], _v(h["pmid"]), "Ready" if h["reachable"] else "Unknown",
                        f"{h['cpuUsedOurs']}+{h['cpuUsedForeign']}/{h['cpus']}",
                        f"{h['ramUsedOursMiB']}+{h['ramUsedForeignMiB']}/{h['memoryMiB']}",
                        str(h["domainsOurs"])],
        ["FOREIGN-DOMAINS", "VIRT", "ARCHES", "REASON"],
        lambda h, _now: [str(h["domainsForeign"]), _virt(h), _v(",".join(h.get("arches") or [])),
                         _v(h.get("reason"))],
    ),
}  # fmt: skip


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "get",
        help="list resources as the controller sees them",
        description="KIND: vms, volumes, attachments, hosts, images, types (singular works "
        "too), or leader (the HA replicas).",
    )
    p.add_argument("kind", metavar="KIND")
    p.add_argument("name", nargs="?", metavar="NAME")
    p.add_argument(
        "-o", "--output", choices=("table", "wide", "json", "yaml", "name"), default="table"
    )
    p.add_argument(
        "-l",
        "--selector",
        metavar="SELECTOR",
        help="filter on labels: key=value, key!=value, key, !key; comma-separated (all must hold)",
    )
    p.add_argument(
        "-w",
        "--watch",
        action="store_true",
        help="after listing, print a line for each resource whenever the controller changes it",
    )
    p.add_argument(
        "--watch-interval",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help=argparse.SUPPRESS,  # how often -w asks the controller for a new pass
    )
    p.set_defaults(func=run)


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[c]) for r in [headers, *rows]) for c in range(len(headers))]
    lines = ["   ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip()
             for r in [headers, *rows]]  # fmt: skip
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    if args.kind == "leader":  # the HA replicas (docs/ha.md)
        return leader_cmd.show(Client(client.config_of(args)), args.output)
    kind = client.kind_of(args.kind)
    coll = COLLECTION[kind]
    wanted = selector.parse(args.selector) if args.selector else selector.Selector()
    api = Client(client.config_of(args))
    try:
        items, now = fetch(api, coll, args.name, wanted)
    except ApiError as exc:
        if exc.status == 404 and args.name:
            print(f'error: {args.kind} "{args.name}" not found', file=sys.stderr)
            return 1
        raise
    if args.output in ("json", "yaml", "name"):
        show_documents(items, kind, args.output, single=bool(args.name) and not args.watch)
    elif not items and not args.watch:
        print(f"No {coll} found.", file=sys.stderr)
    else:
        rendered = rows_of(coll, items, now, wide=args.output == "wide")
        print(table(headers_of(coll, wide=args.output == "wide"), rendered), flush=True)
    if not args.watch:
        return 0
    from reconciler.cli.watch import watch

    return watch(api, args, kind, items, wanted)


def fetch(
    api: Client, coll: str, name: str | None, wanted: selector.Selector
) -> tuple[list[dict[str, Any]], float]:
    """The selected items of a collection (or the one named), and the controller's clock."""
    path = f"/api/v1/{coll}/{name}" if name else f"/api/v1/{coll}"
    body = api.get(path)
    items = [body] if name else body["items"]
    status = api.get("/api/v1/status")
    now = float(status.get("time") or 0) or time.time()
    return [i for i in items if wanted.matches(i.get("labels"))], now


def show_documents(items: list[dict[str, Any]], kind: str, output: str, *, single: bool) -> None:
    if output == "json":
        print(json.dumps(items[0] if single else {"items": items}, indent=2), flush=True)
    elif output == "yaml":
        import yaml

        body = items[0] if single else {"items": items}
        print(yaml.safe_dump(body, sort_keys=False), end="", flush=True)
    else:
        from reconciler.source.documents import short_key

        short = short_key(kind, "")
        for item in items:
            print(short + item["name"], flush=True)


def headers_of(coll: str, *, wide: bool) -> list[str]:
    headers, _row, wide_headers, _wide_row = COLUMNS[coll]
    return headers + (wide_headers if wide else [])


def rows_of(coll: str, items: list[dict[str, Any]], now: float, *, wide: bool) -> list[list[str]]:
    _headers, row, _wide_headers, wide_row = COLUMNS[coll]
    return [row(item, now) + (wide_row(item, now) if wide else []) for item in items]
