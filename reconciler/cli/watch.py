"""`volctl get -w`: follow the controller's passes and print what changed, as `kubectl get -w`.

The controller publishes one immutable snapshot per pass, numbered by `generation`
(`/api/v1/status`, a cached body that costs it a dict lookup).  The watch long-polls that
number (`?afterGeneration=N`: the controller answers when a pass publishes the next one; a
controller without long polling is asked every `--watch-interval`, 1 s); when it moved, it
fetches the collection once and prints one line for each selected resource whose state
differs from what was last printed, and a `Deleted` line for each that left.  Lines keep the
column widths of the first table, so the output reads as one table that grows.  Ctrl-C ends
it (exit 130).
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from reconciler.cli import client, get_cmd
from reconciler.cli.client import ApiError, Client
from reconciler.cli.selector import Selector

_VOLATILE = ("events", "created")  # change without the resource changing


def signature(item: dict[str, Any]) -> str:
    return json.dumps({k: v for k, v in item.items() if k not in _VOLATILE}, sort_keys=True)


def watch(
    api: Client,
    args: argparse.Namespace,
    kind: str,
    items: list[dict[str, Any]],
    wanted: Selector,
) -> int:
    coll = get_cmd.COLLECTION[kind]
    wide = args.output == "wide"
    headers = get_cmd.headers_of(coll, wide=wide)
    now = time.time()
    widths = [
        max(len(r[c]) for r in [headers, *get_cmd.rows_of(coll, items, now, wide=wide)])
        for c in range(len(headers))
    ]
    seen = {item["name"]: (signature(item), item) for item in items}
    generation = api.get("/api/v1/status").get("generation")
    while True:
        body = client.next_snapshot(
            api, "/api/v1/status", generation, client.LONG_POLL, fallback=args.watch_interval
        )
        current = body.get("generation")
        if current == generation:
            continue
        generation = current
        try:
            fresh, now = get_cmd.fetch(api, coll, args.name, wanted)
        except ApiError as exc:
            if exc.status != 404 or not args.name:
                raise
            fresh, now = [], time.time()  # the one resource watched is gone
        changed = [i for i in fresh if seen.get(i["name"], ("",))[0] != signature(i)]
        names = {i["name"] for i in fresh}
        gone = [{**item, "phase": "Deleted"} for n, (_s, item) in seen.items() if n not in names]
        seen = {i["name"]: (signature(i), i) for i in fresh}
        _emit(args.output, kind, [*changed, *gone], now, widths)


def _emit(
    output: str, kind: str, items: list[dict[str, Any]], now: float, widths: list[int]
) -> None:
    if output in ("json", "yaml", "name"):
        for item in items:
            if output == "yaml":
                print("---")
            get_cmd.show_documents([item], kind, output, single=True)
        return
    coll = get_cmd.COLLECTION[kind]
    for cells in get_cmd.rows_of(coll, items, now, wide=output == "wide"):
        line = "   ".join(c.ljust(w) for c, w in zip(cells, widths, strict=False)).rstrip()
        print(line, flush=True)


__all__ = ["signature", "watch"]
