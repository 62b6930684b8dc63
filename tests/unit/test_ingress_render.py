"""The nginx.conf a plan renders to: the locations that carry the spec's precedence,
one-label wildcard server names, upstreams of pod endpoints, 503/404 answers,
TLS only where a certificate is the host's own, quoting, and the checksum that
names the configuration.  (tests/integration runs the same text in real nginx.)"""

from __future__ import annotations

import re

from kinns.ingress import routing
from kinns.ingress.nginxconf import Settings, checksum, quote, render, server_name
from tests.ingress_cases import backend, ingress, rule
from tests.unit.test_ingress_routing import eps, make_cert, snapshot, tls_secret


def server_block(text: str, name: str) -> str:
    start = text.index(f"server_name {name};")
    return text[start:text.index("\n    }\n", start)]


def test_prefix_exact_and_fallback_locations() -> None:
    ing = ingress("web", [rule("a.com", [("Prefix", "/api", backend("web")), ("Exact", "/api", backend("other")),
                                         ("Exact", "/docs/", backend("web")), ("Prefix", "/", backend("web"))])])
    text = render(routing.build(snapshot([ing], services={"web": [80], "other": [80]},
                                         slices=[eps("web", "", 8080, ["10.244.1.5"]),
                                                 eps("other", "", 9090, ["10.244.2.6"])])))
    a = server_block(text, "a.com")
    heads = re.findall(r"location (.*) \{", a)
    assert heads == ['= "/api"', '= "/docs"', '= "/docs/"', "/", '^~ "/api/"']
    assert 'location = "/api" {\n            set $proxy_upstream_name "default-other-80";\n' \
           '            proxy_pass http://default-other-80;' in a          # Exact wins its own path
    # `/docs` is claimed by what the spec picks for it (Prefix `/`), or nginx would answer 301.
    assert 'location = "/docs" {\n            set $proxy_upstream_name "default-web-80";' in a
    assert "upstream default-web-80 {\n        server 10.244.1.5:8080 max_fails=0;\n        keepalive 320;" in text


def test_wildcards_are_one_label_and_missing_backends_answer_503() -> None:
    ing = ingress("w", [rule("*.foo.com", [("Prefix", "/", backend("missing"))])])
    text = render(routing.build(snapshot([ing])))
    assert server_name("*.foo.com") == '"~^[^.]+\\\\.foo\\\\.com$"'
    block = server_block(text, server_name("*.foo.com"))
    assert "return 503;" in block and "proxy_pass" not in block
    default = server_block(text, "_")
    assert "listen 80 default_server backlog=4096;" in default and "return 404;" in default


def test_tls_settings_only_where_the_certificate_is_the_hosts_own() -> None:
    secret = tls_secret("a", *make_cert("a.com"))
    ing = ingress("t", [rule(h, [("Prefix", "/", backend("web"))]) for h in ("a.com", "b.com")],
                  tls=[{"hosts": ["a.com"], "secretName": "a"}])
    s = Settings(ssl_dir="/ssl")
    text = render(routing.build(snapshot([ing], services={"web": [80]}, secrets={"default/a": secret})), s)
    a, b, default = server_block(text, "a.com"), server_block(text, "b.com"), server_block(text, "_")
    assert "listen 443 ssl http2;" in a and 'ssl_certificate "/ssl/default-a.pem";' in a
    assert "listen 443;" in b and "ssl_certificate" not in b          # the default server's certificate
    assert "listen 443 ssl http2 default_server backlog=4096;" in default
    assert 'ssl_certificate "/ssl/default-fake-certificate.pem";' in default


def test_headers_quoting_and_checksum() -> None:
    ing = ingress("q", [rule("a.com", [("Exact", '/we"ird\\path', backend("web"))])])
    text = render(routing.build(snapshot([ing], services={"web": [80]},
                                         slices=[eps("web", "", 80, ["10.0.0.1"])])), Settings(access_log=False))
    assert 'location = "/we\\"ird\\\\path" {' in text
    assert quote("a\nb") == '"a\\nb"'
    for header in ("X-Real-IP $remote_addr", "X-Forwarded-For $remote_addr", "X-Forwarded-Proto $scheme",
                   "Upgrade $http_upgrade", "Connection $connection_upgrade"):
        assert f"proxy_set_header {header};" in text
    assert "access_log off;" in text and "reuseport" not in text
    served = re.search(r'/configuration/checksum \{ default_type text/plain; return 200 "([0-9a-f]+)"', text)
    assert served and served.group(1) == checksum(text)
    assert checksum(text.replace("keepalive 320", "keepalive 32")) != served.group(1)
