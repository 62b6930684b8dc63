"""The NetworkPolicy agent against the real API server (in-process) and a real nft table.

No cluster: `ApiServer` behind `InProcessTransport`, pods given a node and a
status by hand, and the agent (`kinns.netpol.agent.Agent`) writing its table
into a scratch network namespace.  What it checks is what a user of the
agent relies on: a policy write reaches the kernel well within a second; a
policy that selects nothing writes nothing; deleting policies leaves the
bare skeleton; an invalid policy is refused by the API and the table stays
as it was; a flushed table is written again by the canary.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from pathlib import Path
from typing import Any, Awaitable, Callable, Iterator

import pytest

from kinns.api.errors import ApiError
from kinns.api.server import ApiServer
from kinns.api.store.sqlite import SqliteStore
from kinns.client import Client, InProcessTransport
from kinns.netpol import agent as agent_mod
from kinns.netpol.agent import Agent

Obj = dict[str, Any]


@pytest.fixture
def netns() -> Iterator[str]:
    if os.geteuid() != 0:
        pytest.skip("needs root for a scratch network namespace")
    name = f"npa{os.getpid() % 100000}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


def listing(netns: str) -> str:
    return subprocess.run(["ip", "netns", "exec", netns, "nft", "list", "table", "inet", "kinns-network-policies"],
                          text=True, capture_output=True).stdout


async def eventually(cond: Callable[[], bool], timeout: float = 5.0) -> float:
    t0 = time.monotonic()
    while not cond():
        if time.monotonic() - t0 > timeout:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)
    return time.monotonic() - t0


async def pod(client: Client, name: str, node: str, ip: str, labels: dict[str, str]) -> None:
    obj = await client.create({"apiVersion": "v1", "kind": "Pod",
                               "metadata": {"name": name, "namespace": "default", "labels": labels},
                               "spec": {"nodeName": node, "containers": [
                                   {"name": "c", "image": "nginx", "ports": [{"name": "web", "containerPort": 80}]}]}})
    obj["status"] = {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]}
    await client.update_status(obj)


def policy(name: str, spec: Obj) -> Obj:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": "default"}, "spec": spec}


def with_agent(tmp_path: Path, netns: str, body: Callable[[Client, Agent], Awaitable[None]]) -> None:
    async def go() -> None:
        api = ApiServer(SqliteStore(tmp_path / "state.db", durable=False))
        await api.bootstrap()
        client = Client(InProcessTransport(api.dispatch))
        await pod(client, "web", "n1", "10.244.1.10", {"app": "web"})
        await pod(client, "client", "n2", "10.244.2.10", {"role": "client"})
        agent = Agent(client, "n1", netns=netns)
        task = asyncio.ensure_future(agent.run())
        try:
            await eventually(lambda: agent.writes == 1)
            await body(client, agent)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await agent.factory.stop()
    asyncio.run(go())


def test_policy_writes_reach_the_table_promptly(tmp_path: Path, netns: str) -> None:
    async def body(client: Client, agent: Agent) -> None:
        assert "chain ingress {" in listing(netns) and "pod-ingress" not in listing(netns)
        await client.create(policy("nobody", {"podSelector": {"matchLabels": {"app": "none"}}}))
        await asyncio.sleep(0.5)
        assert agent.writes == 1 and agent.syncs >= 2         # rendered, nothing to write
        await client.create(policy("web-from-clients", {
            "podSelector": {"matchLabels": {"app": "web"}},
            "ingress": [{"from": [{"podSelector": {"matchLabels": {"role": "client"}}}], "ports": [{"port": "web"}]}]}))
        took = await eventually(lambda: "chain policy-ingress-default/web-from-clients" in listing(netns))
        assert took < 1.0
        text = listing(netns)
        assert 'ip saddr 10.244.2.10 accept comment "default/web-from-clients ingress[0]"' in text
        assert "10.244.1.10 . tcp . 80" in text                # the named port, on the selected pod
        # an invalid policy is refused and changes nothing
        with pytest.raises(ApiError) as err:
            await client.create(policy("bad", {"podSelector": {}, "ingress": [
                {"from": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["11.0.0.0/16"]}}]}]}))
        assert "must be a strict subset of `cidr`" in str(err.value)
        before = agent.writes
        await asyncio.sleep(0.3)
        assert agent.writes == before
        await client.delete(("networking.k8s.io/v1", "NetworkPolicy"), "web-from-clients", "default")
        await eventually(lambda: "pod-ingress" not in listing(netns))
    with_agent(tmp_path, netns, body)


def test_a_flushed_table_is_written_again(tmp_path: Path, netns: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(agent_mod, "CANARY_INTERVAL", 0.2)

    async def body(client: Client, agent: Agent) -> None:
        await client.create(policy("deny", {"podSelector": {}}))
        await eventually(lambda: "chain pod-ingress-default/web" in listing(netns))
        subprocess.run(["ip", "netns", "exec", netns, "nft", "flush", "ruleset"], check=True)
        await eventually(lambda: "chain pod-ingress-default/web" in listing(netns), timeout=5)
    with_agent(tmp_path, netns, body)
