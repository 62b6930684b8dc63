"""`kinns ui` end to end: the real page in headless Chromium over a real cluster.

The page must list every pod and Service the API has, follow `kubectl scale`
by itself (server-sent events from the API's watches), show a Service's
kube-proxy rules on each node and a pod's interfaces when clicked, and draw a
trace that names the same endpoint as `kinns trace` on the command line.
Screenshots land in docs/img/ (docs/TOUR.md shows them).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from kinns.testing import ClusterHandle, new_cluster_name, wait_for
from tests.e2e.helpers import NETEXEC, apply, deployment, running

pytestmark = pytest.mark.e2e

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
IMG = Path(__file__).resolve().parents[2] / "docs" / "img"
# Chromium as the machine allows it: root needs --no-sandbox; no calls home on a closed network.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def start_ui(c: ClusterHandle) -> tuple[subprocess.Popen[str], str]:
    """`kinns ui --port 0` for the cluster; the process and the URL it printed."""
    log = c.state_dir / "ui.log"   # its stderr, so a chatty server never blocks on a full pipe
    with open(log, "w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "kinns.cli", "ui", "--name", c.name, "--port", "0"],
                                env=c.env(), stdout=subprocess.PIPE, stderr=err, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "http://" not in line:
        proc.kill()
        proc.wait()
        raise AssertionError(f"kinns ui printed no URL: {line!r} {log.read_text()}")
    return proc, "http://" + line.split("http://", 1)[1].split()[0]


@pytest.fixture(scope="module")
def ui_cluster(state_root: Path) -> Iterator[tuple[ClusterHandle, str]]:
    c = ClusterHandle(new_cluster_name("u"), state_root, ["--disable", "ingress"])
    c.up()
    proc = None
    try:
        apply(c, deployment("web", 3, {"name": "nginx", "image": "nginx"}))
        c.kubectl("expose", "deployment", "web", "--port=80", "--type=NodePort")
        apply(c, deployment("solo", 1, NETEXEC))
        c.kubectl("expose", "deployment", "solo", "--port=80", "--target-port=8080")
        running(c, "app=web", 3)
        running(c, "app=solo", 1)
        proc, url = start_ui(c)
        yield c, url
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=10)
        c.down()


@pytest.fixture(scope="module")
def page(ui_cluster: tuple[ClusterHandle, str]) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright
    _, url = ui_cluster
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        pg = browser.new_page(viewport={"width": 1400, "height": 900})
        errors: list[str] = []
        pg.on("pageerror", lambda e: errors.append(str(e)))
        pg.goto(url)
        pg.wait_for_function("window.kinns.snapshots > 0")
        yield pg
        browser.close()
        assert not errors, f"the page threw: {errors}"


def api_ids(c: ClusterHandle, what: str, prefix: str) -> set[str]:
    items = json.loads(c.kubectl("get", what, "-A", "-o", "json").stdout)["items"]
    return {f"{prefix}/{i['metadata']['namespace']}/{i['metadata']['name']}" for i in items}


def page_ids(pg: Any, selector: str) -> set[str]:
    return set(pg.eval_on_selector_all(selector, "els => els.map(e => e.dataset.id)"))


def shot(pg: Any, name: str) -> None:
    IMG.mkdir(parents=True, exist_ok=True)
    pg.screenshot(path=str(IMG / name))


def test_diagram_lists_every_pod_and_service_the_api_has(ui_cluster: tuple[ClusterHandle, str], page: Any) -> None:
    c, _ = ui_cluster
    wait_for(lambda: page_ids(page, ".pod") == api_ids(c, "pods", "pod"), timeout=20)
    wait_for(lambda: page_ids(page, "#services li") == api_ids(c, "services", "svc"), timeout=20)
    nodes = json.loads(c.kubectl("get", "nodes", "-o", "json").stdout)["items"]
    for n in nodes:   # each node box shows its fabric address and pod range
        box = page.text_content(f'.node[data-name="{n["metadata"]["name"]}"] .net')
        assert n["status"]["addresses"][0]["address"] in box and n["spec"]["podCIDR"] in box
    web = page.text_content('#services li[data-id="svc/default/web"]')
    assert "NodePort" in web and "3/3 endpoints ready" in web
    shot(page, "ui-overview.png")


def test_diagram_follows_kubectl_scale(ui_cluster: tuple[ClusterHandle, str], page: Any) -> None:
    c, _ = ui_cluster

    def web_on_page() -> set[str]:
        return {i for i in page_ids(page, ".pod") if i.startswith("pod/default/web-")}

    before = web_on_page()
    c.kubectl("scale", "deployment", "web", "--replicas=5")
    t0 = time.monotonic()
    # Generous wait: the page has to see the new pods without a reload (the figure is bench/ui.py's).
    wait_for(lambda: len(web_on_page()) >= 5, timeout=30, interval=0.05)
    print(f"page showed 5 web pods {time.monotonic() - t0:.2f}s after kubectl scale")
    assert before < web_on_page()
    running(c, "app=web", 5)
    wait_for(lambda: page.text_content('#services li[data-id="svc/default/web"]').count("5/5 endpoints ready"),
             timeout=30)
    c.kubectl("scale", "deployment", "web", "--replicas=2")
    wait_for(lambda: web_on_page() == {i for i in api_ids(c, "pods", "pod") if i.startswith("pod/default/web-")}
             and len(web_on_page()) == 2, timeout=60)


def test_clicking_a_service_shows_its_rules_on_every_node(ui_cluster: tuple[ClusterHandle, str], page: Any) -> None:
    c, _ = ui_cluster
    svc = json.loads(c.kubectl("get", "svc", "solo", "-o", "json").stdout)
    pod = running(c, "app=solo", 1)[0]
    page.click('#services li[data-id="svc/default/solo"]')
    page.wait_for_function("document.querySelectorAll('#detail h4').length >= 3", timeout=30000)
    text = page.text_content("#detail")
    nodes = json.loads(c.kubectl("get", "nodes", "-o", "json").stdout)["items"]
    for n in nodes:
        assert f"{n['metadata']['name']}: nft list table ip kube-proxy" in text
    assert text.count(f"dnat to {pod['status']['podIP']}:8080") == len(nodes)   # kube-proxy's DNAT, per node
    assert svc["spec"]["clusterIP"] in text
    assert "default/web/" not in text                                            # only this Service's rules
    shot(page, "ui-service-rules.png")
    page.click("#detail-close")


def test_clicking_a_pod_shows_its_interfaces_routes_and_events(ui_cluster: tuple[ClusterHandle, str],
                                                               page: Any) -> None:
    c, _ = ui_cluster
    pod = running(c, "app=solo", 1)[0]
    name, ip = pod["metadata"]["name"], pod["status"]["podIP"]
    page.click(f'.pod[data-id="pod/default/{name}"]')
    page.wait_for_selector("#detail .interfaces pre", timeout=30000)
    text = page.text_content("#detail")
    assert f"inet {ip}/24" in text and "eth0" in text                  # `ip addr` in the pod's netns
    assert "default via" in text and "dev eth0" in text               # `ip route`: the node's cni0 gateway
    assert "Scheduled" in text and f"to {pod['spec']['nodeName']}" in text   # the scheduler's event
    shot(page, "ui-pod.png")
    page.click("#detail-close")


def test_trace_in_the_browser_names_the_same_endpoint_as_the_cli(ui_cluster: tuple[ClusterHandle, str],
                                                                 page: Any) -> None:
    c, _ = ui_cluster
    client = running(c, "app=web", 2)[0]["metadata"]["name"]
    cli = c.cli("trace", "--name", c.name, f"pod/{client}", "svc/solo:80", "-o", "json", check=False)
    if not cli.stdout.strip() and ("not built" in cli.stderr or "No such" in cli.stderr):
        pytest.skip("kinns trace not built")
    result = json.loads(cli.stdout)
    assert result["ok"], cli.stdout
    endpoint = result["endpoint"]["pod"]
    assert endpoint == running(c, "app=solo", 1)[0]["metadata"]["name"]   # the Service's one pod
    page.fill("#trace-src", f"pod/{client}")
    page.fill("#trace-dst", "svc/solo:80")
    page.click("#trace-form button")
    page.wait_for_selector("#trace-endpoint", timeout=90000)
    assert page.text_content("#trace-endpoint") == endpoint
    assert page.get_attribute("#trace-path", "d")                     # a path drawn over the diagram
    assert "on-path" in (page.get_attribute(f'.pod[data-name="{endpoint}"]', "class") or "")
    steps = page.eval_on_selector_all("#detail .hops li", "els => els.map(e => e.dataset.step)")
    assert steps == [h["step"] for h in result["hops"]]
    shot(page, "ui-trace.png")


def test_ui_refuses_a_network_address_a_taken_port_and_a_missing_cluster(
        ui_cluster: tuple[ClusterHandle, str]) -> None:
    c, url = ui_cluster
    taken = url.rstrip("/").rsplit(":", 1)[1]          # the port the fixture's `kinns ui` serves on
    r = c.cli("ui", "--name", c.name, "--port", taken, check=False)
    assert r.returncode == 1 and "address already in use" in r.stderr and "--port" in r.stderr
    r = c.cli("ui", "--name", c.name, "--address", "0.0.0.0", check=False)
    assert r.returncode == 1 and "not a loopback address" in r.stderr
    r = c.cli("ui", "--name", "nosuchcluster", check=False)
    assert r.returncode == 1 and "is not running" in r.stderr
    assert os.environ.get("KINNS_STATE_DIR")   # the run's own state root, never /var/lib/kinns
