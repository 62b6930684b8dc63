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

No listening socket uses `reuseport`: with it, a reload drops the
connections queued on the old workers' sockets.  The status server on
127.0.0.1 (`/nginx_status`, `/configuration/checksum`) is for the
controller's health check and for telling which config is live.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from .routing import DEFAULT_CERT, DEFAULT_SERVER, Location, Plan, Server, Upstream

CHECKSUM_MARK = "@@CHECKSUM@@"


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
    if name.startswith("*."):
        return quote("~^[^.]+" + name[1:].replace(".", "\\.") + "$")
    return name


def _location(loc: Location) -> list[str]:
    if loc.exact:
        head = f"location = {quote(loc.path)} {{"
    elif loc.path == "/":
        head = "location / {"
    else:
        head = f"location ^~ {quote(loc.path)} {{"
    route = loc.route
    where = "# " + _comment(f"{route.ingress} {route.describe()}") if route is not None and route.path else (
        f"# {route.ingress} defaultBackend" if route is not None else "# no rule matches")
    name = route.backend.upstream if route is not None and route.backend is not None else "upstream-default-backend"
    body = [f"    set $proxy_upstream_name {quote(name)};"]
    if loc.upstream is None:
        body.append(f"    return {loc.status};")
    else:
        body.append(f"    proxy_pass http://{loc.upstream};")
    return [f"    {where}", f"    {head}", *("    " + b for b in body), "    }"]


def _server(srv: Server, s: Settings) -> list[str]:
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
    for loc in srv.locations:
        lines += _location(loc)
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
    proxy_set_header Host $host;
    proxy_set_header X-Request-ID $request_id;
    proxy_set_header X-Real-IP $remote_addr;
    proxy_set_header X-Forwarded-For $remote_addr;
    proxy_set_header X-Forwarded-Host $host;
    proxy_set_header X-Forwarded-Port $server_port;
    proxy_set_header X-Forwarded-Proto $scheme;
    proxy_set_header X-Forwarded-Scheme $scheme;
    proxy_set_header X-Scheme $scheme;
    proxy_set_header X-Original-URI $request_uri;
    proxy_set_header Upgrade $http_upgrade;
    proxy_set_header Connection $connection_upgrade;
    proxy_connect_timeout 5s;
    proxy_send_timeout 60s;
    proxy_read_timeout 60s;
    proxy_buffering off;
    proxy_next_upstream error timeout;
    proxy_next_upstream_tries 3;
    proxy_redirect off;
""".splitlines()


def render(plan: Plan, s: Settings = Settings()) -> str:
    """The complete nginx.conf for `plan`; its checksum (of everything else) is served
    at /configuration/checksum on the status port."""
    lines = _head(s)
    for up in plan.upstreams:
        lines += ["    " + x for x in _upstream(up, s)]
    for srv in plan.servers:
        lines.append("")
        lines += ["    " + x for x in _server(srv, s)]
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
