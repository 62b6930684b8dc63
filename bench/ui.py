"""UI benchmark: how fast `kinns ui` shows a change, and loads, with thousands of pods.

On one real cluster (`--nodes`, default 20: the kubelet's maxPods is 110, so
2,000 pods need 19 nodes or more), a Deployment of `--pods` tiny pods
(busybox `sleep`, tolerating the control-plane taint) is rolled out; then, in
the same run:

  1. update latency: `--probes` times, a pod is created with a POST to the
     API (the clock starts just before it), and we time its arrival at
       - the UI's server-sent event stream (`/api/events`, a `delta` naming it),
       - the page in headless Chromium (its chip added to the diagram, seen by
         a MutationObserver the benchmark injects, on the host's clock),
       - a peer: `kubectl get pods --watch-only -o name` seeing the same pod;
     medians and p90s, and the ratio UI/peer;
  2. page load: a fresh headless Chromium page until the snapshot of every
     pod is drawn (the page's own clock from navigation start), median of 3,
     with the snapshot's size.

The cluster lives under a temporary KINNS_STATE_DIR and KUBECONFIG and is
removed with `kinns down` (checked for leftovers).  Usage:

  .venv/bin/python bench/ui.py [--nodes 20] [--pods 2000] [--probes 20] [--ready-timeout 900] [--stall 120]
                              [--screenshot PNG]

If the cluster cannot run every pod within `--ready-timeout` (or no pod
becomes Ready for `--stall` seconds), the figures
are taken anyway and the report says how many pods existed and ran.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kinns.testing import ClusterHandle, kubectl_binary, new_cluster_name  # noqa: E402
from tests.e2e.test_ui import CHROMIUM, CHROMIUM_ARGS, start_ui  # noqa: E402


# Injected by the benchmark only: the wall-clock time (epoch ms, the host's clock as time.time())
# at which each pod chip was added to the diagram, seen by a MutationObserver.
SEEN_SCRIPT = """() => {
  window.benchSeen = {};
  new MutationObserver((records) => {
    const now = performance.timeOrigin + performance.now();
    for (const r of records) for (const n of r.addedNodes) {
      if (n.dataset && n.dataset.id && !(n.dataset.id in window.benchSeen)) window.benchSeen[n.dataset.id] = now;
    }
  }).observe(document.querySelector("#nodes"), {childList: true, subtree: true});
}"""


def sleeper_deployment(n: int) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "many"},
            "spec": {"replicas": n, "selector": {"matchLabels": {"app": "many"}},
                     "template": {"metadata": {"labels": {"app": "many"}},
                                  "spec": {"terminationGracePeriodSeconds": 0,
                                           "tolerations": [{"key": "node-role.kubernetes.io/control-plane",
                                                            "operator": "Exists", "effect": "NoSchedule"}],
                                           "containers": [{"name": "sleep", "image": "busybox",
                                                           "command": ["sleep", "1000000"]}]}}}}


def probe_pod(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": "probe"}},
            "spec": {"terminationGracePeriodSeconds": 0,
                     "containers": [{"name": "sleep", "image": "busybox", "command": ["sleep", "1000000"]}]}}


class LineWatcher:
    """Reads a stream line by line in a thread; remembers when each wanted name first showed up."""

    def __init__(self) -> None:
        self.seen: dict[str, float] = {}
        self.cond = threading.Condition()

    def saw(self, name: str) -> None:
        with self.cond:
            self.seen.setdefault(name, time.monotonic())
            self.cond.notify_all()

    def wait(self, name: str, timeout: float) -> float | None:
        with self.cond:
            self.cond.wait_for(lambda: name in self.seen, timeout)
            return self.seen.get(name)


def watch_sse(url: str, out: LineWatcher) -> None:
    """`/api/events`: note every pod a `delta` puts (the snapshot is not a change)."""
    with urllib.request.urlopen(url + "api/events", timeout=3600) as resp:
        event = ""
        for raw in resp:
            line = raw.decode()
            if line.startswith("event: "):
                event = line[7:].strip()
            elif line.startswith("data: ") and event == "delta":
                for op in json.loads(line[6:]):
                    if op["op"] == "put" and op["obj"]["kind"] == "pod":
                        out.saw(op["obj"]["name"])


def watch_kubectl(c: ClusterHandle, out: LineWatcher) -> subprocess.Popen[str]:
    proc = subprocess.Popen([kubectl_binary("1.32"), "--kubeconfig", str(c.kubeconfig), "get", "pods", "--watch-only",
                             "-o", "name"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            out.saw(line.strip().removeprefix("pod/"))
    threading.Thread(target=read, daemon=True).start()
    return proc


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p * (len(xs) - 1))))]


def ms(xs: list[float]) -> str:
    if not xs:
        return "no samples"
    return f"median {statistics.median(xs) * 1000:.1f} ms, p90 {pct(xs, 0.9) * 1000:.1f} ms (n={len(xs)})"


def count_pods(c: ClusterHandle) -> tuple[int, int]:
    """(pods the Deployment has, pods Ready), from its status: cheap to ask every few seconds."""
    status = json.loads(c.kubectl("get", "deployment", "many", "-o", "json", timeout=120).stdout).get("status") or {}
    return int(status.get("replicas") or 0), int(status.get("readyReplicas") or 0)


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--nodes", type=int, default=20)  # maxPods 110 each
    ap.add_argument("--pods", type=int, default=2000)
    ap.add_argument("--probes", type=int, default=20)
    ap.add_argument("--ready-timeout", type=float, default=900)
    ap.add_argument("--screenshot", help="save a picture of the loaded page here (PNG)")
    ap.add_argument("--stall", type=float, default=120, help="stop waiting when no pod became Ready for this long")
    args = ap.parse_args()

    from playwright.sync_api import sync_playwright

    root = Path(tempfile.mkdtemp(prefix="kinns-bench-ui-"))
    os.environ["KINNS_STATE_DIR"] = str(root)
    os.environ["KUBECONFIG"] = str(root / "kubeconfig")
    c = ClusterHandle(new_cluster_name("bu"), root, ["--nodes", str(args.nodes), "--disable", "ingress",
                                                      "--wait", "300"])
    t = time.monotonic()
    c.up()
    print(f"cluster: {args.nodes} nodes up in {time.monotonic() - t:.1f}s")
    ui = kubectl_watch = None
    try:
        t = time.monotonic()
        c.kubectl("apply", "-f", "-", stdin=json.dumps(sleeper_deployment(args.pods)))
        deadline = time.monotonic() + args.ready_timeout
        total, ready = 0, 0
        progress = (0, time.monotonic())   # (Ready count, when it last grew)
        while time.monotonic() < deadline:
            total, ready = count_pods(c)
            if ready >= args.pods:
                break
            if ready > progress[0]:
                progress = (ready, time.monotonic())
            elif time.monotonic() - progress[1] > args.stall:
                break   # the cluster holds no more: measure with what it runs
            time.sleep(5)
        print(f"pods: {total} in the API, {ready} Ready, {time.monotonic() - t:.0f}s after the apply"
              + ("" if ready >= args.pods else f" (the cluster did not run all {args.pods})"))
        ui, url = start_ui(c)
        with urllib.request.urlopen(url + "api/state") as r:
            state = r.read()
        state_bytes = len(state)
        all_pods = sum(1 for o in json.loads(state)["objects"] if o["kind"] == "pod")   # every namespace

        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            loads = []
            for _ in range(3):
                page = browser.new_page(viewport={"width": 1600, "height": 1000})
                page.goto(url)
                page.wait_for_function(f"document.querySelectorAll('.pod').length >= {all_pods}", timeout=120000)
                loads.append(page.evaluate("window.kinns.drawnAt") / 1000)
                if args.screenshot:
                    page.screenshot(path=args.screenshot)
                page.close()
            print(f"page load, {all_pods} pods in the diagram: {ms(loads)}; snapshot {state_bytes / 1024:.0f} KiB")

            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.goto(url)
            page.wait_for_function("window.kinns.snapshots > 0", timeout=120000)
            page.evaluate(SEEN_SCRIPT)
            sse, peer = LineWatcher(), LineWatcher()
            threading.Thread(target=watch_sse, args=(url, sse), daemon=True).start()
            kubectl_watch = watch_kubectl(c, peer)
            time.sleep(2)   # both watches open
            ui_lat, page_lat, peer_lat = [], [], []
            for i in range(args.probes):
                name = f"probe-{i}"
                t0, t0_epoch = time.monotonic(), time.time()
                r = c.http("POST", "/api/v1/namespaces/default/pods", probe_pod(name))
                assert r.status == 201, r.body
                seen_ms = page.wait_for_function(f"window.benchSeen['pod/default/{name}']", timeout=30000).json_value()
                t_sse, t_peer = sse.wait(name, 30), peer.wait(name, 30)
                if t_sse is not None:
                    ui_lat.append(t_sse - t0)
                if t_peer is not None:
                    peer_lat.append(t_peer - t0)
                page_lat.append(seen_ms / 1000 - t0_epoch)
                c.http("DELETE", f"/api/v1/namespaces/default/pods/{name}?gracePeriodSeconds=0")
                time.sleep(0.5)
            browser.close()
        print(f"update latency, API write -> UI event stream: {ms(ui_lat)}")
        print(f"update latency, API write -> its chip added to the page's diagram: {ms(page_lat)}")
        print(f"update latency, API write -> kubectl get pods --watch-only (peer): {ms(peer_lat)}")
        if ui_lat and peer_lat:
            print(f"ratio UI/peer (medians): {statistics.median(ui_lat) / statistics.median(peer_lat):.2f}")
    finally:
        for proc in (ui, kubectl_watch):
            if proc is not None:
                proc.terminate()
                proc.wait(timeout=10)
        c.down()
        shutil.rmtree(root, ignore_errors=True)   # only the merged kubeconfig is left in it


if __name__ == "__main__":
    main()
