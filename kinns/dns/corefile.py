"""The Corefile, as CoreDNS reads it (Caddyfile syntax), for the plugins kinns serves.

kubeadm writes this into the `coredns` ConfigMap:

    .:53 {
        errors
        health {
           lameduck 5s
        }
        ready
        kubernetes cluster.local in-addr.arpa ip6.arpa {
           pods insecure
           fallthrough in-addr.arpa ip6.arpa
           ttl 30
        }
        prometheus :9153
        forward . /etc/resolv.conf {
           max_concurrent 1000
        }
        cache 30
        loop
        reload
        loadbalance
    }

`parse(text)` tokenizes it (quotes, `#` comments, `{$ENV}`), splits it
into server blocks (`ZONE[:PORT] ... { ... }`) and directives with their
arguments and sub-blocks, then turns the directives kinns implements into
typed options (`KubeOptions`, `ForwardOptions`, `CacheOptions`, ...).  A
directive it does not know, a property a plugin does not have, or broken
syntax raises `CorefileError` naming the line, in CoreDNS's words
(`Corefile:7 - Error during parsing: Unknown directive 'foo'`), so the pod
log says what to fix and the server never becomes Ready.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from .answer import DEFAULT_TTL, KubeOptions

# CoreDNS plugins kinns implements (or that need nothing from it: errors, loop, reload).
SUPPORTED = ("errors", "health", "ready", "kubernetes", "prometheus", "forward", "cache",
             "loop", "reload", "loadbalance", "log", "debug")
# Real CoreDNS plugins kinns does not implement: refused by name rather than "unknown".
KNOWN_UNSUPPORTED = ("acl", "any", "auto", "autopath", "azure", "bind", "bufsize", "cancel", "chaos", "clouddns",
                     "dns64", "dnssec", "dnstap", "erratic", "etcd", "file", "geoip", "grpc", "header", "hosts",
                     "k8s_external", "local", "metadata", "minimal", "nsid", "pprof", "rewrite", "root", "route53",
                     "secondary", "sign", "template", "timeouts", "tls", "trace", "transfer", "tsig", "view", "whoami")


class CorefileError(ValueError):
    """A Corefile kinns cannot serve; the message names the line, as CoreDNS's does."""

    def __init__(self, line: int, message: str, filename: str = "Corefile") -> None:
        super().__init__(f"{filename}:{line} - Error during parsing: {message}")
        self.line = line


@dataclass
class Token:
    text: str
    line: int
    quoted: bool = False


@dataclass
class Directive:
    name: str
    args: list[str]
    line: int
    block: list["Directive"] = field(default_factory=list)


@dataclass(frozen=True)
class ForwardOptions:
    zone: str                        # the FROM zone (".")
    to: tuple[str, ...]              # as written: addresses or a resolv.conf path
    max_concurrent: int = 0
    expire: float = 10.0
    force_tcp: bool = False
    prefer_udp: bool = False
    excepts: tuple[str, ...] = ()


@dataclass(frozen=True)
class CacheOptions:
    success_ttl: int = 3600
    denial_ttl: int = 1800
    min_success_ttl: int = 5
    min_denial_ttl: int = 5
    zones: tuple[str, ...] = (".",)
    disable_success: tuple[str, ...] = ()
    disable_denial: tuple[str, ...] = ()


@dataclass(frozen=True)
class LogOptions:
    names: tuple[str, ...] = (".",)
    classes: frozenset[str] = frozenset({"all"})
    format: str = ""


@dataclass
class ServerBlock:
    zones: tuple[str, ...]
    port: int
    line: int
    directives: list[Directive]
    kubernetes: KubeOptions | None = None
    forward: ForwardOptions | None = None
    cache: CacheOptions | None = None
    log: LogOptions | None = None
    loadbalance: bool = False
    health: str | None = None
    lameduck: float = 0.0
    ready: str | None = None
    prometheus: str | None = None

    @property
    def plugins(self) -> list[str]:
        return [d.name for d in self.directives]


@dataclass
class Corefile:
    blocks: list[ServerBlock]

    def _first(self, attr: str) -> str | None:
        for b in self.blocks:
            v = getattr(b, attr)
            if v is not None:
                return str(v)
        return None

    @property
    def health(self) -> str | None:
        return self._first("health")

    @property
    def ready(self) -> str | None:
        return self._first("ready")

    @property
    def prometheus(self) -> str | None:
        return self._first("prometheus")

    @property
    def ports(self) -> list[int]:
        return sorted({b.port for b in self.blocks})


# ---------------------------------------------------------------- tokens

_ENV = re.compile(r"\{\$([A-Za-z_][A-Za-z0-9_]*)\}|\{%([A-Za-z_][A-Za-z0-9_]*)%\}")


def tokenize(text: str) -> list[Token]:
    """Caddyfile tokens: words, quoted strings, `{` and `}`; `#` starts a comment."""
    text = _ENV.sub(lambda m: os.environ.get(m.group(1) or m.group(2), ""), text)
    out: list[Token] = []
    i, line, n = 0, 1, len(text)
    while i < n:
        c = text[i]
        if c == "\n":
            line += 1
            i += 1
        elif c in " \t\r":
            i += 1
        elif c == "#":
            while i < n and text[i] != "\n":
                i += 1
        elif c == '"':
            start_line = line
            i += 1
            buf = []
            while i < n and text[i] != '"':
                if text[i] == "\\" and i + 1 < n and text[i + 1] in '"\\':
                    i += 1
                if text[i] == "\n":
                    line += 1
                buf.append(text[i])
                i += 1
            if i >= n:
                raise CorefileError(start_line, "Unterminated quoted string")
            i += 1
            out.append(Token("".join(buf), start_line, True))
        else:
            start = i
            while i < n and text[i] not in " \t\r\n\"#":
                i += 1
            word = text[start:i]
            # `{` and `}` glued to a word (`.:53{`) still open/close blocks.
            parts = re.split(r"([{}])", word)
            out += [Token(p, line) for p in parts if p]
    return out


def _lines(tokens: list[Token]) -> list[list[Token]]:
    lines: dict[int, list[Token]] = {}
    for t in tokens:
        lines.setdefault(t.line, []).append(t)
    return [lines[k] for k in sorted(lines)]


def _is(t: Token, s: str) -> bool:
    return t.text == s and not t.quoted


def parse_structure(text: str) -> list[tuple[list[Token], list[Directive], int]]:
    """Server blocks as (keys, directives, line), before any plugin looks at its arguments."""
    tokens = tokenize(text)
    blocks: list[tuple[list[Token], list[Directive], int]] = []
    i = 0
    while i < len(tokens):
        keys: list[Token] = []
        while i < len(tokens) and not _is(tokens[i], "{"):
            if _is(tokens[i], "}"):
                raise CorefileError(tokens[i].line, "Unexpected '}' because no matching opening brace")
            keys.append(tokens[i])
            i += 1
        if i >= len(tokens):
            line = keys[-1].line if keys else 1
            raise CorefileError(line, "Unexpected EOF, expected '{' after the server block's keys")
        if not keys:
            raise CorefileError(tokens[i].line, "Unexpected '{': a server block needs a zone, like '.:53'")
        i += 1
        directives, i = _directives(tokens, i, keys[0].line)
        blocks.append((keys, directives, keys[0].line))
    if not blocks:
        raise CorefileError(1, "no server blocks")
    return blocks


def _directives(tokens: list[Token], i: int, open_line: int, depth: int = 0) -> tuple[list[Directive], int]:
    """Directives up to the matching `}`; each runs to the end of its line, plus an optional block."""
    out: list[Directive] = []
    while True:
        if i >= len(tokens):
            raise CorefileError(tokens[-1].line if tokens else open_line,
                                f"Unexpected EOF, the block opened on line {open_line} is not closed")
        t = tokens[i]
        if _is(t, "}"):
            return out, i + 1
        if _is(t, "{"):
            raise CorefileError(t.line, "Unexpected '{'")
        d = Directive(t.text, [], t.line)
        i += 1
        while i < len(tokens) and tokens[i].line == d.line and not _is(tokens[i], "{") and not _is(tokens[i], "}"):
            d.args.append(tokens[i].text)
            i += 1
        if i < len(tokens) and _is(tokens[i], "{") and tokens[i].line == d.line:
            if depth >= 1:
                raise CorefileError(tokens[i].line, "Unexpected '{': blocks do not nest this deep")
            d.block, i = _directives(tokens, i + 1, d.line, depth + 1)
        out.append(d)


# ----------------------------------------------------------------- values


def normalize_zone(z: str, line: int) -> str:
    z = z.strip().lower()
    if "/" in z:
        raise CorefileError(line, f"zone {z!r}: reverse zones given as CIDR are not supported, "
                                  "write in-addr.arpa names")
    return z if z.endswith(".") else z + "."


def parse_address(key: str, line: int) -> tuple[str, int]:
    """`dns://cluster.local:53` -> ("cluster.local.", 53)."""
    s = key
    for scheme in ("dns://", "tls://", "https://", "grpc://", "quic://"):
        if s.startswith(scheme):
            if scheme != "dns://":
                raise CorefileError(line, f"{scheme} servers are not supported")
            s = s[len(scheme):]
    port = 53
    if ":" in s and not s.startswith("["):
        s, _, p = s.rpartition(":")
        if not p.isdigit() or not 0 < int(p) < 65536:
            raise CorefileError(line, f"Invalid port in {key!r}")
        port = int(p)
    return normalize_zone(s or ".", line), port


def parse_duration(text: str, line: int) -> float:
    """Go durations: `5s`, `100ms`, `1m30s`."""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
    parts = re.findall(r"([0-9.]+)(ms|us|µs|ns|h|m|s)", text)
    if not parts or "".join(a + b for a, b in parts) != text:
        raise CorefileError(line, f"invalid duration {text!r}")
    return sum(float(a) * units[b] for a, b in parts)


def _int(text: str, line: int, what: str, lo: int = 0, hi: int = 2**31) -> int:
    if not text.isdigit() or not lo <= int(text) <= hi:
        raise CorefileError(line, f"{what}: invalid value {text!r}")
    return int(text)


def _argc(d: Directive, lo: int, hi: int) -> None:
    if not lo <= len(d.args) <= hi:
        raise CorefileError(d.line, f"Wrong argument count or unexpected line ending after '{d.name}'")


def _no_block(d: Directive) -> None:
    if d.block:
        raise CorefileError(d.block[0].line, f"unknown property '{d.block[0].name}'")


def _listen(text: str) -> str:
    """`:8080` -> `0.0.0.0:8080`; `localhost:9153` -> `127.0.0.1:9153`."""
    host, _, port = text.rpartition(":")
    if host in ("", "[::]"):
        host = "0.0.0.0"
    elif host == "localhost":
        host = "127.0.0.1"
    return f"{host}:{port}"


# ---------------------------------------------------------------- plugins


def _kubernetes(d: Directive, block_zones: tuple[str, ...]) -> KubeOptions:
    zones = tuple(normalize_zone(z, d.line) for z in d.args) or block_zones
    ttl, pods = DEFAULT_TTL, "disabled"
    fallthrough: tuple[str, ...] | None = None
    namespaces: set[str] = set()
    endpoint_pod_names = False
    kubeconfig: tuple[str, str] | None = None
    for p in d.block:
        if p.name == "pods":
            _argc(p, 1, 1)
            if p.args[0] not in ("disabled", "insecure", "verified"):
                raise CorefileError(p.line, f"wrong value for pods: {p.args[0]}, "
                                            "must be one of: disabled, verified, insecure")
            pods = p.args[0]
        elif p.name == "ttl":
            _argc(p, 1, 1)
            ttl = _int(p.args[0], p.line, "ttl", 0, 3600)
        elif p.name == "fallthrough":
            fallthrough = tuple(normalize_zone(z, p.line) for z in p.args)
        elif p.name == "namespaces":
            _argc(p, 1, 1 << 16)
            namespaces.update(p.args)
        elif p.name == "endpoint_pod_names":
            _argc(p, 0, 0)
            endpoint_pod_names = True
        elif p.name == "kubeconfig":
            _argc(p, 1, 2)
            kubeconfig = (p.args[0], p.args[1] if len(p.args) > 1 else "")
        elif p.name in ("noendpoints", "ignore", "labels", "namespace_labels", "endpoint", "tls",
                        "apiserver_qps", "apiserver_burst", "apiserver_max_inflight", "startup_timeout"):
            raise CorefileError(p.line, f"kubernetes option '{p.name}' is not supported by this server")
        else:
            raise CorefileError(p.line, f"unknown property '{p.name}'")
    return KubeOptions(zones=zones, ttl=ttl, pods=pods, fallthrough=fallthrough,
                       endpoint_pod_names=endpoint_pod_names, namespaces=frozenset(namespaces),
                       kubeconfig=kubeconfig)


def _forward(d: Directive) -> ForwardOptions:
    if len(d.args) < 2:
        raise CorefileError(d.line, "Wrong argument count or unexpected line ending after 'forward'")
    zone = normalize_zone(d.args[0], d.line)
    max_concurrent, expire, force_tcp, prefer_udp = 0, 10.0, False, False
    excepts: list[str] = []
    for p in d.block:
        if p.name == "max_concurrent":
            _argc(p, 1, 1)
            max_concurrent = _int(p.args[0], p.line, "max_concurrent", 0)
        elif p.name == "expire":
            _argc(p, 1, 1)
            expire = parse_duration(p.args[0], p.line)
        elif p.name == "force_tcp":
            force_tcp = True
        elif p.name == "prefer_udp":
            prefer_udp = True
        elif p.name == "except":
            excepts += [normalize_zone(z, p.line) for z in p.args]
        elif p.name in ("policy", "health_check", "max_fails", "tls", "tls_servername", "next", "failfast_all_unhealthy_upstreams",
                        "failover"):
            continue      # tuning kinns's forwarder has no use for; accepted as CoreDNS accepts them
        else:
            raise CorefileError(p.line, f"unknown property '{p.name}'")
    return ForwardOptions(zone, tuple(d.args[1:]), max_concurrent, expire, force_tcp, prefer_udp, tuple(excepts))


def _cache(d: Directive, block_zones: tuple[str, ...]) -> CacheOptions:
    ttl_args = [a for a in d.args if a.isdigit()]
    zones = tuple(normalize_zone(a, d.line) for a in d.args if not a.isdigit()) or block_zones
    success = denial = None
    if ttl_args:
        success = denial = _int(ttl_args[0], d.line, "cache TTL", 0)
    opts: dict[str, int] = {}
    dis_s: list[str] = []
    dis_d: list[str] = []
    for p in d.block:
        if p.name in ("success", "denial"):
            _argc(p, 1, 3)
            _int(p.args[0], p.line, p.name + " capacity", 0)   # kinns's answer cache is sized by the records
            if len(p.args) > 1:
                opts[p.name + "_ttl"] = _int(p.args[1], p.line, p.name + " TTL", 0)
            if len(p.args) > 2:
                opts["min_" + p.name + "_ttl"] = _int(p.args[2], p.line, p.name + " minimum TTL", 0)
        elif p.name == "disable":
            _argc(p, 1, 1 << 16)
            if p.args[0] not in ("success", "denial"):
                raise CorefileError(p.line, f"cache type for disable must be success or denial, got {p.args[0]!r}")
            z = [normalize_zone(a, p.line) for a in p.args[1:]] or list(zones)
            (dis_s if p.args[0] == "success" else dis_d).extend(z)
        elif p.name in ("prefetch", "serve_stale", "servfail", "keepttl"):
            continue
        else:
            raise CorefileError(p.line, f"unknown property '{p.name}'")
    base = CacheOptions()
    return CacheOptions(
        success_ttl=opts.get("success_ttl", success if success is not None else base.success_ttl),
        denial_ttl=opts.get("denial_ttl", denial if denial is not None else base.denial_ttl),
        min_success_ttl=opts.get("min_success_ttl", base.min_success_ttl),
        min_denial_ttl=opts.get("min_denial_ttl", base.min_denial_ttl),
        zones=zones, disable_success=tuple(dis_s), disable_denial=tuple(dis_d))


def _log(d: Directive) -> LogOptions:
    names: list[str] = []
    fmt = ""
    for a in d.args:
        if "{" in a or a in ("{common}", "{combined}"):
            fmt = a
        else:
            names.append(normalize_zone(a, d.line))
    classes: set[str] = set()
    for p in d.block:
        if p.name != "class":
            raise CorefileError(p.line, f"unknown property '{p.name}'")
        for c in p.args:
            if c not in ("all", "denial", "error", "success"):
                raise CorefileError(p.line, f"unknown class '{c}'")
            classes.add(c)
    return LogOptions(tuple(names) or (".",), frozenset(classes or {"all"}), fmt)


def _one_addr(d: Directive, default: str) -> str:
    _argc(d, 0, 1)
    addr = d.args[0] if d.args else default
    if ":" not in addr:
        raise CorefileError(d.line, f"invalid address {addr!r} for {d.name}")
    return _listen(addr)


def _block(keys: list[Token], directives: list[Directive], line: int) -> ServerBlock:
    addrs = [parse_address(k.text, k.line) for k in keys]
    ports = {p for _, p in addrs}
    if len(ports) != 1:
        raise CorefileError(line, "all keys of a server block must use the same port")
    zones = tuple(z for z, _ in addrs)
    b = ServerBlock(zones, ports.pop(), line, directives)
    seen: set[str] = set()
    for d in directives:
        if d.name in seen and d.name not in ("log",):
            raise CorefileError(d.line, f"plugin '{d.name}' is used twice in one server block")
        seen.add(d.name)
        if d.name == "kubernetes":
            b.kubernetes = _kubernetes(d, zones)
        elif d.name == "forward":
            b.forward = _forward(d)
        elif d.name == "cache":
            _argc(d, 0, 1 << 16)
            b.cache = _cache(d, zones)
        elif d.name == "log":
            b.log = _log(d)
        elif d.name == "loadbalance":
            _argc(d, 0, 1)
            if d.args and d.args[0] != "round_robin":
                raise CorefileError(d.line, f"unknown policy: {d.args[0]}")
            b.loadbalance = True
        elif d.name == "health":
            b.health = _one_addr(d, ":8080")
            for p in d.block:
                if p.name != "lameduck":
                    raise CorefileError(p.line, f"unknown property '{p.name}'")
                _argc(p, 1, 1)
                b.lameduck = parse_duration(p.args[0], p.line)
        elif d.name == "ready":
            _no_block(d)
            b.ready = _one_addr(d, ":8181")
        elif d.name == "prometheus":
            _no_block(d)
            b.prometheus = _one_addr(d, "localhost:9153")
        elif d.name == "reload":
            _argc(d, 0, 2)
            for a in d.args:
                parse_duration(a, d.line)
        elif d.name in ("errors", "loop", "debug"):
            continue
        elif d.name in KNOWN_UNSUPPORTED:
            raise CorefileError(d.line, f"plugin '{d.name}' is not supported by this server")
        else:
            raise CorefileError(d.line, f"Unknown directive '{d.name}'")
    return b


def parse(text: str) -> Corefile:
    """Parse and check a whole Corefile (raises CorefileError naming the line)."""
    blocks = [_block(keys, directives, line) for keys, directives, line in parse_structure(text)]
    seen: dict[tuple[str, int], int] = {}
    for b in blocks:
        for z in b.zones:
            if (z, b.port) in seen:
                raise CorefileError(b.line, f"cannot serve dns://{z}:{b.port} - it is already defined "
                                            f"(line {seen[(z, b.port)]})")
            seen[(z, b.port)] = b.line
    return Corefile(blocks)


KUBEADM_COREFILE = """\
.:53 {
    errors
    health {
       lameduck 5s
    }
    ready
    kubernetes cluster.local in-addr.arpa ip6.arpa {
       pods insecure
       fallthrough in-addr.arpa ip6.arpa
       ttl 30
    }
    prometheus :9153
    forward . /etc/resolv.conf {
       max_concurrent 1000
    }
    cache 30
    loop
    reload
    loadbalance
}
"""
