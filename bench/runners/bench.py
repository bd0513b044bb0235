#!/usr/bin/env python3
"""Remote-runner benchmark (run through bench/runners.sh; see bench/runners/README.md).

For each database (SQLite, and Postgres when a URL is given), two rounds on fresh servers:

- baseline: `gantry server --backend local --runner-capacity 4` (the built-in runner: the
  same protocol over an in-memory channel);
- remote: `gantry server --no-local-runner` and 4 `gantry runner --backend local
  --capacity 1` processes.

Each round: 1,000 builds of 5 `true` steps triggered through the API by 4 concurrent
clients while the runners drain them; then 100 builds triggered one at a time with idle
runners (claim latency without a queue). Prints figures and remote/baseline ratios;
asserts nothing. Only 127.0.0.1 is contacted. Every process it starts is recorded in
PID_FILE so the calling script can stop it even if this one is killed.
"""

import json
import os
import re
import sqlite3
import statistics
import subprocess
import sys
import threading
import time

# Shares the git, HTTP and RSS helpers of bench/server_bench.py (no .pyc left in bench/).
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from server_bench import make_repo, request, rss_kib  # noqa: E402

ADMIN = "bench-admin-token-0123456789abcdef"
BUILDS = int(os.environ.get("BENCH_BUILDS", "1000"))
QUIET_BUILDS = int(os.environ.get("BENCH_QUIET_BUILDS", "100"))
RUNNERS = 4
CLIENTS = 4
PIPELINE = "clone:\n  disable: true\nsteps:\n" + "".join(
    f"  - name: s{i}\n    image: busybox\n    commands: [true]\n" for i in range(1, 6))
ASSIGNED = re.compile(r"^gantry runner: running .* \(assignment (\d+)\)$")
TERMINAL = {"success", "failure", "killed", "error", "skipped"}


def now_ms():
    return time.time() * 1000


class Lines:
    """A process's output read line by line in a thread, each line with when it was read."""

    def __init__(self, stream):
        self.lines = []
        self.changed = threading.Condition()
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream):
        for line in stream:
            with self.changed:
                self.lines.append((now_ms(), line.rstrip("\n")))
                self.changed.notify_all()

    def wait_for(self, predicate, timeout=60.0):
        """Waits until `predicate(lines)` is true; the lines so far otherwise."""
        with self.changed:
            if not self.changed.wait_for(lambda: predicate(self.lines), timeout):
                tail = "\n".join(text for _, text in self.lines[-20:])
                raise SystemExit(f"timed out waiting for a process; its last lines:\n{tail}")


class Processes:
    """Starts processes and records their pids in a file read by the calling script's trap."""

    def __init__(self, pid_file):
        self.pid_file = pid_file
        self.running = []

    def start(self, args, env, stdout=subprocess.DEVNULL):
        proc = subprocess.Popen(args, env=env, stdin=subprocess.DEVNULL, stdout=stdout,
                                stderr=subprocess.PIPE, text=True)
        with open(self.pid_file, "a") as f:
            f.write(f"{proc.pid}\n")
        self.running.append(proc)
        return proc

    def stop_all(self):
        for proc in reversed(self.running):
            if proc.poll() is None:
                proc.terminate()
        for proc in self.running:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.running.clear()


class Store:
    """Reads the server's database: SQLite through sqlite3, Postgres through psql."""

    def __init__(self, sqlite_path=None, postgres_url=None, psql=None):
        self.sqlite_path, self.postgres_url, self.psql = sqlite_path, postgres_url, psql

    def rows(self, sql):
        if self.sqlite_path:
            con = sqlite3.connect(f"file:{self.sqlite_path}?mode=ro", uri=True, timeout=10)
            try:
                return con.execute(sql).fetchall()
            finally:
                con.close()
        out = subprocess.run([self.psql, "-X", "-A", "-t", "-F", "\t", "-d", self.postgres_url,
                              "-c", sql], check=True, capture_output=True, text=True).stdout
        return [tuple(None if v == "" else v for v in line.split("\t"))
                for line in out.splitlines() if line]

    def ended_builds(self, repo):
        """How many builds of a repository have ended."""
        ended = ", ".join(f"'{status}'" for status in sorted(TERMINAL))
        return int(self.rows(
            "SELECT COUNT(*) FROM builds b JOIN repos r ON r.id = b.repo_id "
            f"WHERE r.name = '{repo}' AND b.status IN ({ended})")[0][0])

    def workflows(self, repo):
        """Per queue item of a repository: id, enqueued, started, finished, status, runner."""
        rows = self.rows(
            "SELECT q.id, q.enqueued_at, w.started_at, w.finished_at, b.status, q.runner_id "
            "FROM queue_items q JOIN workflows w ON w.id = q.workflow_id "
            "JOIN builds b ON b.id = w.build_id JOIN repos r ON r.id = b.repo_id "
            f"WHERE r.name = '{repo}' ORDER BY q.id")
        return [(int(a), int(b), int(c or 0), int(d or 0), e, f) for a, b, c, d, e, f in rows]


def percentile(values, fraction):
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def api(base, method, path, body=None):
    headers = {"Authorization": "Bearer " + ADMIN}
    if body is not None:
        headers["Content-Type"] = "application/json"
        body = json.dumps(body)
    _, data = request(base, method, path, body, headers)
    return json.loads(data) if data else None


def start_server(procs, binary, data_dir, database_url, remote):
    env = dict(os.environ, GANTRY_ADMIN_TOKEN=ADMIN,
               GANTRY_LOG="warn,gantry_server::runners::session=info")
    args = [binary, "server", "--listen", "127.0.0.1:0", "--backend", "local",
            "--data-dir", data_dir]
    args += ["--no-local-runner"] if remote else ["--runner-capacity", str(RUNNERS)]
    if database_url:
        args += ["--database-url", database_url]
    proc = procs.start(args, env, stdout=subprocess.PIPE)
    log = Lines(proc.stderr)
    for line in proc.stdout:
        if line.startswith("gantry: listening on "):
            threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()
            return proc, log, line.split("listening on ", 1)[1].strip()
    tail = "\n".join(text for _, text in log.lines[-20:])
    raise SystemExit(f"gantry server did not start:\n{tail}")


def start_runners(procs, binary, root, base, log):
    """Four runners, each with its own token; returns them once the server saw all connect."""
    runners = []
    for i in range(1, RUNNERS + 1):
        secret = api(base, "POST", "/api/tokens",
                     {"name": f"bench-{i}", "subject": f"bench-{i}", "role": "runner"})["secret"]
        env = dict(os.environ, GANTRY_SERVER=base, GANTRY_TOKEN=secret)
        proc = procs.start([binary, "runner", "--backend", "local", "--capacity", "1",
                            "--name", f"bench-{i}", "--workspaces",
                            os.path.join(root, f"workspaces-{i}")], env)
        runners.append((proc, Lines(proc.stderr)))
    log.wait_for(lambda lines: sum("runner connected" in t for _, t in lines) >= RUNNERS)
    return runners


def trigger_all(base, repo, count):
    """`count` manual builds of `main`, sent by CLIENTS threads at once."""
    errors = []

    def client(n):
        try:
            for _ in range(n):
                api(base, "POST", f"/api/repos/bench/{repo}/builds", {"branch": "main"})
        except Exception as error:  # reported after the join
            errors.append(error)

    share = [count // CLIENTS + (1 if i < count % CLIENTS else 0) for i in range(CLIENTS)]
    threads = [threading.Thread(target=client, args=(n,)) for n in share]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise SystemExit(f"triggering builds failed: {errors[0]}")


class Sampler:
    """Peak VmRSS of some pids, sampled every 20 ms until stopped."""

    def __init__(self, pids):
        self.peak = {pid: 0 for pid in pids}
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stopped.is_set():
            for pid in self.peak:
                try:
                    self.peak[pid] = max(self.peak[pid], rss_kib(pid))
                except OSError:
                    pass
            time.sleep(0.02)

    def stop(self):
        self.stopped.set()
        self.thread.join()
        return self.peak


def drain(base, store, repo, count, timeout=900):
    """Triggers `count` builds and waits until all ended; (seconds, trigger seconds)."""
    t0 = time.perf_counter()
    trigger_all(base, repo, count)
    triggered = time.perf_counter() - t0
    end = time.time() + timeout
    # The store, not /metrics: on Postgres gantry_builds_finished_total misses builds.
    while store.ended_builds(repo) < count:
        if time.time() > end:
            raise SystemExit(f"{count} builds did not end within {timeout} s")
        time.sleep(0.1)
    return time.perf_counter() - t0, triggered


def quiet(base, repo, count):
    """Builds triggered one at a time, each after the previous ended (idle runners)."""
    for n in range(1, count + 1):
        build = api(base, "POST", f"/api/repos/bench/{repo}/builds", {"branch": "main"})
        path = f"/api/repos/bench/{repo}/builds/{build['number']}"
        while api(base, "GET", path)["status"] not in TERMINAL:
            time.sleep(0.005)


def assign_times(runners):
    """Assignment id -> when a runner printed that its Assign arrived (ms)."""
    seen = {}
    for _, lines in runners:
        for at, text in lines.lines:
            match = ASSIGNED.match(text)
            if match:
                seen.setdefault(int(match.group(1)), at)
    return seen


def latencies(rows, assigned=None):
    """enqueue -> workflow marked running (store), and enqueue -> Assign read (runner)."""
    store = [started - enqueued for _, enqueued, started, _, _, _ in rows if started]
    wire = []
    if assigned is not None:
        wire = [assigned[item] - enqueued for item, enqueued, _, _, _, _ in rows
                if item in assigned]
    return store, wire


def occupancy(rows):
    """Workflow run time (started -> finished) and each runner's idle gap between the end
    of one workflow and the start of its next (ms), from the store."""
    run = [finished - started for _, _, started, finished, _, _ in rows if finished]
    by_runner = {}
    for _, _, started, finished, _, runner in rows:
        by_runner.setdefault(runner, []).append((started, finished))
    gaps = []
    for spans in by_runner.values():
        spans.sort()
        gaps += [b[0] - a[1] for a, b in zip(spans, spans[1:])]
    return run, gaps


def one_round(binary, root, name, database_url, store_of, remote):
    """One server (and its runners): the drain and the quiet latency run."""
    procs = Processes(os.path.join(root, "pids"))
    data = os.path.join(root, f"data-{name}")
    url, _ = make_repo(root, f"repo-{name}", PIPELINE)
    try:
        server, log, base = start_server(procs, binary, data, database_url, remote)
        for repo in ("drain", "quiet"):
            api(base, "POST", "/api/repos", {"owner": "bench", "name": repo, "forge": "generic",
                                             "clone_url": url, "webhook_secret": "x" * 32})
        runners = start_runners(procs, binary, root, base, log) if remote else []
        time.sleep(1.0)
        idle = {"server": rss_kib(server.pid),
                "runners": [rss_kib(p.pid) for p, _ in runners]}
        sampler = Sampler([server.pid] + [p.pid for p, _ in runners])
        store = store_of(data)
        wall, triggered = drain(base, store, "drain", BUILDS)
        peak = sampler.stop()
        hwm = {pid: rss_kib(pid, "VmHWM") for pid in peak}
        quiet(base, "quiet", QUIET_BUILDS)
        assigned = assign_times(runners) if remote else None
        drain_rows, quiet_rows = store.workflows("drain"), store.workflows("quiet")
        return {
            "wall": wall, "triggered": triggered,
            "statuses": sorted({r[4] for r in drain_rows}), "items": len(drain_rows),
            "drain": latencies(drain_rows, assigned), "occupancy": occupancy(drain_rows), "quiet": latencies(quiet_rows, assigned),
            "idle": idle, "server_peak": max(peak[server.pid], hwm[server.pid]),
            "runner_peak": max([max(peak[p.pid], hwm[p.pid]) for p, _ in runners] or [0]),
        }
    finally:
        procs.stop_all()


def describe(values):
    if not values:
        return "-"
    return f"p50 {percentile(values, 0.5):.1f} ms, p99 {percentile(values, 0.99):.1f} ms"


def ratio(a, b):
    return f"{a / b:.2f}x" if b else "-"


def report(db, base, remote):
    mib = 1 / 1024
    print(f"\n{db}: {BUILDS} builds x 5 local steps, triggered by {CLIENTS} API clients")
    for label, r in (("baseline, built-in runner, in-memory channel (capacity 4)", base),
                     (f"remote, {RUNNERS} x gantry runner --capacity 1", remote)):
        print(f"  {label}: {r['wall']:.1f} s = {BUILDS / r['wall']:.1f} builds/s "
              f"(triggers sent in {r['triggered']:.1f} s); builds {', '.join(r['statuses'])}; "
              f"{r['items']} queue items")
    print(f"  builds/s ratio remote/baseline: {ratio(base['wall'], remote['wall'])}")
    print(f"    workflow run time (store): baseline {describe(base['occupancy'][0])}; "
          f"remote {describe(remote['occupancy'][0])}")
    # The built-in runner's 4 slots share one runner id: its gaps are not per slot.
    print(f"    a remote runner's idle gap between two workflows (store): "
          f"{describe(remote['occupancy'][1])}")
    for phase, what in (("drain", f"during the {BUILDS}-build burst"),
                        ("quiet", f"{QUIET_BUILDS} builds one at a time, idle runners")):
        b_store, r_store, r_wire = base[phase][0], remote[phase][0], remote[phase][1]
        print(f"  claim latency {what}:")
        print(f"    enqueue -> workflow running in the store: baseline {describe(b_store)}; "
              f"remote {describe(r_store)}")
        print(f"    enqueue -> Assign read from a runner's output: remote {describe(r_wire)} "
              f"(p50 ratio to the baseline's store figure: "
              f"{ratio(percentile(r_wire, 0.5), percentile(b_store, 0.5))})")
    runners_idle = remote["idle"]["runners"]
    print(f"  server RSS idle / peak: baseline {base['idle']['server'] * mib:.1f} / "
          f"{base['server_peak'] * mib:.1f} MiB; remote {remote['idle']['server'] * mib:.1f} / "
          f"{remote['server_peak'] * mib:.1f} MiB")
    print(f"  runner RSS idle (max of {RUNNERS}): {max(runners_idle) * mib:.1f} MiB "
          f"(target <= 15 MiB); peak: {remote['runner_peak'] * mib:.1f} MiB")


def main():
    binary, root = sys.argv[1], sys.argv[2]
    postgres_url = sys.argv[3] if len(sys.argv) > 3 and sys.argv[3] else None
    psql = sys.argv[4] if len(sys.argv) > 4 else None
    print(f"gantry runners benchmark: {BUILDS} builds, {os.cpu_count()} cores (figures, "
          "not assertions)")
    databases = []
    if os.environ.get("BENCH_SQLITE", "1") != "0":
        databases.append(("sqlite", None, lambda data: Store(os.path.join(data, "gantry.db"))))
    if postgres_url:
        databases.append(("postgres", postgres_url, None))
    for db, url, store_of in databases:
        results = {}
        for mode in ("baseline", "remote"):
            db_url = url
            if url:
                # A fresh database per round, so each server starts empty.
                name = f"bench_{mode}"
                subprocess.run([psql, "-X", "-q", "-d", url, "-c", f"CREATE DATABASE {name}"],
                               check=True, capture_output=True)
                db_url = url.rsplit("/", 1)[0] + "/" + name
                store_of = (lambda u: lambda _data: Store(postgres_url=u, psql=psql))(db_url)
            results[mode] = one_round(binary, root, f"{db}-{mode}", db_url, store_of,
                                      mode == "remote")
        report(db, results["baseline"], results["remote"])


if __name__ == "__main__":
    main()
