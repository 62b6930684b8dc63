"""The Corefile parser: kubeadm's Corefile, its variants, and errors that name the line."""

from __future__ import annotations

import textwrap

import pytest

from kinns.dns import corefile
from kinns.dns.answer import KubeOptions
from kinns.dns.corefile import CacheOptions, CorefileError, ForwardOptions, LogOptions


def test_kubeadm_corefile() -> None:
    cf = corefile.parse(corefile.KUBEADM_COREFILE)
    [b] = cf.blocks
    assert b.zones == (".",) and b.port == 53
    assert b.plugins == ["errors", "health", "ready", "kubernetes", "prometheus", "forward", "cache", "loop",
                         "reload", "loadbalance"]
    assert b.kubernetes == KubeOptions(zones=("cluster.local.", "in-addr.arpa.", "ip6.arpa."), ttl=30,
                                       pods="insecure", fallthrough=("in-addr.arpa.", "ip6.arpa."))
    assert b.forward == ForwardOptions(".", ("/etc/resolv.conf",), max_concurrent=1000)
    assert b.cache == CacheOptions(success_ttl=30, denial_ttl=30, zones=(".",))
    assert b.loadbalance and b.log is None and b.lameduck == 5.0
    assert (cf.health, cf.ready, cf.prometheus) == ("0.0.0.0:8080", "0.0.0.0:8181", "0.0.0.0:9153")


def test_newer_kubeadm_cache_disables_cluster_zone() -> None:
    text = corefile.KUBEADM_COREFILE.replace(
        "cache 30", "cache 30 {\n        disable success cluster.local\n        disable denial cluster.local\n    }")
    c = corefile.parse(text).blocks[0].cache
    assert c is not None and c.disable_success == ("cluster.local.",) and c.disable_denial == ("cluster.local.",)


def test_log_plugin_and_defaults() -> None:
    cf = corefile.parse(".:1053 {\n  log\n  kubernetes\n  prometheus\n}\n")
    [b] = cf.blocks
    assert b.port == 1053 and b.log == LogOptions()
    assert b.kubernetes is not None and b.kubernetes.zones == (".",) and b.kubernetes.ttl == 5
    assert b.kubernetes.pods == "disabled" and b.kubernetes.fallthrough is None
    assert cf.prometheus == "127.0.0.1:9153" and cf.health is None and cf.ready is None


def test_log_classes() -> None:
    b = corefile.parse(".:53 {\n log . {\n  class denial error\n }\n}\n").blocks[0]
    assert b.log is not None and b.log.classes == {"denial", "error"}


def test_kubeconfig_line_and_env_and_quotes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KCFG", "/etc/coredns/kubeconfig")
    text = textwrap.dedent("""\
        # a comment
        cluster.local:53 in-addr.arpa:53 {
            kubernetes {
                kubeconfig {$KCFG} "my context"   # trailing comment
                endpoint_pod_names
                namespaces default kube-system
            }
        }
    """)
    [b] = corefile.parse(text).blocks
    assert b.zones == ("cluster.local.", "in-addr.arpa.")
    k = b.kubernetes
    assert k is not None and k.kubeconfig == ("/etc/coredns/kubeconfig", "my context")
    assert k.endpoint_pod_names and k.namespaces == {"default", "kube-system"}
    assert k.zones == ("cluster.local.", "in-addr.arpa.")


def test_several_blocks() -> None:
    cf = corefile.parse(".:53 {\n forward . 8.8.8.8\n}\nexample.org {\n forward . 192.0.2.1:5353\n}\n")
    assert [b.zones for b in cf.blocks] == [(".",), ("example.org.",)]
    assert cf.blocks[1].forward is not None and cf.blocks[1].forward.to == ("192.0.2.1:5353",)


ERRORS = [
    ("unknown-directive", ".:53 {\n    errors\n    frobnicate on\n}\n", 3, "Unknown directive 'frobnicate'"),
    ("unsupported-plugin", ".:53 {\n  hosts {\n    1.2.3.4 a\n  }\n}\n", 2, "plugin 'hosts' is not supported"),
    ("unknown-kubernetes-property", ".:53 {\n kubernetes cluster.local {\n  pods insecure\n  bogus 1\n }\n}\n", 4,
     "unknown property 'bogus'"),
    ("bad-pods-mode", ".:53 {\n kubernetes cluster.local {\n  pods sometimes\n }\n}\n", 3,
     "wrong value for pods: sometimes"),
    ("bad-ttl", ".:53 {\n kubernetes cluster.local {\n  ttl 99999\n }\n}\n", 3, "ttl: invalid value"),
    ("unclosed-block", ".:53 {\n errors\n kubernetes cluster.local {\n  pods insecure\n", 4, "Unexpected EOF"),
    ("stray-brace", ".:53 {\n errors\n}\n}\n", 4, "Unexpected '}'"),
    ("no-braces", ".:53\n", 1, "expected '{'"),
    ("forward-without-target", ".:53 {\n forward .\n}\n", 2, "Wrong argument count"),
    ("bad-duration", ".:53 {\n health {\n  lameduck soon\n }\n}\n", 3, "invalid duration"),
    ("duplicate-zone", ".:53 {\n errors\n}\n.:53 {\n errors\n}\n", 4, "already defined"),
    ("duplicate-plugin", ".:53 {\n cache 30\n cache 10\n}\n", 3, "used twice"),
    ("unterminated-quote", '.:53 {\n forward . "8.8.8.8\n}\n', 2, "Unterminated quoted string"),
    ("bad-port", ".:dns {\n errors\n}\n", 1, "Invalid port"),
]


@pytest.mark.parametrize("text,line,message", [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS])
def test_errors_name_the_line(text: str, line: int, message: str) -> None:
    with pytest.raises(CorefileError) as exc:
        corefile.parse(text)
    assert exc.value.line == line
    assert str(exc.value).startswith(f"Corefile:{line} - Error during parsing: ")
    assert message in str(exc.value)
