"""R5, bad input at the REST edge: random requests against a running controller's REST view.

    .venv/bin/python -m reliability.r5_rest_fuzz --trials 10 --requests 1000 --lab-dir DIR

A real `volctl run` with a small converged fleet (a VM with a vmid, a volume with a volumeid,
the instance types) serves its REST view; each trial sends `--requests` random requests over
raw sockets (`reliability.common.httpfuzz`: random methods, the seed's legacy paths and
/api/v1, query strings with odd numbers and unicode digits, JSONP callbacks, headers, bodies
over the limit, broken HTTP: garbage, HTTP/0.9, bare LF, 70 KiB request lines, TLS hellos,
pipelining).  Goals: no answer is a 500, a well-formed request always gets an answer, and
after every trial the server is still healthy: `/healthz` is 200 and `/vm/types` answers
exactly the instance types it answered before the first request.  Each 500 is recorded with
the request's bytes and its (trial, index), so it replays with `--seed S --trial K`.
"""

from __future__ import annotations

import argparse
import json
import urllib.request
from collections import Counter
from typing import Any

from bench.common.lab import add_lab_args, open_lab
from reliability.common import httpfuzz
from reliability.common.campaign import Campaign, Trial, add_campaign_args
from reliability.common.small import SmallFleet


def vm_types(listen: str) -> Any:
    with urllib.request.urlopen(f"http://{listen}/vm/types", timeout=10) as r:
        return json.loads(r.read())


def healthy(listen: str, want: Any) -> str:
    """'' when /healthz is 200 and /vm/types answers `want`, else what is wrong."""
    try:
        with urllib.request.urlopen(f"http://{listen}/healthz", timeout=10) as r:
            if r.status != 200:
                return f"/healthz answered {r.status}"
        got = vm_types(listen)
    except OSError as exc:
        return f"no answer: {exc}"
    return "" if got == want else f"/vm/types changed: {got} != {want}"


def fuzz_trial(t: Trial, listen: str, n: int, want_types: Any) -> None:
    host, _, port = listen.rpartition(":")
    statuses: Counter[str] = Counter()
    silent_wellformed = 0
    errors = []
    for i in range(n):
        data = httpfuzz.request(t.rng)
        ans = httpfuzz.send(host, int(port), data)
        statuses[str(ans.status)] += 1
        if ans.status is None and httpfuzz.wellformed(data):
            silent_wellformed += 1
            errors.append(f"#{i} no answer ({ans.error}) to {data[:200]!r}")
        if ans.status == 500:
            errors.append(f"#{i} 500 for {data[:300]!r}")
    t.facts.update(
        requests=n,
        answers_500=statuses.get("500", 0),
        answers_5xx=sum(v for k, v in statuses.items() if k.startswith("5")),
        no_answer=statuses.get("None", 0),
        wellformed_unanswered=silent_wellformed,
        statuses=dict(sorted(statuses.items())),
        examples=errors[:10],
    )
    for e in errors[:5]:
        t.fail(e)
    sick = healthy(listen, want_types)
    t.facts["healthy_after"] = not sick
    if sick:
        t.fail(f"server unhealthy after the trial: {sick}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="reliability.r5_rest_fuzz", description=__doc__.split("\n")[0])
    add_campaign_args(p, trials=10)
    add_lab_args(p, default_hosts=2)
    p.add_argument("--requests", type=int, default=1000, help="requests per trial (1000)")
    args = p.parse_args(argv)
    if args.smoke:
        args.trials, args.requests = 1, 300
    campaign = Campaign.from_args("r5_rest_fuzz", args, {"requests_per_trial": args.requests})
    campaign.goals = {
        "answers_500": "0",
        "wellformed_unanswered": "0",
        "healthy_after_every_trial": "yes (/healthz 200, /vm/types unchanged)",
    }
    lab = open_lab(args)
    fleet: SmallFleet | None = None
    try:
        fleet = SmallFleet(lab, "r5")
        fleet.up()
        listen = fleet.ctl.listen
        want = vm_types(listen)
        campaign.summary["vm_types_before"] = want
        for t in campaign.trials(args.trials, args.trial):
            fuzz_trial(t, listen, args.requests, want)
        rows = campaign.rows
        campaign.summary.update(
            requests=sum(int(r.get("requests", 0)) for r in rows),
            answers_500=sum(int(r.get("answers_500", 0)) for r in rows),
            wellformed_unanswered=sum(int(r.get("wellformed_unanswered", 0)) for r in rows),
            healthy_after_every_trial=all(r.get("healthy_after") for r in rows),
            controller_alive_at_end=fleet.ctl.alive(),
        )
        if not fleet.ctl.alive():
            campaign.rows[-1]["ok"] = False
        return campaign.finish(
            [
                ("trial", "trial"),
                ("requests", "requests"),
                ("answers_500", "500s"),
                ("answers_5xx", "5xx"),
                ("no_answer", "closed, no answer"),
                ("wellformed_unanswered", "well-formed unanswered"),
                ("healthy_after", "healthy after"),
                ("ok", "ok"),
            ]
        )
    finally:
        if fleet is not None:
            fleet.close()
        lab.close()


if __name__ == "__main__":
    raise SystemExit(main())
