#!/usr/bin/env python3
"""The controller at scale: drives `c8s controller` on a real control plane
(scripts/control-plane/up.sh, simulated nodes) and measures it from watch
events and from the API server's and the controller's own /metrics.

Called by scripts/bench-controller.sh, which builds the binaries and starts
and stops the control plane; `report` renders a results file as the
"Controller at scale" section of BENCHMARKS.md (scripts/bench-report.sh).

    bench-controller.py run --server URL --ca F --cert F --key F --c8s BIN --out RESULTS.json [sizes]
    bench-controller.py report RESULTS.json

Standard library only. Times are watch arrival times at this process
(time.monotonic): a pod's ADDED event and its dependency's terminal event
travel the same path (API server, watch cache, this watch), so their
difference is the controller's reaction plus its create request.
"""

import argparse
import http.client
import json
import math
import os
import re
import ssl
import subprocess
import sys
import threading
import time
from urllib.parse import urlparse, quote

GROUP = "c8s.dev"
VERSION = "v1alpha1"
RUNS = f"/apis/{GROUP}/{VERSION}/pipelineruns"
RUN_LABEL = "c8s.dev/run"
STEP_LABEL = "c8s.dev/step"
COMMIT = "0123abcd0123abcd0123abcd0123abcd0123abcd"
TERMINAL_RUN = ("Succeeded", "Failed", "Cancelled")
WRITE_VERBS_CONTROLLER = ("create", "update", "patch", "delete", "deletecollection")
READ_VERBS_CONTROLLER = ("get", "list")
WRITE_VERBS_APISERVER = ("POST", "PUT", "PATCH", "APPLY", "DELETE", "DELETECOLLECTION")


def go_seconds(text):
    """A Go-style duration (`90s`, `1m30s`, `1h`) in seconds."""
    total = 0
    for number, unit in re.findall(r"(\d+)([hms])", text):
        total += int(number) * {"h": 3600, "m": 60, "s": 1}[unit]
    return total


def highest_rss(scenarios):
    """The scenario whose RSS rose highest, and that RSS, as report text."""
    peaks = [(x["controller_rss_mib_max"], n) for n, x in scenarios.items()
             if isinstance(x, dict) and x.get("controller_rss_mib_max") is not None]
    if not peaks:
        return "-"
    mib, name = max(peaks)
    return f"{fmt(mib, ' MiB')} in {name}"


def log(msg):
    print(f"bench-controller: {time.strftime('%H:%M:%S')} {msg}", file=sys.stderr, flush=True)


# --- the API server ---------------------------------------------------------

class Api:
    def __init__(self, server, ca, cert, key):
        url = urlparse(server)
        self.host, self.port = url.hostname, url.port or 443
        self.ctx = ssl.create_default_context(cafile=ca)
        self.ctx.load_cert_chain(cert, key)
        self.local = threading.local()

    def connection(self, timeout=60):
        return http.client.HTTPSConnection(self.host, self.port, context=self.ctx, timeout=timeout)

    def request(self, method, path, body=None, content_type="application/json", raw=False):
        """One request on this thread's keep-alive connection; (status, body)."""
        for attempt in range(3):
            conn = getattr(self.local, "conn", None)
            if conn is None:
                conn = self.local.conn = self.connection()
            try:
                data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
                headers = {"Accept": "application/json"} if not raw else {}
                if data is not None:
                    headers["Content-Type"] = content_type
                conn.request(method, path, body=data, headers=headers)
                resp = conn.getresponse()
                text = resp.read()
                if raw:
                    return resp.status, text.decode()
                try:
                    return resp.status, (json.loads(text) if text else None)
                except ValueError:
                    return resp.status, text.decode(errors="replace")
            except (OSError, http.client.HTTPException):
                self.local.conn = None
                if attempt == 2:
                    raise
                time.sleep(0.2)
        raise AssertionError("unreachable")

    def must(self, method, path, body=None, ok=(200, 201), content_type="application/json"):
        status, answer = self.request(method, path, body, content_type)
        if status not in ok:
            raise RuntimeError(f"{method} {path}: {status} {answer}")
        return answer


class Watcher(threading.Thread):
    """Lists then watches `path` (every namespace), calling on_event(type, obj, t)."""

    def __init__(self, api, path, on_event):
        super().__init__(daemon=True)
        self.api, self.path, self.on_event = api, path, on_event
        self.stop = threading.Event()
        self.synced = threading.Event()
        self.restarts = 0

    def run(self):
        rv = None
        sep = "&" if "?" in self.path else "?"
        while not self.stop.is_set():
            try:
                if rv is None:
                    listed = self.api.must("GET", self.path)
                    now = time.monotonic()
                    rv = listed["metadata"]["resourceVersion"]
                    for obj in listed.get("items", []):
                        self.on_event("LISTED", obj, now)
                    self.synced.set()
                conn = self.api.connection(timeout=None)
                conn.request("GET", f"{self.path}{sep}watch=1&allowWatchBookmarks=true"
                             f"&timeoutSeconds=300&resourceVersion={rv}")
                resp = conn.getresponse()
                if resp.status != 200:
                    resp.read()
                    rv = None
                    continue
                for line in resp:
                    now = time.monotonic()
                    event = json.loads(line)
                    kind, obj = event["type"], event["object"]
                    if kind == "ERROR":
                        rv = None  # 410 Gone: list again
                        break
                    rv = obj["metadata"]["resourceVersion"]
                    if kind != "BOOKMARK":
                        self.on_event(kind, obj, now)
                    if self.stop.is_set():
                        break
                conn.close()
            except (OSError, http.client.HTTPException, ValueError) as e:
                self.restarts += 1
                log(f"watch {self.path}: {e}; again")
                time.sleep(0.5)


# --- what is recorded ----------------------------------------------------------

class Record:
    """Pods and runs as the watches saw them, keyed by (namespace, name)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.pods = {}   # key -> dict(added, done, phase, run, step)
        self.runs = {}   # key -> dict(added, done, phase, queued)

    def pod_event(self, kind, pod, t):
        meta = pod["metadata"]
        key = (meta["namespace"], meta["name"])
        labels = meta.get("labels") or {}
        phase = (pod.get("status") or {}).get("phase")
        with self.lock:
            rec = self.pods.get(key)
            if rec is None:
                owners = [o["name"] for o in meta.get("ownerReferences") or [] if o.get("kind") == "PipelineRun"]
                rec = self.pods[key] = {
                    "added": t if kind != "LISTED" else None,
                    "done": None,
                    "run": owners[0] if owners else labels.get(RUN_LABEL),
                    "step": labels.get(STEP_LABEL),
                    "bench": labels.get("bench"),
                }
            rec["phase"] = phase
            if phase in ("Succeeded", "Failed") and rec["done"] is None:
                rec["done"] = t

    def run_event(self, kind, run, t):
        meta = run["metadata"]
        key = (meta["namespace"], meta["name"])
        status = run.get("status") or {}
        phase = status.get("phase")
        with self.lock:
            rec = self.runs.get(key)
            if rec is None:
                rec = self.runs[key] = {"added": t if kind != "LISTED" else None, "done": None, "queued": False}
            rec["phase"] = phase
            if any(c.get("type") == "Queued" and c.get("status") == "True" for c in status.get("conditions") or []):
                rec["queued"] = True
            if phase in TERMINAL_RUN and rec["done"] is None:
                rec["done"] = t


# --- metrics -------------------------------------------------------------------

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)')
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text, name):
    out = []
    for line in text.splitlines():
        if not line.startswith(name):
            continue
        m = SAMPLE.match(line)
        if not m or m.group(1) != name:
            continue
        labels = dict(LABEL.findall(m.group(2) or ""))
        out.append((labels, float(m.group(3))))
    return out


def controller_metrics(port):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    conn.close()
    return text


def controller_requests(port):
    by_verb = {}
    for labels, value in parse_metrics(controller_metrics(port), "c8s_kube_api_requests_total"):
        by_verb[labels["verb"]] = by_verb.get(labels["verb"], 0) + value
    return by_verb


def apiserver_requests(api):
    status, text = api.request("GET", "/metrics", raw=True)
    if status != 200:
        raise RuntimeError(f"GET /metrics: {status}")
    by = {}
    for labels, value in parse_metrics(text, "apiserver_request_total"):
        resource = labels.get("resource", "")
        if labels.get("subresource"):
            resource += "/" + labels["subresource"]
        key = (labels.get("verb", ""), resource)
        by[key] = by.get(key, 0) + value
    return by


def diff(after, before):
    return {k: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0)}


def rss_mib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def percentile(values, p):
    if not values:
        return None
    values = sorted(values)
    k = max(0, min(len(values) - 1, math.ceil(p / 100 * len(values)) - 1))
    return values[k]


def ms(seconds):
    return None if seconds is None else round(seconds * 1000, 1)


# --- the cluster objects the bench makes -----------------------------------------

def one_step_pipeline():
    return {"name": "bench-one", "repository": "https://example.com/bench.git",
            "steps": [{"name": "only", "image": "busybox:1.37", "commands": ["true"], "timeout": "10m"}]}


FIVE_STEPS = {"build": [], "test-a": ["build"], "test-b": ["build"], "test-c": ["build"],
              "publish": ["test-a", "test-b", "test-c"]}


def five_step_pipeline():
    steps = []
    for name, deps in FIVE_STEPS.items():
        step = {"name": name, "image": "busybox:1.37", "commands": ["true"], "timeout": "10m"}
        if deps:
            step["dependsOn"] = deps
        steps.append(step)
    return {"name": "bench-five", "repository": "https://example.com/bench.git", "steps": steps}


def make_namespace(api, name, run_seconds):
    status, answer = api.request("POST", "/api/v1/namespaces",
                                 {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    if status not in (201, 409):
        raise RuntimeError(f"namespace {name}: {status} {answer}")
    script = f"containers:\n  - runSeconds: {run_seconds}\n"
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c8s-node-sim"},
          "data": {"script.yaml": script}}
    status, answer = api.request("POST", f"/api/v1/namespaces/{name}/configmaps", cm)
    if status == 409:
        api.must("PUT", f"/api/v1/namespaces/{name}/configmaps/c8s-node-sim", cm)
    elif status != 201:
        raise RuntimeError(f"configmap {name}: {status} {answer}")


def wait_service_accounts(api, namespaces, timeout=120):
    deadline = time.monotonic() + timeout
    for ns in namespaces:
        while True:
            status, _ = api.request("GET", f"/api/v1/namespaces/{ns}/serviceaccounts/default")
            if status == 200:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"no default ServiceAccount in {ns}")
            time.sleep(0.2)


def run_object(name, pipeline):
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "PipelineRun", "metadata": {"name": name},
            "spec": {"pipeline": pipeline, "branch": "main", "commit": COMMIT, "build": 1}}


def create_all(api, items, threads=4):
    """Creates (path, body) items from `threads` threads; returns the seconds it took."""
    start = time.monotonic()
    lock = threading.Lock()
    it = iter(items)
    errors = []

    def worker():
        while True:
            with lock:
                nxt = next(it, None)
            if nxt is None:
                return
            path, body = nxt
            status, answer = api.request("POST", path, body)
            if status not in (201, 409):
                errors.append(f"{path}: {status} {answer}")

    ts = [threading.Thread(target=worker) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if errors:
        raise RuntimeError(f"{len(errors)} creates failed, first: {errors[0]}")
    return time.monotonic() - start


# --- the bench -----------------------------------------------------------------

class Bench:
    def __init__(self, args):
        self.args = args
        self.api = Api(args.server, args.ca, args.cert, args.key)
        self.record = Record()
        self.controller = None
        self.samples = []  # (t, scenario, rss, queued, active)
        self.scenario = None
        self.results = {"sizes": {}, "machine": {}, "scenarios": {}}

    # -- watches and sampling
    def start_pod_watch(self):
        self.pod_watch = Watcher(self.api, "/api/v1/pods", self.record.pod_event)
        self.pod_watch.start()
        self.pod_watch.synced.wait(60)

    def start_run_watch(self):
        self.run_watch = Watcher(self.api, RUNS, self.record.run_event)
        self.run_watch.start()
        self.run_watch.synced.wait(60)

    def sampler(self):
        while True:
            time.sleep(self.args.sample_seconds)
            if self.controller is None or self.scenario is None:
                continue
            rss = rss_mib(self.controller.pid)
            queued = None
            try:
                for labels, value in parse_metrics(controller_metrics(self.args.metrics_port), "c8s_pipelineruns_queued"):
                    queued = value
            except OSError:
                pass
            with self.record.lock:
                active = sum(1 for r in self.record.runs.values() if r["done"] is None)
            self.samples.append((time.monotonic(), self.scenario, rss, queued, active))

    # -- the controller
    def start_controller(self):
        log_path = os.path.join(self.args.state, "controller.log")
        env = dict(os.environ, RUST_LOG=os.environ.get("C8S_BENCH_RUST_LOG", "warn"),
                   KUBECONFIG=self.args.kubeconfig)
        cmd = [self.args.c8s, "controller", "--install-crds", "--lease-namespace", "default",
               "--identity", "bench", "--metrics-address", f"127.0.0.1:{self.args.metrics_port}",
               "--kube-qps", str(self.args.kube_qps), "--kube-burst", str(self.args.kube_burst),
               "--max-running-per-namespace", str(self.args.max_running)]
        if self.args.finished_run_ttl:
            cmd += ["--finished-run-ttl", self.args.finished_run_ttl]
        self.controller = subprocess.Popen(cmd, env=env, stdout=open(log_path, "w"), stderr=subprocess.STDOUT)
        with open(os.path.join(self.args.state, "bench-controller.pid"), "w") as f:
            f.write(str(self.controller.pid))
        log(f"controller pid {self.controller.pid}: {' '.join(cmd[1:])}")
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.controller.poll() is not None:
                raise RuntimeError(f"controller exited; see {log_path}")
            status, _ = self.api.request("GET", RUNS + "?limit=1")
            lease_ok = False
            try:
                lease_ok = re.search(r"^c8s_pipelineruns_queued \d", controller_metrics(self.args.metrics_port),
                                     re.M) is not None
            except OSError:
                pass
            if status == 200 and lease_ok:
                return
            time.sleep(0.5)
        raise RuntimeError("the controller did not take the lease and fill its caches in 120 s")

    def stop_controller(self):
        if self.controller and self.controller.poll() is None:
            self.controller.terminate()
            try:
                self.controller.wait(30)
            except subprocess.TimeoutExpired:
                self.controller.kill()

    # -- scenario scaffolding
    def begin(self, name):
        self.scenario = name
        log(f"{name}: load {loadavg()}")
        snap = {"t": time.monotonic(), "load": loadavg(), "api": apiserver_requests(self.api)}
        if self.controller:
            snap["ctl"] = controller_requests(self.args.metrics_port)
        return snap

    def end(self, name, snap, steps_created):
        t = time.monotonic()
        api = diff(apiserver_requests(self.api), snap["api"])
        out = {"load_before": snap["load"], "load_after": loadavg(), "seconds": round(t - snap["t"], 1),
               "step_pods": steps_created}
        writes = {k: v for k, v in api.items() if k[0] in WRITE_VERBS_APISERVER}
        total_writes = sum(writes.values())
        background = self.background_writes_per_s * (t - snap["t"])
        out["apiserver_writes"] = total_writes
        out["apiserver_background_writes"] = round(background)
        out["apiserver_writes_by"] = {f"{v} {r}": n for (v, r), n in sorted(writes.items(), key=lambda kv: -kv[1])}
        if steps_created:
            out["apiserver_writes_per_step"] = round(total_writes / steps_created, 2)
            out["apiserver_writes_per_step_less_background"] = round((total_writes - background) / steps_created, 2)
        if "ctl" in snap:
            ctl = diff(controller_requests(self.args.metrics_port), snap["ctl"])
            out["controller_requests"] = ctl
            w = sum(ctl.get(v, 0) for v in WRITE_VERBS_CONTROLLER)
            r = sum(ctl.get(v, 0) for v in READ_VERBS_CONTROLLER)
            out["controller_writes"], out["controller_reads"] = w, r
            # Deletes: the --finished-run-ttl's, one per run (the controller deletes no pod here).
            out["controller_deletes"] = ctl.get("delete", 0)
            if steps_created:
                out["controller_writes_per_step"] = round(w / steps_created, 2)
                out["controller_reads_per_step"] = round(r / steps_created, 3)
            out["controller_rss_mib_end"] = rss_mib(self.controller.pid)
        rss = [s[2] for s in self.samples if s[1] == name and s[2] is not None]
        if rss:
            out["controller_rss_mib_max"] = round(max(rss), 1)
        queued = [s[3] for s in self.samples if s[1] == name and s[3] is not None]
        if queued:
            out["queued_max"] = max(queued)
        self.results["scenarios"][name] = out
        log(f"{name}: done in {out['seconds']} s, load {out['load_after']}")
        self.save()
        self.scenario = None
        return out

    def save(self):
        with open(self.args.out, "w") as f:
            json.dump(self.results, f, indent=1, sort_keys=True)

    def wait_runs_done(self, keys, timeout):
        deadline = time.monotonic() + timeout
        keys = list(keys)
        while time.monotonic() < deadline:
            with self.record.lock:
                left = sum(1 for k in keys if (self.record.runs.get(k) or {}).get("done") is None)
            if left == 0:
                return 0
            time.sleep(0.5)
        return left

    def namespaces(self, prefix, count, run_seconds):
        names = [f"{prefix}-{i}" for i in range(count)]
        for n in names:
            make_namespace(self.api, n, run_seconds)
        wait_service_accounts(self.api, names)
        return names

    def first_pods(self, run_keys):
        """Each run of `run_keys` as the watch saw it, and its first pod of each
        step (the one with the earliest ADDED)."""
        per_run_pods = {}
        with self.record.lock:
            pods = [(k, dict(v)) for k, v in self.record.pods.items()]
            runs = {k: dict(v) for k, v in self.record.runs.items()}
        wanted = set(run_keys)
        for (ns, _), pod in pods:
            if (ns, pod["run"]) in wanted and pod["step"] and pod["added"] is not None:
                steps = per_run_pods.setdefault((ns, pod["run"]), {})
                old = steps.get(pod["step"])
                if old is None or pod["added"] < old["added"]:
                    steps[pod["step"]] = pod
        return runs, per_run_pods

    def delays(self, run_keys):
        """Per step pod: the time from what it waited for (the run's ADDED for
        a first step, else the last dependency's terminal event) to its ADDED."""
        first, after_deps = [], []
        runs, per_run_pods = self.first_pods(run_keys)
        for key, steps in per_run_pods.items():
            run = runs.get(key)
            for step, pod in steps.items():
                deps = FIVE_STEPS.get(step, [])
                if not deps:
                    if run and run["added"] is not None:
                        first.append(pod["added"] - run["added"])
                    continue
                done = [steps[d]["done"] for d in deps if d in steps]
                if len(done) == len(deps) and all(d is not None for d in done):
                    after_deps.append(pod["added"] - max(done))
        return first, after_deps, sum(len(s) for s in per_run_pods.values())

    @staticmethod
    def summary(values):
        return {"count": len(values), "p50_ms": ms(percentile(values, 50)), "p99_ms": ms(percentile(values, 99)),
                "max_ms": ms(max(values)) if values else None}

    # -- the background, with nothing running
    def measure_background(self):
        before = apiserver_requests(self.api)
        t0 = time.monotonic()
        time.sleep(self.args.background_seconds)
        writes = diff(apiserver_requests(self.api), before)
        n = sum(v for k, v in writes.items() if k[0] in WRITE_VERBS_APISERVER)
        self.background_writes_per_s = n / (time.monotonic() - t0)
        self.results["background_apiserver_writes_per_s"] = round(self.background_writes_per_s, 2)
        log(f"background: {self.background_writes_per_s:.2f} API server writes/s (node leases, status)")

    # -- scenarios
    def ceiling(self):
        n = self.args.ceiling_pods
        ns = self.namespaces("bench-ceiling", 1, self.args.run_seconds)[0]
        snap = self.begin("ceiling")
        pod = lambda i: (f"/api/v1/namespaces/{ns}/pods", {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"p-{i}", "labels": {"bench": "ceiling"}},
            "spec": {"restartPolicy": "Never", "automountServiceAccountToken": False,
                     "containers": [{"name": "main", "image": "busybox:1.37", "command": ["true"]}]}})
        t0 = time.monotonic()
        create_s = create_all(self.api, (pod(i) for i in range(n)), threads=self.args.driver_threads)
        keys = [(ns, f"p-{i}") for i in range(n)]
        deadline = time.monotonic() + 1800
        while time.monotonic() < deadline:
            with self.record.lock:
                done = [self.record.pods[k]["done"] for k in keys if k in self.record.pods]
            if len(done) == n and all(d is not None for d in done):
                break
            time.sleep(0.5)
        with self.record.lock:
            done = sorted(self.record.pods[k]["done"] for k in keys if self.record.pods.get(k, {}).get("done"))
        out = self.end("ceiling", snap, n)
        out.update({"pods": n, "finished": len(done), "create_seconds": round(create_s, 1),
                    "pods_per_s_created": round(n / create_s, 1)})
        if done:
            span = done[-1] - t0
            out["pods_per_s"] = round(len(done) / span, 1)
            # The steady middle: from the 10th to the 90th percentile completion.
            lo, hi = done[len(done) // 10], done[(len(done) * 9) // 10]
            if hi > lo:
                out["pods_per_s_middle"] = round((len(done) * 0.8) / (hi - lo), 1)
        self.save()
        log(f"ceiling: {out.get('pods_per_s')} pods/s end to end ({out.get('pods_per_s_middle')} in the middle)")

    def dag(self):
        n = self.args.dag_runs
        nss = self.namespaces("bench-dag", max(1, math.ceil(n / self.args.max_running)), self.args.dag_run_seconds)
        snap = self.begin("dag")
        names = [(nss[i % len(nss)], f"five-{i}") for i in range(n)]
        t0 = time.monotonic()
        pipeline = five_step_pipeline()
        create_s = create_all(self.api, ((f"{RUNS.replace('/pipelineruns', '')}/namespaces/{ns}/pipelineruns",
                                          run_object(name, pipeline)) for ns, name in names),
                              threads=self.args.driver_threads)
        log(f"dag: {n} runs created in {create_s:.1f} s")
        # RSS when the most runs are active (seen, not ended), sampled until every run ended.
        rss_all_active, most_active, left = None, 0, n
        deadline = t0 + self.args.timeout
        while time.monotonic() < deadline:
            with self.record.lock:
                seen = [self.record.runs.get(k) for k in names]
            active = sum(1 for r in seen if r and r["done"] is None)
            left = sum(1 for r in seen if not r or r["done"] is None)
            rss = rss_mib(self.controller.pid)
            if active >= most_active and rss is not None:
                most_active, rss_all_active = active, rss
            if left == 0:
                break
            time.sleep(0.5)
        first, after, pods = self.delays(names)
        with self.record.lock:
            dones = sorted(self.record.runs[k]["done"] for k in names if self.record.runs.get(k, {}).get("done"))
            failed = sum(1 for k in names if self.record.runs.get(k, {}).get("phase") != "Succeeded")
        out = self.end("dag", snap, pods)
        out.update({"runs": n, "namespaces": len(nss), "unfinished": left, "not_succeeded": failed,
                    "create_seconds": round(create_s, 1), "step_run_seconds": self.args.dag_run_seconds,
                    "rss_mib_all_active": round(rss_all_active, 1) if rss_all_active else None,
                    "most_active": most_active,
                    "first_step_delay": self.summary(first), "delay_after_dependencies": self.summary(after)})
        if dones:
            span = dones[-1] - t0
            out["runs_per_min"] = round(len(dones) / span * 60, 1)
            out["step_pods_per_s"] = round(pods / span, 1)
        self.save()
        log(f"dag: {out.get('runs_per_min')} runs/min, delay after deps {out['delay_after_dependencies']}")

    def queued(self):
        m = self.args.queued_runs
        nss = self.namespaces("bench-queue", self.args.queue_namespaces, self.args.run_seconds)
        snap = self.begin("queued")
        names = [(nss[i % len(nss)], f"q-{i}") for i in range(m)]
        pipeline = one_step_pipeline()
        t0 = time.monotonic()
        create_s = create_all(self.api, ((f"/apis/{GROUP}/{VERSION}/namespaces/{ns}/pipelineruns",
                                          run_object(name, pipeline)) for ns, name in names),
                              threads=self.args.driver_threads)
        log(f"queued: {m} runs created in {create_s:.1f} s")
        # Fairness across namespaces: runs of a namespace with room, created
        # one a second while the queued ones are worked off.
        others = self.namespaces("bench-bystander", 1, self.args.run_seconds)
        bystanders = [(others[0], f"b-{i}") for i in range(self.args.bystander_runs)]
        bystander_t = threading.Thread(
            target=self.arrive, args=(bystanders, pipeline, 1.0, "queued bystanders"))
        bystander_t.start()
        left = self.wait_runs_done(names, self.args.timeout)
        bystander_t.join()
        self.wait_runs_done(bystanders, self.args.timeout)
        with self.record.lock:
            dones = sorted(self.record.runs[k]["done"] for k in names if self.record.runs.get(k, {}).get("done"))
            was_queued = sum(1 for k in names if self.record.runs.get(k, {}).get("queued"))
            failed = sum(1 for k in names if self.record.runs.get(k, {}).get("phase") != "Succeeded")
        first, _, pods = self.delays(names)
        bystander_first, _, bystander_pods = self.delays(bystanders)
        # Each bystander's delay in the order they were created (one a second
        # from t0 + create_seconds), to see when in the drain any waited.
        runs, by_run = self.first_pods(bystanders)
        bystander_each = [
            {"created_s": round(runs[k]["added"] - t0, 1),
             "delay_ms": ms(min(p["added"] for p in by_run[k].values()) - runs[k]["added"])}
            for k in bystanders if (runs.get(k) or {}).get("added") is not None and k in by_run]
        out = self.end("queued", snap, pods + bystander_pods)
        out.update({"runs": m, "namespaces": len(nss), "unfinished": left, "not_succeeded": failed,
                    "seen_queued": was_queued, "create_seconds": round(create_s, 1),
                    "first_step_delay": self.summary(first),
                    "bystander_runs": len(bystanders),
                    "bystander_first_step_delay": self.summary(bystander_first),
                    "bystander_each": bystander_each})
        if bystanders:
            log(f"queued: a run in a namespace with room, created during the drain -> its pod: "
                f"{out['bystander_first_step_delay']}")
        if dones:
            out["drain_seconds"] = round(dones[-1] - t0, 1)
            out["runs_per_min"] = round(len(dones) / (dones[-1] - t0) * 60, 1)
        self.save()
        log(f"queued: drained {len(dones)}/{m} in {out.get('drain_seconds')} s")

    def arrive(self, names, pipeline, rate, label):
        """Creates a run of `pipeline` for each (namespace, name) of `names`, `rate` per
        second, from the driver's threads; returns the start and how late the driver fell at most."""
        total = len(names)
        t0 = time.monotonic()
        lock = threading.Lock()
        nxt = [0]
        late = [0.0]

        def worker():
            while True:
                with lock:
                    i = nxt[0]
                    nxt[0] += 1
                if i >= total:
                    return
                due = t0 + i / rate
                wait = due - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                else:
                    with lock:
                        late[0] = max(late[0], -wait)
                ns, name = names[i]
                status, answer = self.api.request(
                    "POST", f"/apis/{GROUP}/{VERSION}/namespaces/{ns}/pipelineruns", run_object(name, pipeline))
                if status != 201:
                    log(f"{label}: create {name}: {status} {answer}")

        ts = [threading.Thread(target=worker) for _ in range(self.args.driver_threads)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        return t0, late[0]

    def steady(self):
        """(d) five-step runs arriving at a fixed rate: the delay of a step's pod
        after its last dependency when the controller is not working off a burst."""
        rate, duration = self.args.steady_rate, self.args.steady_duration
        nss = self.namespaces("bench-steady", self.args.rate_namespaces, self.args.dag_run_seconds)
        snap = self.begin("steady")
        total = int(rate * duration)
        names = [(nss[i % len(nss)], f"s-{i}") for i in range(total)]
        t0, late = self.arrive(names, five_step_pipeline(), rate, "steady")
        t_arrived = time.monotonic()
        left = self.wait_runs_done(names, self.args.timeout)
        with self.record.lock:
            runs = [dict(self.record.runs[k]) for k in names if k in self.record.runs]
        first, after, pods = self.delays(names)
        out = self.end("steady", snap, pods)
        out.update({"rate_per_s": rate, "duration_s": duration, "runs": total, "unfinished": left,
                    "not_succeeded": sum(1 for r in runs if r.get("phase") != "Succeeded"),
                    "arrival_seconds": round(t_arrived - t0, 1), "driver_late_max_s": round(late, 2),
                    "step_run_seconds": self.args.dag_run_seconds,
                    "step_pods_per_s_offered": round(rate * len(FIVE_STEPS), 1),
                    "first_step_delay": self.summary(first), "delay_after_dependencies": self.summary(after)})
        self.save()
        log(f"steady: delay after deps {out['delay_after_dependencies']}")

    def arrival(self):
        rate, duration = self.args.rate, self.args.duration
        nss = self.namespaces("bench-rate", self.args.rate_namespaces, self.args.run_seconds)
        snap = self.begin("arrival")
        pipeline = one_step_pipeline()
        total = int(rate * duration)
        names = [(nss[i % len(nss)], f"a-{i}") for i in range(total)]
        t0, late = self.arrive(names, pipeline, rate, "arrival")
        t_arrived = time.monotonic()
        # Finished in the arrival window, and in flight along it.
        left = self.wait_runs_done(names, self.args.timeout)
        with self.record.lock:
            runs = [dict(self.record.runs[k]) for k in names if k in self.record.runs]
        in_flight = []
        step = max(1.0, duration / 20)
        t = t0 + step
        while t <= t_arrived + 1e-6:
            in_flight.append(sum(1 for r in runs if r["added"] is not None and r["added"] <= t
                                 and (r["done"] is None or r["done"] > t)))
            t += step
        finished_in_window = sum(1 for r in runs if r["done"] is not None and r["done"] <= t_arrived)
        dones = sorted(r["done"] for r in runs if r["done"] is not None)
        first, _, pods = self.delays(names)
        out = self.end("arrival", snap, pods)
        q = max(1, len(in_flight) // 4)
        second, last = in_flight[q:2 * q], in_flight[-q:]
        growing = bool(second and last and (sum(last) / len(last)) > 1.25 * (sum(second) / len(second)) + 10)
        out.update({"rate_per_s": rate, "duration_s": duration, "runs": total, "unfinished": left,
                    "not_succeeded": sum(1 for r in runs if r.get("phase") != "Succeeded"),
                    "arrival_seconds": round(t_arrived - t0, 1), "driver_late_max_s": round(late, 2),
                    "finished_in_window": finished_in_window,
                    "runs_per_min_in_window": round(finished_in_window / (t_arrived - t0) * 60, 1),
                    "in_flight_series": in_flight, "queue_growing": growing,
                    "tail_seconds": round(dones[-1] - t_arrived, 1) if dones else None,
                    "first_step_delay": self.summary(first)})
        self.save()
        log(f"arrival: {out['runs_per_min_in_window']} runs/min in the window, in flight {in_flight}")

    def main(self):
        a = self.args
        self.results["sizes"] = {k: getattr(a, k) for k in (
            "ceiling_pods", "dag_runs", "queued_runs", "queue_namespaces", "rate", "duration", "rate_namespaces",
            "run_seconds", "dag_run_seconds", "kube_qps", "kube_burst", "max_running", "nodes",
            "steady_rate", "steady_duration", "finished_run_ttl")}
        self.results["machine"] = {"cpus": os.cpu_count(), "load_start": loadavg(),
                                   "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
        threading.Thread(target=self.sampler, daemon=True).start()
        self.start_pod_watch()
        self.measure_background()
        if "ceiling" in a.scenarios:
            self.ceiling()
        self.start_controller()
        self.start_run_watch()
        self.results["controller_rss_mib_idle"] = rss_mib(self.controller.pid)
        try:
            for name in a.scenarios:
                if name != "ceiling":
                    getattr(self, name)()
            finished = sum(1 for r in self.record.runs.values() if r["done"] is not None)
            time.sleep(a.sample_seconds * 2)
            if a.finished_run_ttl:
                # The last runs' TTL, and the deletes after it, before the final RSS.
                time.sleep(go_seconds(a.finished_run_ttl) + 20)
            self.results["controller_rss_mib_final"] = rss_mib(self.controller.pid)
            self.results["runs_finished_total"] = finished
            self.results["watch_restarts"] = self.pod_watch.restarts + self.run_watch.restarts
            self.results["machine"]["load_end"] = loadavg()
            self.save()
        finally:
            self.stop_controller()


# --- the report ------------------------------------------------------------------

def fmt(v, unit=""):
    if v is None:
        return "-"
    if isinstance(v, float):
        v = round(v, 1)
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    return f"{v}{unit}"


def verdict(ok):
    return "met" if ok else "**not met**"


def report(path):
    with open(path) as f:
        r = json.load(f)
    s, sc = r["sizes"], r["scenarios"]
    ceil = sc.get("ceiling", {})
    ceiling = ceil.get("pods_per_s_middle") or ceil.get("pods_per_s")
    dag, queued, arrival = sc.get("dag", {}), sc.get("queued", {}), sc.get("arrival", {})
    lines = []
    p = lines.append
    p("## Controller at scale")
    p("")
    p("Generated by `scripts/bench-report.sh` from `benches/controller-results.json`, which")
    p("`scripts/bench-controller.sh` writes: the release `c8s controller` against a real")
    p("kube-apiserver, etcd, kube-controller-manager and kube-scheduler with")
    p(f"{s['nodes']} nodes simulated by `c8s-node-sim`, all on this machine "
      f"({r['machine']['cpus']} cores, not reserved: the load average before and after each scenario is in "
      f"its row; run {r['machine']['date']}).")
    p("Times come from watch events (a pod's ADDED against its last dependency's")
    p("terminal event, as this driver's watch received both), request counts from")
    p("the controller's `c8s_kube_api_requests_total` and the API server's")
    p("`apiserver_request_total`, memory from the controller's VmRSS.")
    p("")
    full = (s['duration'] >= 600 and s['dag_runs'] >= 1000 and s['queued_runs'] >= 5000)
    p(f"Sizes of this run ({'the issue' + chr(39) + 's' if full else 'smaller than the issue' + chr(39) + 's'}): "
      f"ceiling {s['ceiling_pods']} pods; (a) "
      f"{s['rate']} one-step runs/s for {s['duration']} s over {s['rate_namespaces']} namespaces; "
      f"(b) {s['dag_runs']} five-step runs (build, three tests, publish; steps of "
      f"{s['dag_run_seconds']} s) created at once; (c) {s['queued_runs']} one-step runs in "
      f"{s['queue_namespaces']} namespaces queued by `--max-running-per-namespace "
      f"{s['max_running']}`; "
      + (f"(d) {s['steady_rate']} five-step runs/s for {s['steady_duration']} s (steps of {s['dag_run_seconds']} s). "
         if s.get('steady_rate') and 'steady' in sc else "")
      + f"Steps of (a), (c) and the ceiling run {s['run_seconds']} s. Controller "
      f"`--kube-qps {s['kube_qps']} --kube-burst {s['kube_burst']}`.")
    p("")
    p("### Bare ceiling (no controller)")
    p("")
    p(f"{fmt(ceil.get('pods'))} one-container pods created directly ({fmt(ceil.get('pods_per_s_created'))} creates/s "
      f"from the driver), each run to Succeeded by the simulated nodes: "
      f"**{fmt(ceiling)} pods/s** between the 10th and 90th percentile completion "
      f"({fmt(ceil.get('pods_per_s'))} pods/s first create to last completion); "
      f"{fmt(ceil.get('apiserver_writes_per_step'))} API server writes per pod from all clients "
      f"({fmt(ceil.get('apiserver_writes_per_step_less_background'))} less the background of node leases and "
      f"status, {fmt(r.get('background_apiserver_writes_per_s'))}/s). Load {ceil.get('load_before')} → "
      f"{ceil.get('load_after')}.")
    p("")
    p("### Goals")
    p("")
    p("| goal | figure | ceiling | met |")
    p("|---|---|---|---|")
    steady = sc.get("steady", {})
    sd = steady.get("delay_after_dependencies", {})
    if sd.get("count"):
        offered = steady.get("step_pods_per_s_offered")
        p(f"| pod created after its dependencies at 10 step pods/s: p50 ≤ 100 ms | p50 {fmt(sd['p50_ms'], ' ms')} "
          f"({sd['count']} pods, (d): {fmt(steady['rate_per_s'])} five-step runs/s for {steady['duration_s']} s, "
          f"{fmt(offered)} step pods/s) | {fmt(ceiling)} pods/s | {verdict(sd['p50_ms'] <= 100)} |")
        p(f"| … p99 ≤ 1 s | p99 {fmt(sd['p99_ms'], ' ms')} (max {fmt(sd['max_ms'], ' ms')}) | - | "
          f"{verdict(sd['p99_ms'] <= 1000)} |")
    d = dag.get("delay_after_dependencies", {})
    rate_pods = dag.get("step_pods_per_s")
    if d.get("count"):
        label = "in the burst of (b), not the goal's steady rate" if sd.get("count") else "p50 ≤ 100 ms"
        p(f"| pod created after its dependencies: {label} | p50 {fmt(d['p50_ms'], ' ms')} "
          f"({d['count']} pods, (b), {fmt(rate_pods)} step pods/s) | - | "
          f"{'-' if sd.get('count') else verdict(d['p50_ms'] <= 100)} |")
        p(f"| … p99 | p99 {fmt(d['p99_ms'], ' ms')} (max {fmt(d['max_ms'], ' ms')}) | - | "
          f"{'-' if sd.get('count') else verdict(d['p99_ms'] <= 1000)} |")
        if rate_pods is not None and rate_pods < 10 and not sd.get("count"):
            p(f"| … at 10 step pods/s | (b) ran at {fmt(rate_pods)} step pods/s | {fmt(ceiling)} pods/s | "
              f"{verdict(False)} (rate not reached) |")
    if arrival:
        rpm = arrival.get("runs_per_min_in_window")
        # Kept pace: the offered rate is at least the goal's, the runs in
        # flight did not grow, and every run ended soon after the last arrival.
        goal_ok = (arrival["rate_per_s"] * 60 >= 600 and not arrival.get("queue_growing")
                   and not arrival.get("unfinished") and (arrival.get("tail_seconds") or 1e9) < 30)
        short = arrival["duration_s"] < 600
        frac = f"{rpm / (ceiling * 60):.0%} of it" if ceiling and rpm else "-"
        p(f"| ≥ 600 one-step runs/min for 10 min, queue not growing | {fmt(arrival['rate_per_s'] * 60)} runs/min "
          f"offered for {arrival['duration_s']} s; {fmt(arrival.get('finished_in_window'))} of {arrival['runs']} "
          f"ended within the window ({fmt(rpm)}/min), the last {fmt(arrival.get('tail_seconds'))} s after the "
          f"last arrival; in flight {'growing' if arrival.get('queue_growing') else 'flat'} "
          f"({', '.join(str(x) for x in arrival.get('in_flight_series', [])[::max(1, len(arrival.get('in_flight_series', [])) // 6)])}) | "
          f"{fmt(ceiling * 60 if ceiling else None)} pods/min ({frac}) | {verdict(goal_ok)}"
          f"{' (over ' + str(arrival['duration_s']) + ' s, not 10 min)' if short else ''} |")
    if dag.get("runs_per_min") is not None:
        p(f"| ≥ 120 five-step runs/min | {fmt(dag['runs_per_min'])} runs/min ({dag['runs']} runs, "
          f"{fmt(dag.get('step_pods_per_s'))} step pods/s) | {fmt(round(ceiling * 60 / 5, 1) if ceiling else None)} "
          f"five-pod runs/min | {verdict(dag['runs_per_min'] >= 120)} |")
    if queued.get("drain_seconds") is not None:
        scaled = queued["drain_seconds"] * 5000 / queued["runs"]
        p(f"| 5,000 queued one-step runs drained in ≤ 8 min (stretch 6) | {queued['runs']} in "
          f"{fmt(queued['drain_seconds'])} s ({fmt(queued.get('runs_per_min'))} runs/min; 5,000 at that pace: "
          f"{scaled / 60:.1f} min) | {fmt(round(5000 / ceiling / 60, 1) if ceiling else None)} min for 5,000 pods | "
          f"{verdict(scaled <= 480)}{' (scaled)' if queued['runs'] != 5000 else ''} |")
    by = queued.get("bystander_first_step_delay") or {}
    if by.get("count"):
        p(f"| fairness across namespaces: a run of a namespace with room, created during (c)'s drain → its pod "
          f"(not a stated goal) | p50 {fmt(by.get('p50_ms'), ' ms')}, p99 {fmt(by.get('p99_ms'), ' ms')}, "
          f"max {fmt(by.get('max_ms'), ' ms')} "
          f"({by['count']} runs, one a second) | - | - |")
    for name, label in (("dag", "(b)"), ("queued", "(c)"), ("arrival", "(a)"), ("steady", "(d)")):
        x = sc.get(name)
        if not x or "controller_writes_per_step" not in x:
            continue
        deletes = x.get("controller_deletes") or 0
        ttl_note = (f"; {fmt(deletes)} of them the TTL's deletes: "
                    f"{(x['controller_writes'] - deletes) / x['step_pods']:.2f} per step without" if deletes else "")
        p(f"| ≤ 4 controller writes per step, {label} | {x['controller_writes_per_step']:.2f} "
          f"({fmt(x['controller_writes'])} writes, {fmt(x['step_pods'])} step pods{ttl_note}) | - | "
          f"{verdict(x['controller_writes_per_step'] <= 4)} |")
        p(f"| no controller reads in steady state, {label} | {fmt(x['controller_reads'])} GET/LIST "
          f"({fmt(x['controller_reads_per_step'])} per step) | - | {verdict(x['controller_reads'] == 0)} |")
        p(f"| ≤ 15 API server writes per step (all clients), {label} | {fmt(x.get('apiserver_writes_per_step'))} "
          f"({fmt(x.get('apiserver_writes_per_step_less_background'))} less background) | "
          f"{fmt(ceil.get('apiserver_writes_per_step_less_background'))} for a bare pod | "
          f"{verdict((x.get('apiserver_writes_per_step') or 99) <= 15)} |")
    if dag.get("rss_mib_all_active") is not None:
        p(f"| controller RSS ≤ 128 MiB with 1,000 active five-step runs | {fmt(dag['rss_mib_all_active'], ' MiB')} "
          f"with {fmt(dag.get('most_active'))} runs active at once (max {fmt(dag.get('controller_rss_mib_max'), ' MiB')} "
          f"during (b)) | - | {verdict(dag['rss_mib_all_active'] <= 128)}"
          f"{' (at ' + str(dag.get('most_active')) + ')' if dag.get('most_active') != 1000 else ''} |")
        final = r.get("controller_rss_mib_final")
        if final is not None:
            ok = final <= dag["rss_mib_all_active"] * 1.1
            ttl = s.get("finished_run_ttl")
            kept = (f", each deleted {ttl} after it finished (--finished-run-ttl)" if ttl
                    else ", all kept in the cluster")
            p(f"| RSS within 10% after 10,000 finished runs | {fmt(round(final, 1), ' MiB')} after "
              f"{r.get('runs_finished_total')} finished{kept} | - | {verdict(ok)}"
              f"{' (at ' + str(r.get('runs_finished_total')) + ')' if r.get('runs_finished_total') != 10000 else ''} |")
    p("")
    p("### Per scenario")
    p("")
    p("| scenario | seconds | step pods | controller writes / reads | API server writes (less background) | "
      "run created → first pod p50 / p99 (queued: includes the wait) | RSS max | queued max | load before → after |")
    p("|---|---|---|---|---|---|---|---|---|")
    for name in ("ceiling", "dag", "queued", "arrival", "steady"):
        x = sc.get(name)
        if not x:
            continue
        fsd = x.get("first_step_delay") or {}
        p(f"| {name} | {fmt(x['seconds'])} | {fmt(x.get('step_pods'))} | "
          f"{fmt(x.get('controller_writes'))} / {fmt(x.get('controller_reads'))} | "
          f"{fmt(x.get('apiserver_writes'))} ({fmt(x.get('apiserver_background_writes'))} background) | "
          f"{fmt(fsd.get('p50_ms'), ' ms')} / {fmt(fsd.get('p99_ms'), ' ms')} | "
          f"{fmt(x.get('controller_rss_mib_max'), ' MiB')} | {fmt(x.get('queued_max'))} | "
          f"{x['load_before']} → {x['load_after']} |")
    p("")
    for name in ("dag", "queued", "arrival", "steady"):
        x = sc.get(name)
        if x and x.get("controller_requests"):
            req = ", ".join(f"{k} {fmt(v)}" for k, v in sorted(x["controller_requests"].items()))
            top = ", ".join(f"{k} {fmt(v)}" for k, v in list(x.get("apiserver_writes_by", {}).items())[:8])
            p(f"- {name}: controller requests {req}; API server writes by verb and resource: {top}.")
    p("")
    p(f"Controller RSS: {fmt(r.get('controller_rss_mib_idle'), ' MiB')} idle after start, "
      f"{fmt(r.get('controller_rss_mib_final'), ' MiB')} at the end with {fmt(r.get('runs_finished_total'))} "
      + (f"finished runs (each deleted {s.get('finished_run_ttl')} after it finished, with its pods; "
         f"the highest RSS of a scenario: {highest_rss(sc)}). "
         if s.get("finished_run_ttl") else
         "finished runs (their PipelineRuns and pods still in the cluster and in its caches). ")
      + 
      f"Unfinished runs at each scenario's timeout: "
      + ", ".join(f"{n} {fmt(sc[n].get('unfinished'))}" for n in ("dag", "queued", "arrival", "steady") if n in sc)
      + "; runs that did not succeed: "
      + ", ".join(f"{n} {fmt(sc[n].get('not_succeeded'))}" for n in ("dag", "queued", "arrival", "steady") if n in sc)
      + ".")
    p("")
    notes = os.path.join(os.path.dirname(os.path.abspath(path)), "controller-notes.md")
    if os.path.exists(notes):
        p("### Reading the figures")
        p("")
        with open(notes) as f:
            p(f.read().strip())
        p("")
    p("This run's sizes as flags (the defaults are the issue's full sizes):")
    p("")
    p("```sh")
    p(f"scripts/bench-controller.sh --ceiling-pods {s['ceiling_pods']} --duration {s['duration']} --rate {s['rate']} "
      f"--dag-runs {s['dag_runs']} --queued-runs {s['queued_runs']} --nodes {s['nodes']}"
      + (f" --steady-rate {s['steady_rate']} --steady-duration {s['steady_duration']}" if s.get("steady_rate") else ""))
    p("scripts/bench-report.sh --controller-only   # rewrites this section from the results file")
    p("```")
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    rep = sub.add_parser("report")
    rep.add_argument("results")
    run = sub.add_parser("run")
    for name in ("server", "ca", "cert", "key", "c8s", "kubeconfig", "state", "out"):
        run.add_argument(f"--{name}", required=True)
    run.add_argument("--scenarios", default="ceiling,dag,queued,arrival,steady")
    run.add_argument("--ceiling-pods", type=int, default=2000)
    run.add_argument("--dag-runs", type=int, default=1000)
    run.add_argument("--dag-run-seconds", type=float, default=10.0)
    run.add_argument("--queued-runs", type=int, default=5000)
    run.add_argument("--queue-namespaces", type=int, default=10)
    run.add_argument("--bystander-runs", type=int, default=20,
                     help="one-step runs created one a second in another namespace during (c)")
    run.add_argument("--rate", type=float, default=10.0, help="one-step runs per second in (a)")
    run.add_argument("--duration", type=int, default=600, help="seconds of arrivals in (a)")
    run.add_argument("--rate-namespaces", type=int, default=50)
    run.add_argument("--steady-rate", type=float, default=2.0,
                     help="five-step runs per second in (d): 2 is 10 step pods/s")
    run.add_argument("--steady-duration", type=int, default=300, help="seconds of arrivals in (d)")
    run.add_argument("--run-seconds", type=float, default=1.0, help="how long a one-step run's container runs")
    run.add_argument("--kube-qps", type=int, default=100)
    run.add_argument("--kube-burst", type=int, default=200)
    run.add_argument("--max-running", type=int, default=10)
    run.add_argument("--finished-run-ttl", default=None,
                     help="the controller's --finished-run-ttl (e.g. 30s); default: finished runs are kept")
    run.add_argument("--nodes", type=int, default=40)
    run.add_argument("--metrics-port", type=int, default=29490)
    run.add_argument("--driver-threads", type=int, default=4)
    run.add_argument("--timeout", type=int, default=1800, help="seconds to wait for a scenario's runs")
    run.add_argument("--sample-seconds", type=float, default=2.0)
    run.add_argument("--background-seconds", type=float, default=20.0)
    args = ap.parse_args()
    if args.cmd == "report":
        sys.stdout.write(report(args.results))
        return
    args.scenarios = [s for s in args.scenarios.split(",") if s]
    bench = Bench(args)
    try:
        bench.main()
    finally:
        bench.stop_controller()


if __name__ == "__main__":
    main()
