"""A routing `Plan` as nginx.conf text: what ingress-nginx's template makes, minus Lua.

The shape follows ingress-nginx's nginx.tmpl so a user who has read one
recognises the other: upstreams named `<namespace>-<service>-<port>`
holding the pod endpoints themselves (kept-alive connections), one
`server` per host listening on 80 and 443, with the host's certificate when
it has one so SNI picks it (others complete the handshake with the default
server's self-signed certificate), a default server `_` that answers what
no host claims, and the headers upstream sets (`X-Real-IP`, `X-Forwarded-For`
= the client address, `X-Forwarded-Host/Port/Proto/Scheme`, `X-Request-ID`,
`X-Original-URI`) plus `Upgrade`/`Connection` so WebSockets pass through.

Locations carry the precedence: an Exact path is `location = /p`, a
Prefix `/p` is `location = /p` and `location ^~ /p/` (element-wise: nginx's
longest-prefix rule over strings ending in `/` is the spec's longest-path
rule over elements), and `/` takes what nothing else matches.  A location
whose backend is missing or has no ready endpoint answers 503; nothing at
all, 404.  Failed connections to one endpoint are retried on the next
(`proxy_next_upstream error timeout`), which is what keeps a rolling
update free of errors while an endpoint is leaving.

An HTTPRoute's extras use the same locations.  Routes with a match on
method, headers or query parameters guard the location's answer: each is
one `map` at http level (the request's method, headers and arguments, one
per line, against a case-sensitive regex) and an `if` that hands the
request to a named location `@rN` holding that route's answer (nginx's
`error_page 418 = @rN` idiom, the only safe thing to do in an `if`).  A
weighted split is a `split_clients` on `$request_id` choosing among upstream
names (or `=500`/`=503` for a part nginx answers itself); a header added to
an existing one is a `map` too.  Request header changes restate the whole
`proxy_set_header` list in their location, because nginx inherits it only
into locations that set none.

No listening socket uses `reuseport`: with it, a reload drops the
connections queued on the old workers' sockets.  The status server on
127.0.0.1 (`/nginx_status`, `/configuration/checksum`) is for the
controller's health check and for telling which config is live.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from .routing import DEFAULT_CERT, DEFAULT_SERVER, GATEWAY_WILDCARD, Filters, Location, Match, Plan, Server, Share, \
    Upstream

CHECKSUM_MARK = "@@CHECKSUM@@"
# What every proxied request carries (ingress-nginx's set), in order.
PROXY_HEADERS: tuple[tuple[str, str], ...] = (
    ("Host", "$host"), ("X-Request-ID", "$request_id"), ("X-Real-IP", "$remote_addr"),
    ("X-Forwarded-For", "$remote_addr"), ("X-Forwarded-Host", "$host"), ("X-Forwarded-Port", "$server_port"),
    ("X-Forwarded-Proto", "$scheme"), ("X-Forwarded-Scheme", "$scheme"), ("X-Scheme", "$scheme"),
    ("X-Original-URI", "$request_uri"), ("Upgrade", "$http_upgrade"), ("Connection", "$connection_upgrade"))


@dataclass(frozen=True)
class Settings:
    """Where files live and the knobs ingress-nginx's ConfigMap would hold."""

    http_port: int = 80
    https_port: int = 443
    status_port: int = 10246
    listen_address: str = ""                       # "" = every address (the pod's)
    ssl_dir: str = "/etc/ingress-controller/ssl"
    temp_dir: str = "/tmp/nginx"
    worker_processes: str = "auto"
    access_log: bool = True
    upstream_keepalive: int = 320
    http2: bool = True


def quote(text: str) -> str:
    """An nginx string literal: double quotes; `"`, `\\` and control characters escaped."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + escaped.replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t") + '"'


def _comment(text: str) -> str:
    """Text safe on a `#` line (paths may hold anything the API accepts)."""
    return "".join(ch if ch.isprintable() else "?" for ch in text)


def _listen(s: Settings, port: int, extra: str = "") -> str:
    addr = f"{s.listen_address}:{port}" if s.listen_address else str(port)
    return f"listen {addr}{extra};"


def server_name(name: str) -> str:
    """`*.foo.com` as a regex of exactly one label: nginx's own `*.` would match several."""
    if name == DEFAULT_SERVER:
        return "_"
    if name.startswith(GATEWAY_WILDCARD):
        return name[1:]            # nginx's own `*.` covers any number of labels, as the Gateway API's
    if name.startswith("*."):
        return quote("~^[^.]+" + name[1:].replace(".", "\\.") + "$")
    return name


def _var_name(text: str) -> str:
    """A header or argument name as nginx spells it in `$http_…`/`$arg_…`."""
    return re.sub(r"[^a-z0-9_]", "_", text.lower().replace("-", "_"))


class _HttpExtras:
    """The http-level `map`s and `split_clients` the servers' locations refer to, each once."""

    def __init__(self) -> None:
        self.blocks: dict[str, list[str]] = {}

    def _add(self, prefix: str, key: str, block: list[str]) -> str:
        name = f"$kinns_{prefix}_{hashlib.sha256(key.encode()).hexdigest()[:12]}"
        self.blocks.setdefault(name, [line.replace("@@VAR@@", name) for line in block])
        return name

    def match(self, m: Match) -> str:
        """A variable that is 1 when a request meets `m`."""
        sources = ["$request_method"] * bool(m.method) + [f"$http_{_var_name(k)}" for k, _ in m.headers] \
            + [f"$arg_{_var_name(k)}" for k, _ in m.query]
        wants = [m.method] * bool(m.method) + [v for _, v in m.headers] + [v for _, v in m.query]
        regex = "~^" + "\n".join(re.escape(w) for w in wants) + "$"
        return self._add("match", repr(m), [f"map {quote(chr(10).join(sources))} @@VAR@@ {{",
                                            f"    {quote(regex)} 1;", "    default 0;", "}"])

    def split(self, shares: tuple[Share, ...]) -> str:
        """A variable naming each request's upstream (or `=status`) by the shares' weights."""
        total = sum(s.weight for s in shares)
        lines = ['split_clients "$request_id" @@VAR@@ {']
        for i, sh in enumerate(shares):
            target = sh.upstream or f"={sh.status}"
            pct = "*" if i == len(shares) - 1 else f"{100 * sh.weight / total:.2f}%"
            lines.append(f"    {pct} {quote(target)};")
        return self._add("split", repr(shares), lines + ["}"])

    def appended(self, header: str, value: str) -> str:
        """The request's `header` with `value` appended (just `value` when it had none)."""
        src = f"$http_{_var_name(header)}"
        return self._add("add", f"{header}\0{value}", [f"map {src} @@VAR@@ {{", f'    "" {quote(value)};',
                                                       f"    default {quote(src + ',' + value)};", "}"])

    def lines(self) -> list[str]:
        return [line for block in self.blocks.values() for line in block]


def _headers(f: Filters, extras: _HttpExtras) -> list[str]:
    """The whole proxy_set_header list with a route's RequestHeaderModifier (and URLRewrite host) applied."""
    headers = {k.lower(): (k, v) for k, v in PROXY_HEADERS}
    if f.rewrite_host:
        headers["host"] = ("Host", f.rewrite_host)
    for k, v in f.set_headers:
        headers[k.lower()] = (k, v)
    for k, v in f.add_headers:
        headers[k.lower()] = (k, extras.appended(k, v))
    for k in f.remove_headers:
        headers[k.lower()] = (k, "")
    return [f"proxy_set_header {k} {quote(v)};" for k, v in headers.values()]


def _rewrite(loc: Location, f: Filters) -> list[str]:
    """URLRewrite as nginx rewrites (the arguments follow on their own)."""
    if f.rewrite_full is not None:
        return [f"rewrite ^ {quote(f.rewrite_full)} break;"]
    if f.rewrite_prefix is None or loc.route is None:
        return []
    new, prefix = f.rewrite_prefix.rstrip("/"), loc.route.key
    if not prefix:
        return [f"rewrite ^(.*)$ {quote(new + '$1')} break;"]
    return [f"rewrite {quote('^' + re.escape(prefix) + '$')} {quote(new or '/')} break;",
            f"rewrite {quote('^' + re.escape(prefix) + '(/.*)$')} {quote(new + '$1')} break;"]


def _redirect(f: Filters) -> str:
    """RequestRedirect's Location: unset parts from the request, no port for the scheme's own."""
    r = f.redirect
    assert r is not None
    scheme = r.scheme or "$scheme"
    default = {"http": 80, "https": 443}.get(r.scheme)
    port = f":{r.port}" if r.port and r.port != default else ""
    host = r.hostname or "$host"
    return f"return {r.status} {quote(scheme + '://' + host + port + '$request_uri')};"


def _action(loc: Location, extras: _HttpExtras) -> list[str]:
    """The directives answering one route's requests, in a location or a named location."""
    route = loc.route
    name = route.backend.upstream if route is not None and route.backend is not None else (
        loc.upstream or "upstream-default-backend")
    body = [f"set $proxy_upstream_name {quote(name)};"]
    f = route.filters if route is not None else Filters()
    if f.redirect is not None:
        return body + [_redirect(f)]
    if loc.upstream is None and not loc.split:
        return body + [f"return {loc.status};"]
    body += _rewrite(loc, f)
    if f.changes_headers:
        body += _headers(f, extras)
    if not loc.split:
        return body + [f"proxy_pass http://{loc.upstream};"]
    var = extras.split(loc.split)
    body += [f'if ({var} = "={st}") {{ return {st}; }}' for st in sorted({s.status for s in loc.split if s.status})]
    return body + [f"set $proxy_upstream_name {var};", f"proxy_pass http://{var};"]


def _where(loc: Location) -> str:
    route = loc.route
    if route is None:
        return "# no rule matches"
    if not route.path:
        return f"# {route.ingress} defaultBackend"
    what = f"{route.kind} {route.ingress}" if route.kind != "Ingress" else route.ingress
    return "# " + _comment(f"{what} {route.describe()}")


def _location(loc: Location, extras: _HttpExtras, named: list[list[str]]) -> list[str]:
    """A location; its guarded routes' answers go to `named` as `@rN` locations."""
    if loc.exact:
        head = f"location = {quote(loc.path)} {{"
    elif loc.path == "/":
        head = "location / {"
    else:
        head = f"location ^~ {quote(loc.path)} {{"
    body: list[str] = []
    for g in loc.guarded:
        assert g.route is not None
        label = f"@r{len(named)}"
        named.append([f"    {_where(g)}", f"    location {label} {{",
                      *("        " + b for b in _action(g, extras)), "    }"])
        body.append(f"if ({extras.match(g.route.match)}) {{ error_page 418 = {label}; return 418; }}")
    body += _action(loc, extras)
    return [f"    {_where(loc)}", f"    {head}", *("        " + b for b in body), "    }"]


def _server(srv: Server, s: Settings, extras: _HttpExtras) -> list[str]:
    """A host's server.  Only the default server and hosts with a certificate of
    their own carry TLS settings: every `ssl_certificate` costs nginx an SSL
    context (milliseconds per server on each reload), while a host on the same
    443 socket without one completes the handshake with the default server's
    certificate and is still routed by its Host header."""
    default = srv.name == DEFAULT_SERVER
    own_cert = default or srv.certificate != DEFAULT_CERT
    flags = (" ssl" + (" http2" if s.http2 else "")) if own_cert else ""
    tail = " default_server backlog=4096" if default else ""
    lines = [
        "server {",
        f"    server_name {server_name(srv.name)};",
        f"    {_listen(s, s.http_port, tail)}",
        f"    {_listen(s, s.https_port, flags + tail)}",
    ]
    if own_cert:
        cert = f"{s.ssl_dir}/{srv.certificate}"
        lines += [f"    ssl_certificate {quote(cert)};", f"    ssl_certificate_key {quote(cert)};"]
    lines.append('    set $proxy_upstream_name "-";')
    named: list[list[str]] = []
    for loc in srv.locations:
        lines += _location(loc, extras, named)
    for block in named:
        lines += block
    return lines + ["}"]


def _upstream(up: Upstream, s: Settings) -> list[str]:
    lines = [f"upstream {up.name} {{"]
    lines += [f"    server {ep} max_fails=0;" for ep in up.endpoints]
    if s.upstream_keepalive:
        lines += [f"    keepalive {s.upstream_keepalive};", "    keepalive_timeout 60s;",
                  "    keepalive_requests 10000;"]
    return lines + ["}"]


def _head(s: Settings) -> list[str]:
    t = s.temp_dir
    log = ("access_log /dev/stdout upstreaminfo buffer=16k flush=1s;" if s.access_log else "access_log off;")
    return f"""# nginx.conf written by kinns' ingress controller; regenerated on every change.
worker_processes {s.worker_processes};
pid {t}/nginx.pid;
error_log stderr notice;
worker_shutdown_timeout 240s;

events {{
    worker_connections 16384;
    multi_accept on;
    use epoll;
}}

http {{
    client_body_temp_path {t}/client-body;
    proxy_temp_path {t}/proxy;
    fastcgi_temp_path {t}/fastcgi;
    uwsgi_temp_path {t}/uwsgi;
    scgi_temp_path {t}/scgi;
    default_type text/html;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 75s;
    keepalive_requests 1000;
    server_tokens off;
    client_max_body_size 1m;
    server_names_hash_max_size 8192;
    server_names_hash_bucket_size 256;
    variables_hash_bucket_size 256;
    map_hash_bucket_size 64;

    log_format upstreaminfo '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent '
                            '"$http_referer" "$http_user_agent" $request_length $request_time '
                            '[$proxy_upstream_name] [] $upstream_addr $upstream_response_length '
                            '$upstream_response_time $upstream_status $request_id';
    {log}

    map $http_upgrade $connection_upgrade {{
        default upgrade;
        '' '';
    }}

    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache shared:SSL:10m;
    ssl_session_timeout 10m;
    ssl_prefer_server_ciphers on;

    proxy_http_version 1.1;
@@HEADERS@@
    proxy_connect_timeout 5s;
    proxy_send_timeout 60s;
    proxy_read_timeout 60s;
    proxy_buffering off;
    proxy_next_upstream error timeout;
    proxy_next_upstream_tries 3;
    proxy_redirect off;
""".replace("@@HEADERS@@", "\n".join(f"    proxy_set_header {k} {v};" for k, v in PROXY_HEADERS)).splitlines()


def render(plan: Plan, s: Settings = Settings()) -> str:
    """The complete nginx.conf for `plan`; its checksum (of everything else) is served
    at /configuration/checksum on the status port."""
    lines = _head(s)
    extras = _HttpExtras()
    servers: list[str] = []
    for srv in plan.servers:
        servers.append("")
        servers += ["    " + x for x in _server(srv, s, extras)]
    lines += ["    " + x for x in extras.lines()]
    for up in plan.upstreams:
        lines += ["    " + x for x in _upstream(up, s)]
    lines += servers
    lines += [
        "",
        "    server {",
        f"        listen 127.0.0.1:{s.status_port};",
        "        access_log off;",
        '        set $proxy_upstream_name "-";',
        "        location = /nginx_status { stub_status on; }",
        f'        location = /configuration/checksum {{ default_type text/plain; return 200 "{CHECKSUM_MARK}"; }}',
        "        location / { return 404; }",
        "    }",
        "}",
        "",
    ]
    text = "\n".join(lines)
    return text.replace(CHECKSUM_MARK, checksum(text))


def checksum(text: str) -> str:
    """sha256 of a config with its checksum blanked (so it can name itself)."""
    blank = re.sub(r'(/configuration/checksum \{ default_type text/plain; return 200 ")[0-9a-f]*(")',
                   r"\1" + CHECKSUM_MARK + r"\2", text)
    return hashlib.sha256(blank.encode()).hexdigest()
