"""A/B of the CLI's start-up CPU: the session's start commit against HEAD, alternating runs.

`get vms -o name` against a loopback HTTP server answering like the REST view, and
`apply -f` of one document into a directory store; CPU from RUSAGE_CHILDREN, one warm-up
round dropped.  Usage: python b4_cli_startup_ab-....py RUNS OUT.json (trees in TREES;
b4_cli_startup_ab-run.py is the launcher).
"""

import json
import os
import resource
import statistics
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

WORK = Path("/tmp/ab/work")
LAUNCHER = Path(__file__).with_name("b4_cli_startup_ab-run.py")
TREES = {"before (21b24ca)": "/tmp/ab-old", "after (HEAD)": "/work/main"}
VMS = {"items": [{"name": f"vm{i}", "labels": {}} for i in range(40)]}
BODIES = {"/api/v1/vms": VMS, "/api/v1/status": {"time": 1.0}, "/api/v1/source": {}}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *_a: object) -> None:
        pass

    def do_GET(self) -> None:
        data = json.dumps(BODIES.get(self.path.split("?")[0], {})).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def main(runs: int, out: Path) -> None:
    WORK.mkdir(parents=True, exist_ok=True)
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    cfg = WORK / "volctl.yaml"
    api = f"http://127.0.0.1:{srv.server_address[1]}"
    cfg.write_text(f"api: {api}\nstore: {WORK / 'store'}\nstateDir: {WORK / 'state'}\n")
    doc = WORK / "vol.yaml"
    doc.write_text(
        "apiVersion: volctl.io/v1\nkind: Volume\nmetadata: {name: abv}\nspec: {size: 1}\n"
    )
    env = dict(os.environ, VOLCTL_CONFIG=str(cfg), XDG_CACHE_HOME=str(WORK / "cache"))
    cmds = {
        "get vms -o name": ["get", "vms", "-o", "name"],
        "apply -f (1 doc, directory store)": ["apply", "-f", str(doc)],
    }
    cpu: dict[tuple[str, str], list[float]] = {(t, c): [] for t in TREES for c in cmds}
    wall: dict[tuple[str, str], list[float]] = {(t, c): [] for t in TREES for c in cmds}
    for i in range(runs + 1):
        for c, argv in cmds.items():
            for t, root in TREES.items():
                r0, t0 = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
                p = subprocess.run(
                    [sys.executable, str(LAUNCHER), root, *argv],
                    env=env, capture_output=True, text=True, check=False,
                )  # fmt: skip
                t1, r1 = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
                if p.returncode != 0:
                    raise SystemExit(f"{t} {c}: {p.stderr[-500:]}")
                if i == 0:
                    continue  # warm-up: the config check's cache mark, the page cache
                used = r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime
                cpu[(t, c)].append(used * 1000)
                wall[(t, c)].append((t1 - t0) * 1000)
    rows = [
        {
            "command": c,
            "tree": t,
            "cpu_ms_median": round(statistics.median(v), 1),
            "cpu_ms_min": round(min(v), 1),
            "wall_ms_median": round(statistics.median(wall[(t, c)]), 1),
        }
        for (t, c), v in cpu.items()
    ]
    out.write_text(json.dumps({"load_avg": os.getloadavg(), "runs": runs, "rows": rows}, indent=1))
    for row in rows:
        print(row)


if __name__ == "__main__":
    main(int(sys.argv[1]), Path(sys.argv[2]))
