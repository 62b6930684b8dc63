"""The controller's decisions against a fake API, with nginx replaced by a recorder:
which Ingresses it takes, the configuration it hands nginx (and that an
unchanged cluster is no reload), each problem told once as an Event, and the
status it writes (the publish Service's address, with a PUT as upstream's RBAC
allows)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from kinns.client import Client, MockTransport
from kinns.client.fake import FakeApi
from kinns.ingress.controller import IngressController, Options
from kinns.ingress.nginx import Nginx
from kinns.ingress.nginxconf import Settings
from tests.ingress_cases import backend, ingress, rule

Obj = dict[str, Any]


class RecordingNginx(Nginx):
    """Nginx without a process: what it would have loaded, in order."""

    def __init__(self) -> None:
        super().__init__(Path("/nonexistent"), Settings())
        self.loaded: list[str] = []

    def prepare(self, default_pem: str) -> None:
        pass

    def write_certificates(self, certs: dict[str, str]) -> None:
        pass

    def prune_certificates(self, keep: set[str]) -> None:
        pass

    def start(self, text: str) -> None:
        self.live = text
        self.loaded.append(text)

    def apply(self, text: str) -> bool:
        if text == self.live:
            return False
        self.live = text
        self.loaded.append(text)
        return True

    def running(self) -> bool:
        return True


def world(fake: FakeApi) -> None:
    fake.put({"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass", "metadata": {"name": "nginx"},
              "spec": {"controller": "k8s.io/ingress-nginx"}})
    fake.put({"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass", "metadata": {"name": "other"},
              "spec": {"controller": "example.com/other"}})
    fake.put({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "default"},
              "spec": {"ports": [{"port": 80, "protocol": "TCP"}]}})
    fake.put({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
              "metadata": {"name": "web-x", "namespace": "default", "labels": {"kubernetes.io/service-name": "web"}},
              "addressType": "IPv4", "ports": [{"name": "", "port": 8080, "protocol": "TCP"}],
              "endpoints": [{"addresses": ["10.244.1.5"], "conditions": {"ready": True}}]})
    fake.put({"apiVersion": "v1", "kind": "Service",
              "metadata": {"name": "ingress-nginx-controller", "namespace": "ingress-nginx"},
              "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]},
              "status": {"loadBalancer": {"ingress": [{"ip": "172.18.0.200", "ipMode": "VIP"}]}}})
    fake.put(ingress("ours", [rule("a.com", [("Prefix", "/", backend("web")), ("Prefix", "/x", backend("nosuch"))])],
                     created=""))
    fake.put(ingress("theirs", [rule("b.com", [("Prefix", "/", backend("web"))])], created="", cls="other"))


def test_sync_events_once_and_status() -> None:
    async def go() -> None:
        fake = FakeApi()
        world(fake)
        client = Client(MockTransport(fake.handle))
        nginx = RecordingNginx()
        ctl = IngressController(client, Options(publish_service="ingress-nginx/ingress-nginx-controller"), nginx)
        ctl.factory.start()
        await ctl.factory.wait_for_sync(5)
        await ctl.sync()
        await ctl.sync()                                  # nothing changed: no reload, no new Event
        await asyncio.sleep(0.1)
        assert len(nginx.loaded) == 1
        text = nginx.loaded[0]
        assert "server_name a.com;" in text and "b.com" not in text      # another class's Ingress is not ours
        assert "server 10.244.1.5:8080 max_fails=0;" in text
        events = [(e["involvedObject"]["name"], e["type"], e["reason"]) for e in fake.all("v1", "Event")]
        assert sorted(events) == [("ours", "Normal", "Sync"), ("ours", "Warning", "ServiceNotFound")]
        fake.put({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "nosuch", "namespace": "default"},
                  "spec": {"ports": [{"port": 80, "protocol": "TCP"}]}})
        await asyncio.sleep(0.1)
        await ctl.sync()
        assert len(nginx.loaded) == 2 and ctl.reported == set()          # the problem is gone
        await ctl.update_status()
        ours = fake.lookup("networking.k8s.io/v1", "Ingress", "ours", "default")
        assert ours is not None and ours["status"]["loadBalancer"]["ingress"] == [{"ip": "172.18.0.200"}]
        theirs = fake.lookup("networking.k8s.io/v1", "Ingress", "theirs", "default")
        assert theirs is not None and not (theirs.get("status") or {}).get("loadBalancer")
        await ctl.factory.stop()
        await client.close()
    asyncio.run(go())
