#!/usr/bin/env python3
"""Benchmarks of `gantry server` on the local backend (run through bench/server.sh).

1. webhook -> first step running: 20 signed generic hooks, one after the other; for each,
   the time from sending the hook to the first step's `started_at` in the database.
   Baseline in the same run: an HTTP round trip to /healthz (p50 of 20).
2. 10 builds x 20 steps: 10 hooks sent at once; wall time until every build ended.
   Baseline: the same 200 steps as `sh -c` forks in a loop.
3. Server RSS when idle, and its peak during the builds (VmHWM).

Only 127.0.0.1 is contacted. Prints figures; asserts nothing.
"""

import hashlib
import hmac
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ADMIN = "bench-admin-token-0123456789abcdef"
SECRET = "bench-webhook-secret-0123456789"
LATENCY_PIPELINE = "steps:\n  - name: first\n    image: busybox\n    commands: [true]\n"
DOCKER_PIPELINE = ("clone:\n  disable: true\nsteps:\n  - name: first\n"
                   "    image: gantry-test/busybox:latest\n    commands: [true]\n")
THROUGHPUT_PIPELINE = "clone:\n  disable: true\nsteps:\n" + "".join(
    f"  - name: s{i}\n    image: busybox\n    commands: [echo step {i}]\n" for i in range(20)
)


def git(cwd, *args):
    env = dict(os.environ, GIT_CONFIG_GLOBAL="/dev/null", GIT_CONFIG_NOSYSTEM="1")
    out = subprocess.run(
        ["git", "-c", "user.name=Bench", "-c", "user.email=b@gantry.invalid",
         "-c", "init.defaultBranch=main", "-c", "commit.gpgsign=false", *args],
        cwd=cwd, env=env, check=True, capture_output=True, text=True)
    return out.stdout.strip()


def make_repo(root, name, pipeline):
    work, bare = os.path.join(root, name), os.path.join(root, name + ".git")
    os.makedirs(work)
    os.makedirs(bare)
    git(bare, "init", "-q", "--bare")
    git(work, "init", "-q")
    with open(os.path.join(work, ".pipeline.yml"), "w") as f:
        f.write(pipeline)
    git(work, "add", "-A")
    git(work, "commit", "-q", "-m", "bench")
    git(work, "push", "-q", bare, "HEAD:refs/heads/main")
    return "file://" + bare, git(work, "rev-parse", "HEAD")


def request(base, method, path, body=None, headers=None):
    data = body.encode() if isinstance(body, str) else body
    req = urllib.request.Request(base + path, data=data, method=method, headers=headers or {})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return resp.status, resp.read()


def create_repo(base, name, clone_url):
    body = json.dumps({"owner": "bench", "name": name, "forge": "generic",
                       "clone_url": clone_url, "webhook_secret": SECRET})
    request(base, "POST", "/api/repos", body,
            {"Authorization": "Bearer " + ADMIN, "Content-Type": "application/json"})


def send_hook(base, name, clone_url, sha, delivery):
    body = json.dumps({"event": "push", "repo": "bench/" + name, "clone_url": clone_url,
                       "ref": "refs/heads/main", "after": sha})
    sig = "sha256=" + hmac.new(SECRET.encode(), body.encode(), hashlib.sha256).hexdigest()
    request(base, "POST", "/hooks/generic", body,
            {"Content-Type": "application/json", "X-Gantry-Signature": sig,
             "X-Gantry-Delivery": delivery})


def rss_kib(pid, field="VmRSS"):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


class Db:
    def __init__(self, path):
        self.path = path

    def query(self, sql, *args):
        con = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=5)
        try:
            return con.execute(sql, args).fetchall()
        finally:
            con.close()

    def build(self, repo, number):
        rows = self.query(
            "SELECT b.id, b.status FROM builds b JOIN repos r ON r.id = b.repo_id "
            "WHERE r.name = ? AND b.number = ?", repo, number)
        return rows[0] if rows else None

    def phases(self, build_id):
        """Build recorded, workflow enqueued, workflow started (ms)."""
        rows = self.query(
            "SELECT b.created_at, MIN(q.enqueued_at), MIN(w.started_at) FROM builds b "
            "JOIN workflows w ON w.build_id = b.id JOIN queue_items q ON q.build_id = b.id "
            "WHERE b.id = ?", build_id)
        return rows[0] if rows else None

    def first_step_start(self, build_id):
        rows = self.query(
            "SELECT MIN(s.started_at) FROM steps s JOIN workflows w ON w.id = s.workflow_id "
            "WHERE w.build_id = ?", build_id)
        return rows[0][0] if rows else None


TERMINAL = {"success", "failure", "killed", "error", "skipped"}


def wait_for(check, timeout=60.0, every=0.002):
    end = time.time() + timeout
    while time.time() < end:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise SystemExit("timed out waiting for the server")


def start_server(binary, data_dir, backend="local"):
    env = dict(os.environ, GANTRY_ADMIN_TOKEN=ADMIN, GANTRY_LOG="warn",
               GANTRY_DOCKER_LABELS=f"bench.gantry={os.getpid()}")
    proc = subprocess.Popen(
        [binary, "server", "--listen", "127.0.0.1:0", "--backend", backend,
         "--data-dir", data_dir], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        env=env, text=True)
    for line in proc.stdout:
        if line.startswith("gantry: listening on "):
            threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()
            return proc, line.split("listening on ", 1)[1].strip()
    raise SystemExit("gantry server did not start")


def p50(values):
    return statistics.median(values)


def latency(base, db, url, sha, name="latency"):
    healthz = []
    for _ in range(20):
        t0 = time.perf_counter()
        request(base, "GET", "/healthz")
        healthz.append((time.perf_counter() - t0) * 1000)
    samples, phases = [], []
    for i in range(1, 21):
        t0_ms = time.time() * 1000
        send_hook(base, name, url, sha, f"{name}-{i}")
        build = wait_for(lambda: db.build(name, i))
        started = wait_for(lambda: db.first_step_start(build[0]))
        samples.append(started - t0_ms)
        created, enqueued, wf_started = db.phases(build[0])
        phases.append((created - t0_ms, enqueued - created, wf_started - enqueued,
                       started - wf_started))
        wait_for(lambda: db.build(name, i)[1] in TERMINAL, every=0.01)
    breakdown = [p50([p[k] for p in phases]) for k in range(4)]
    return p50(samples), min(samples), max(samples), p50(healthz), breakdown


def throughput(base, db, url, sha, pid):
    baseline_t0 = time.perf_counter()
    for i in range(200):
        subprocess.run(["sh", "-c", f"echo step {i}"], stdout=subprocess.DEVNULL, check=True)
    baseline = time.perf_counter() - baseline_t0
    peak = [0]
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], rss_kib(pid))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    t0 = time.perf_counter()
    for i in range(1, 11):
        send_hook(base, "throughput", url, sha, f"throughput-{i}")
    def all_done():
        builds = [db.build("throughput", n) for n in range(1, 11)]
        return all(b and b[1] in TERMINAL for b in builds) and builds
    builds = wait_for(all_done, timeout=300, every=0.01)
    wall = time.perf_counter() - t0
    stop.set()
    sampler.join()
    statuses = sorted({b[1] for b in builds})
    return wall, baseline, statuses, peak[0]


def docker_ready():
    return subprocess.run(["docker", "image", "inspect", "gantry-test/busybox:latest"],
                          capture_output=True).returncode == 0


def docker_latency(binary, root):
    """Webhook -> first step running on the Docker backend (no clone step: a container)."""
    url, sha = make_repo(root, "dockerlat", DOCKER_PIPELINE)
    data = os.path.join(root, "data-docker")
    proc, base = start_server(binary, data, "docker")
    try:
        create_repo(base, "dockerlat", url)
        db = Db(os.path.join(data, "gantry.db"))
        return latency(base, db, url, sha, "dockerlat")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        label = f"label=bench.gantry={os.getpid()}"
        ids = subprocess.run(["docker", "ps", "-aq", "--filter", label],
                             capture_output=True, text=True).stdout.split()
        if ids:
            subprocess.run(["docker", "rm", "-f", *ids], capture_output=True)


def main():
    binary = sys.argv[1]
    with tempfile.TemporaryDirectory(prefix="gantry-bench-") as root:
        lat_url, lat_sha = make_repo(root, "latency", LATENCY_PIPELINE)
        thr_url, thr_sha = make_repo(root, "throughput", THROUGHPUT_PIPELINE)
        data = os.path.join(root, "data")
        proc, base = start_server(binary, data)
        try:
            time.sleep(1.0)
            idle = rss_kib(proc.pid)
            create_repo(base, "latency", lat_url)
            create_repo(base, "throughput", thr_url)
            db = Db(os.path.join(data, "gantry.db"))
            lat_p50, lat_min, lat_max, health_p50, breakdown = latency(
                base, db, lat_url, lat_sha)
            wall, baseline, statuses, peak = throughput(base, db, thr_url, thr_sha, proc.pid)
            hwm = rss_kib(proc.pid, "VmHWM")
        finally:
            proc.terminate()
            proc.wait(timeout=30)
        docker = docker_latency(binary, root) if docker_ready() else None
    print("gantry server, local backend (figures, not assertions)")
    print(f"  webhook -> first step running, p50 of 20: {lat_p50:.1f} ms "
          f"(min {lat_min:.1f}, max {lat_max:.1f}); target <= 20 ms")
    print(f"    baseline /healthz round trip p50: {health_p50:.2f} ms "
          f"(ratio {lat_p50 / max(health_p50, 0.001):.0f}x)")
    print("    p50 by phase: hook -> build recorded {:.1f} ms, -> config fetched, compiled and "
          "enqueued {:.1f} ms, -> claimed and started {:.1f} ms, -> first step running "
          "{:.1f} ms".format(*breakdown))
    if docker:
        print(f"  docker backend, webhook -> first step (a container) running, p50 of 20: "
              f"{docker[0]:.1f} ms (min {docker[1]:.1f}, max {docker[2]:.1f})")
    else:
        print("  docker backend: skipped (no engine or no gantry-test/busybox image)")
    print(f"  10 builds x 20 steps: {wall:.2f} s, builds {', '.join(statuses)}; target <= 1.5 s")
    print(f"    baseline 200 x sh -c fork/exec: {baseline:.2f} s (ratio {wall / baseline:.1f}x)")
    print(f"  RSS idle: {idle / 1024:.1f} MiB (target <= 25 MiB); peak during builds: "
          f"{max(peak, hwm) / 1024:.1f} MiB")


if __name__ == "__main__":
    main()
