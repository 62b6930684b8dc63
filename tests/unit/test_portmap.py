"""hostPort rules as the CNI portmap plugin writes them, against golden text.

The golden rules are written in the form `iptables-save` prints (the
integration test checks that the kernel prints them back identically),
which is what lets `render` tell "already there" from "needs writing".
"""

from __future__ import annotations

import textwrap
from typing import Any

from kinns.net.portmap import (NatTable, PortMapping, dnat_chain_name, entry_rules, parse_nat, pod_mappings,
                               render)

A = "3f9c2a10-aaaa-4bbb-8ccc-000000000001"
B = "3f9c2a10-aaaa-4bbb-8ccc-000000000002"
CHAIN_A = dnat_chain_name(A)
CHAIN_B = dnat_chain_name(B)
MAPS_A = [PortMapping(8080, 80), PortMapping(5353, 53, "udp"), PortMapping(8443, 443, "tcp", "172.18.5.3")]


def pod(*ports: dict[str, Any], host_network: bool = False) -> dict[str, Any]:
    return {"spec": {"hostNetwork": host_network,
                     "containers": [{"name": "a", "ports": list(ports)}, {"name": "b", "ports": [{"containerPort": 9}]}]}}


def dedent(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def test_pod_mappings() -> None:
    p = pod({"containerPort": 80, "hostPort": 8080}, {"containerPort": 53, "hostPort": 5353, "protocol": "UDP"},
            {"containerPort": 443, "hostPort": 8443, "hostIP": "172.18.5.3"},
            {"containerPort": 81, "hostPort": 8080},              # same host port again: dropped
            {"containerPort": 82})                                # no hostPort
    assert pod_mappings(p) == MAPS_A
    assert pod_mappings(pod({"containerPort": 80, "hostPort": 80}, host_network=True)) == []


def test_chain_name_is_the_plugins() -> None:
    # "CNI-DN-" + hex sha512("kinns" + container ID), 28 characters, as utils.MustFormatChainNameWithPrefix
    assert dnat_chain_name("abc-123") == "CNI-DN-74ddf367bfabcc9556874"
    assert len(CHAIN_A) == 28 and CHAIN_A != CHAIN_B


def test_first_pod_creates_the_shared_chains() -> None:
    got = render(NatTable(), A, "10.244.1.5", "10.244.1.0/24", MAPS_A)
    assert got == dedent(f"""
        *nat
        :CNI-HOSTPORT-SETMARK - [0:0]
        :CNI-HOSTPORT-MASQ - [0:0]
        :CNI-HOSTPORT-DNAT - [0:0]
        :{CHAIN_A} - [0:0]
        -A CNI-HOSTPORT-SETMARK -m comment --comment "CNI portfwd masquerade mark" -j MARK --set-xmark 0x2000/0x2000
        -A CNI-HOSTPORT-MASQ -m mark --mark 0x2000/0x2000 -j MASQUERADE
        -A CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: \\"kinns\\" id: \\"{A}\\"" -m multiport --dports 8080,8443 -j {CHAIN_A}
        -A CNI-HOSTPORT-DNAT -p udp -m comment --comment "dnat name: \\"kinns\\" id: \\"{A}\\"" -m multiport --dports 5353 -j {CHAIN_A}
        -A PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT
        -A OUTPUT -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT
        -I POSTROUTING 1 -m comment --comment "CNI portfwd requiring masquerade" -j CNI-HOSTPORT-MASQ
        -A {CHAIN_A} -s 10.244.1.0/24 -p tcp -m tcp --dport 8080 -j CNI-HOSTPORT-SETMARK
        -A {CHAIN_A} -s 127.0.0.1/32 -p tcp -m tcp --dport 8080 -j CNI-HOSTPORT-SETMARK
        -A {CHAIN_A} -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.244.1.5:80
        -A {CHAIN_A} -s 10.244.1.0/24 -p udp -m udp --dport 5353 -j CNI-HOSTPORT-SETMARK
        -A {CHAIN_A} -s 127.0.0.1/32 -p udp -m udp --dport 5353 -j CNI-HOSTPORT-SETMARK
        -A {CHAIN_A} -p udp -m udp --dport 5353 -j DNAT --to-destination 10.244.1.5:53
        -A {CHAIN_A} -s 10.244.1.0/24 -d 172.18.5.3/32 -p tcp -m tcp --dport 8443 -j CNI-HOSTPORT-SETMARK
        -A {CHAIN_A} -s 127.0.0.1/32 -d 172.18.5.3/32 -p tcp -m tcp --dport 8443 -j CNI-HOSTPORT-SETMARK
        -A {CHAIN_A} -d 172.18.5.3/32 -p tcp -m tcp --dport 8443 -j DNAT --to-destination 10.244.1.5:443
        COMMIT
        """)


def saved(*pods: tuple[str, str, list[PortMapping]], kube: bool = True) -> str:
    """iptables-save -t nat text of a node that has these pods' mappings (and kube-proxy's jump)."""
    chains = [":PREROUTING ACCEPT [0:0]", ":INPUT ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]", ":POSTROUTING ACCEPT [0:0]"]
    rules = []
    if kube:
        chains.append(":KUBE-SERVICES - [0:0]")
        rules.append('-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES')
    if pods:
        rules += ["-A PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT",
                  "-A OUTPUT -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT",
                  '-A POSTROUTING -m comment --comment "CNI portfwd requiring masquerade" -j CNI-HOSTPORT-MASQ']
        chains += [":CNI-HOSTPORT-DNAT - [0:0]", ":CNI-HOSTPORT-MASQ - [0:0]", ":CNI-HOSTPORT-SETMARK - [0:0]"]
        for cid, ip, maps in pods:
            chains.append(f":{dnat_chain_name(cid)} - [0:0]")
            text = render(NatTable(), cid, ip, "10.244.1.0/24", maps)
            rules += [ln for ln in text.splitlines() if ln.startswith(f"-A {dnat_chain_name(cid)} ")
                      or ln.startswith("-A CNI-HOSTPORT-DNAT ")]
        rules += ['-A CNI-HOSTPORT-MASQ -m mark --mark 0x2000/0x2000 -j MASQUERADE',
                  '-A CNI-HOSTPORT-SETMARK -m comment --comment "CNI portfwd masquerade mark" '
                  '-j MARK --set-xmark 0x2000/0x2000']
    return "\n".join(["# Generated by iptables-save", "*nat", *chains, *rules, "COMMIT", "# Completed"]) + "\n"


def test_parse_nat() -> None:
    t = parse_nat(saved(("x", "10.244.1.9", [PortMapping(80, 80)])))
    assert list(t.chains)[:5] == ["PREROUTING", "INPUT", "OUTPUT", "POSTROUTING", "KUBE-SERVICES"]
    assert t.rules("OUTPUT") == ["-m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT"]
    assert t.jumps("PREROUTING", "KUBE-SERVICES") == ['-m comment --comment "kubernetes service portals" '
                                                      "-j KUBE-SERVICES"]
    assert t.rules("CNI-HOSTPORT-DNAT") == entry_rules("x", [PortMapping(80, 80)])


def test_applied_mappings_render_to_nothing() -> None:
    table = parse_nat(saved((A, "10.244.1.5", MAPS_A)))
    assert render(table, A, "10.244.1.5", "10.244.1.0/24", MAPS_A) == ""
    # A new pod IP (a re-created sandbox) rewrites the chain.
    assert "--to-destination 10.244.1.6:80" in render(table, A, "10.244.1.6", "10.244.1.0/24", MAPS_A)


def test_second_pod_keeps_the_first_pods_jumps_and_adds_no_second_entry() -> None:
    table = parse_nat(saved((A, "10.244.1.5", MAPS_A)))
    got = render(table, B, "10.244.1.7", "10.244.1.0/24", [PortMapping(9090, 90)])
    assert got == dedent(f"""
        *nat
        :CNI-HOSTPORT-SETMARK - [0:0]
        :CNI-HOSTPORT-MASQ - [0:0]
        :CNI-HOSTPORT-DNAT - [0:0]
        :{CHAIN_B} - [0:0]
        -A CNI-HOSTPORT-SETMARK -m comment --comment "CNI portfwd masquerade mark" -j MARK --set-xmark 0x2000/0x2000
        -A CNI-HOSTPORT-MASQ -m mark --mark 0x2000/0x2000 -j MASQUERADE
        -A CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: \\"kinns\\" id: \\"{A}\\"" -m multiport --dports 8080,8443 -j {CHAIN_A}
        -A CNI-HOSTPORT-DNAT -p udp -m comment --comment "dnat name: \\"kinns\\" id: \\"{A}\\"" -m multiport --dports 5353 -j {CHAIN_A}
        -A CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: \\"kinns\\" id: \\"{B}\\"" -m multiport --dports 9090 -j {CHAIN_B}
        -A {CHAIN_B} -s 10.244.1.0/24 -p tcp -m tcp --dport 9090 -j CNI-HOSTPORT-SETMARK
        -A {CHAIN_B} -s 127.0.0.1/32 -p tcp -m tcp --dport 9090 -j CNI-HOSTPORT-SETMARK
        -A {CHAIN_B} -p tcp -m tcp --dport 9090 -j DNAT --to-destination 10.244.1.7:90
        COMMIT
        """)


def test_removing_one_of_two_pods() -> None:
    table = parse_nat(saved((A, "10.244.1.5", MAPS_A), (B, "10.244.1.7", [PortMapping(9090, 90)])))
    assert render(table, A, "", "", []) == dedent(f"""
        *nat
        :CNI-HOSTPORT-DNAT - [0:0]
        :{CHAIN_A} - [0:0]
        -A CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: \\"kinns\\" id: \\"{B}\\"" -m multiport --dports 9090 -j {CHAIN_B}
        -X {CHAIN_A}
        COMMIT
        """)


def test_removing_the_last_pod_leaves_no_cni_chain_and_spares_others() -> None:
    table = parse_nat(saved((B, "10.244.1.7", [PortMapping(9090, 90)])))
    assert render(table, B, "", "", []) == dedent(f"""
        *nat
        :{CHAIN_B} - [0:0]
        :CNI-HOSTPORT-DNAT - [0:0]
        :CNI-HOSTPORT-MASQ - [0:0]
        :CNI-HOSTPORT-SETMARK - [0:0]
        -D PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT
        -D OUTPUT -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT
        -D POSTROUTING -m comment --comment "CNI portfwd requiring masquerade" -j CNI-HOSTPORT-MASQ
        -X {CHAIN_B}
        -X CNI-HOSTPORT-DNAT
        -X CNI-HOSTPORT-MASQ
        -X CNI-HOSTPORT-SETMARK
        COMMIT
        """)


def test_removing_a_pod_without_rules_is_nothing() -> None:
    assert render(parse_nat(saved((A, "10.244.1.5", MAPS_A))), B, "", "", []) == ""
    assert render(parse_nat(saved()), B, "", "", []) == ""


def test_many_ports_split_in_fifteens() -> None:
    maps = [PortMapping(10000 + i, 80 + i) for i in range(17)]
    rules = entry_rules(A, maps)
    assert [r.split("--dports ")[1].split()[0].count(",") + 1 for r in rules] == [15, 2]
