"""A/B of CLI start-up CPU: the session's start commit against HEAD, alternating runs."""
import json, os, resource, statistics, subprocess, sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

W = Path("/tmp/ab/work"); W.mkdir(exist_ok=True)
bodies = {"/api/v1/vms": {"items": [{"name": f"vm{i}", "labels": {}} for i in range(40)]}, "/api/v1/status": {"time": 1.0}, "/api/v1/source": {}}
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def do_GET(self):
        path = self.path.split("?")[0]
        data = json.dumps(bodies.get(path, {})).encode()
        self.send_response(200); self.send_header("Content-Length", str(len(data))); self.end_headers(); self.wfile.write(data)
srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
threading.Thread(target=srv.serve_forever, daemon=True).start()
cfg = W / "volctl.yaml"
cfg.write_text(f"api: http://127.0.0.1:{srv.server_address[1]}\nstore: {W/'store'}\nstateDir: {W/'state'}\n")
doc = W / "vol.yaml"; doc.write_text("apiVersion: volctl.io/v1\nkind: Volume\nmetadata: {name: abv}\nspec: {size: 1}\n")
env = dict(os.environ, VOLCTL_CONFIG=str(cfg), XDG_CACHE_HOME=str(W / "cache"))
trees = {"before (21b24ca)": "/tmp/ab-old", "after (HEAD)": "/work/main"}
cmds = {"get vms -o name": ["get", "vms", "-o", "name"], "apply -f (1 doc, directory store)": ["apply", "-f", str(doc)]}
res = {(t, c): [] for t in trees for c in cmds}
wall = {(t, c): [] for t in trees for c in cmds}
N = int(sys.argv[1]) if len(sys.argv) > 1 else 10
for i in range(N + 1):
    for c, argv in cmds.items():
        for t, root in trees.items():
            r0 = resource.getrusage(resource.RUSAGE_CHILDREN); t0 = time.perf_counter()
            p = subprocess.run([sys.executable, "/tmp/ab/run.py", root, *argv], env=env, capture_output=True, text=True)
            t1 = time.perf_counter(); r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            assert p.returncode == 0, (t, c, p.stderr[-500:])
            if i == 0: continue  # warm-up (the config check's cache mark, page cache)
            res[(t, c)].append((r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime) * 1000)
            wall[(t, c)].append((t1 - t0) * 1000)
out = {"load_avg": os.getloadavg(), "runs": N, "rows": []}
for (t, c), v in res.items():
    row = {"command": c, "tree": t, "cpu_ms_median": round(statistics.median(v), 1), "cpu_ms_min": round(min(v), 1), "wall_ms_median": round(statistics.median(wall[(t, c)]), 1)}
    out["rows"].append(row); print(row)
Path(sys.argv[2] if len(sys.argv) > 2 else "/tmp/ab/ab.json").write_text(json.dumps(out, indent=1))
