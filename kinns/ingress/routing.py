"""What the Ingresses say, as data: the routing model and the plan nginx is rendered from.

The semantics (Kubernetes docs, concepts/services-networking/ingress, and
ingress-nginx where the spec leaves room):

- hosts: a rule's `host` is matched exactly (case-insensitively, without the
  port); `*.foo.com` matches exactly one label (`bar.foo.com`, not
  `baz.bar.foo.com` nor `foo.com`); an exact host beats a wildcard.  A
  request whose host has rules is routed by those rules only; other
  requests by the rules without a host (ingress-nginx's servers);
- paths: `Exact` matches the path as written, case-sensitively (`/foo` is
  not `/foo/`); `Prefix` matches element-wise on `/`, a trailing slash
  ignored (`/aaa/bb` does not match `/aaa/bbb`, `/aaa/bbb` matches
  `/aaa/bbb/ccc`); `ImplementationSpecific` is treated as `Prefix`, which
  is what ingress-nginx does without its regex annotation.  The longest
  matching path wins and `Exact` beats `Prefix` on a tie;
- nothing matches: the host's Ingress `defaultBackend`, else the oldest
  Ingress's `defaultBackend`, else a 404 from the controller;
- conflicts: two Ingresses claiming the same host, path and kind: the
  oldest (creationTimestamp, then namespace/name) wins, and the other gets
  a Warning Event `Conflict` naming the winner;
- backends: a Service port by number or by name, resolved through the
  Service to the EndpointSlices' port of the same name, so the upstream is
  the ready pod endpoints themselves (as ingress-nginx routes).  A missing
  Service or port answers 503 and raises a Warning Event; a Service without
  ready endpoints answers 503 quietly (it is scaling, not misconfigured);
- TLS: each `tls` entry's hosts (or, without hosts, the Ingress's rule
  hosts) get its Secret's certificate when it is a certificate and covers
  the host; otherwise the host is served with the default certificate and
  an Event says why.  The oldest Ingress's entry wins for a host.

`build` makes the `Plan`; `select` answers one request with the same rules
and is the oracle unit and integration tests hold nginx to.

The Gateway API's HTTPRoutes (kinns/ingress/gateway.py) are translated into
the same `Route`s, with what Ingress has no words for: a `Match` on method,
headers and query parameters, weighted backends (`split`) and `Filters`
(request header changes, a redirect, a URL rewrite).  Their precedence is
the HTTPRoute spec's, which for plain paths is the Ingress order: Exact,
then the longest prefix, then a method match, the most header matches, the
most query matches, then the older route (routes are listed oldest
first).  Gateway wildcards (`*.example.com`, any number of labels, as the
Gateway API says) are kept as `**.example.com` so they stay apart from an
Ingress's one-label wildcards.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from .certs import Certificate, InvalidCertificate, covers, parse_secret

Obj = dict[str, Any]

EXACT, PREFIX, IMPL = "Exact", "Prefix", "ImplementationSpecific"
DEFAULT_SERVER = "_"
DEFAULT_CERT = "default-fake-certificate.pem"
GATEWAY_WILDCARD = "**."
CLASS_ANNOTATION = "kubernetes.io/ingress.class"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"


def _d(value: Any) -> Obj:
    return value if isinstance(value, dict) else {}


def _dicts(value: Any) -> list[Obj]:
    return [x for x in value if isinstance(x, dict)] if isinstance(value, list) else []


def ingress_key(ing: Obj) -> str:
    meta = _d(ing.get("metadata"))
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}"


def age_order(ing: Obj) -> tuple[str, str]:
    """Oldest first: creationTimestamp, then namespace/name (upstream's tie-break)."""
    return (str(_d(ing.get("metadata")).get("creationTimestamp") or ""), ingress_key(ing))


# ---------------------------------------------------------------- matching

@dataclass(frozen=True)
class ServiceRef:
    namespace: str
    name: str
    port: int | str

    @property
    def upstream(self) -> str:
        """ingress-nginx's upstream name: `<namespace>-<service>-<port>`."""
        return f"{self.namespace}-{self.name}-{self.port}"

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}:{self.port}"


@dataclass(frozen=True)
class Match:
    """Conditions beyond host and path (an HTTPRoute match's): all must hold."""

    method: str = ""
    headers: tuple[tuple[str, str], ...] = ()      # (lower-case name, exact value)
    query: tuple[tuple[str, str], ...] = ()        # (name, exact value)

    @property
    def rank(self) -> tuple[bool, int, int]:
        """The spec's order after the path: a method, then more headers, then more query params."""
        return (bool(self.method), len(self.headers), len(self.query))

    def holds(self, method: str, headers: Mapping[str, str], query: Mapping[str, str]) -> bool:
        lower = {k.lower(): v for k, v in headers.items()}
        return ((not self.method or self.method == method.upper())
                and all(lower.get(k) == v for k, v in self.headers)
                and all(query.get(k) == v for k, v in self.query))


@dataclass(frozen=True)
class Redirect:
    """RequestRedirect: fields left empty keep the request's (port 0: the scheme's own)."""

    scheme: str = ""
    hostname: str = ""
    port: int = 0
    status: int = 302


@dataclass(frozen=True)
class Filters:
    """What an HTTPRoute rule does to a request on its way (or instead of it)."""

    set_headers: tuple[tuple[str, str], ...] = ()
    add_headers: tuple[tuple[str, str], ...] = ()
    remove_headers: tuple[str, ...] = ()
    redirect: Redirect | None = None
    rewrite_full: str | None = None                # URLRewrite ReplaceFullPath
    rewrite_prefix: str | None = None              # URLRewrite ReplacePrefixMatch
    rewrite_host: str = ""

    @property
    def changes_headers(self) -> bool:
        return bool(self.set_headers or self.add_headers or self.remove_headers or self.rewrite_host)


@dataclass(frozen=True)
class Weighted:
    """One backendRef: a Service (None: it does not resolve, answered 500) and its weight."""

    ref: ServiceRef | None
    weight: int


@dataclass(frozen=True)
class Route:
    """One `rules[].http.paths[]` entry (or a defaultBackend, with `path` None), or one
    match of an HTTPRoute rule on one hostname (`kind` "HTTPRoute", backends in `split`)."""

    host: str
    path: str
    path_type: str
    backend: ServiceRef | None
    ingress: str                                   # the owner: namespace/name
    match: Match = Match()
    filters: Filters = Filters()
    split: tuple[Weighted, ...] = ()
    kind: str = "Ingress"

    @property
    def exact(self) -> bool:
        return self.path_type == EXACT

    @property
    def key(self) -> str:
        """What the path matches on: as written for Exact, without trailing
        slashes for Prefix (`/` is the empty prefix, which matches everything)."""
        return self.path if self.exact else self.path.rstrip("/")

    @property
    def rank(self) -> tuple[int, bool, tuple[bool, int, int]]:
        """Higher wins: the longest path (Exact on a tie), then the match's own rank."""
        return (len(self.key), self.exact, self.match.rank)

    def matches(self, path: str) -> bool:
        if self.exact:
            return path == self.path
        prefix = self.key
        return not prefix or path == prefix or path.startswith(prefix + "/")

    def describe(self) -> str:
        return f"{self.host or '*'}{self.path or '/'} ({self.path_type})"


def normalize_host(host: str) -> str:
    """The Host header as nginx picks a server: lower case, no port, no trailing dot."""
    host = host.strip().lower()
    if host.startswith("["):
        host = host.split("]", 1)[0] + "]"
    elif host.count(":") == 1:
        host = host.split(":", 1)[0]
    return host.rstrip(".")


def host_matches(pattern: str, host: str) -> bool:
    """A rule host against a request host; `*.foo.com` covers exactly one label."""
    if not pattern:
        return True
    host = normalize_host(host)
    if pattern.startswith(GATEWAY_WILDCARD):
        suffix = pattern[len(GATEWAY_WILDCARD) - 1:]
        return host.endswith(suffix) and len(host) > len(suffix)
    if pattern.startswith("*."):
        label, _, rest = host.partition(".")
        return bool(label) and rest == pattern[2:]
    return host == pattern


def server_for(hosts: Iterable[str], host: str) -> str:
    """The server a request lands on, as nginx picks it: its exact host, else the longest
    Gateway wildcard that covers it, else an Ingress wildcard, else the default."""
    host = normalize_host(host)
    names = set(hosts)
    if host in names:
        return host
    for name in sorted((n for n in names if n.startswith(GATEWAY_WILDCARD)), key=len, reverse=True):
        if host_matches(name, host):
            return name
    for name in sorted(names):
        if name.startswith("*.") and host_matches(name, host):
            return name
    return DEFAULT_SERVER


def best(routes: Iterable[Route], path: str, method: str = "GET", headers: Mapping[str, str] | None = None,
         query: Mapping[str, str] | None = None) -> Route | None:
    """The winner among routes for a request: longest key, Exact on a tie, then
    the match's rank; the earliest listed (oldest owner) among equals."""
    winner: Route | None = None
    for r in routes:
        if (r.matches(path) and r.match.holds(method, headers or {}, query or {})
                and (winner is None or r.rank > winner.rank)):
            winner = r
    return winner


def routes_of(ing: Obj) -> list[Route]:
    """The paths of one Ingress, in spec order."""
    key = ingress_key(ing)
    ns = key.split("/", 1)[0]
    out: list[Route] = []
    for rule in _dicts(_d(ing.get("spec")).get("rules")):
        host = str(rule.get("host") or "").lower()
        for p in _dicts(_d(rule.get("http")).get("paths")):
            out.append(Route(host, str(p.get("path") or "/"), str(p.get("pathType") or IMPL),
                             service_ref(ns, _d(p.get("backend"))), key))
    return out


def service_ref(namespace: str, backend: Obj) -> ServiceRef | None:
    svc = _d(backend.get("service"))
    if not svc.get("name"):
        return None   # a resource backend: nothing kinns can proxy to
    port = _d(svc.get("port"))
    return ServiceRef(namespace, str(svc["name"]), port.get("name") or int(port.get("number") or 0))


def default_backend(ing: Obj) -> Route | None:
    backend = _d(ing.get("spec")).get("defaultBackend")
    if not isinstance(backend, dict):
        return None
    key = ingress_key(ing)
    return Route("", "", PREFIX, service_ref(key.split("/", 1)[0], backend), key)


def select(ingresses: Sequence[Obj], host: str, path: str, *, routes: Sequence[Route] = (), method: str = "GET",
           headers: Mapping[str, str] | None = None, query: Mapping[str, str] | None = None) -> Route | None:
    """The route that answers `host` + `path` (None: the controller's 404).

    The same rules as `build`, for one request: the oracle tests compare
    nginx's answers with.  Conflicting duplicates resolve to the oldest
    Ingress because routes are considered oldest first; `routes` are
    translated HTTPRoutes (oldest first), after the Ingresses' own.
    """
    ordered = sorted(ingresses, key=age_order)
    per_ingress = [(ing, routes_of(ing)) for ing in ordered]
    every = [r for _ing, rs in per_ingress for r in rs] + list(routes)
    server = server_for({r.host for r in every if r.host}, host)
    hit = best([r for r in every if (r.host or DEFAULT_SERVER) == server], path, method, headers, query)
    if hit is not None:
        return hit
    by_host, fallback = fallbacks(per_ingress)
    return by_host.get(server, fallback)


def fallbacks(per_ingress: Sequence[tuple[Obj, list[Route]]]) -> tuple[dict[str, Route], Route | None]:
    """What answers when no path matches: per host, the defaultBackend of the
    oldest Ingress with rules for that host that has one; everywhere else the
    oldest Ingress's defaultBackend (None: the controller's 404)."""
    by_host: dict[str, Route] = {}
    fallback: Route | None = None
    for ing, routes in per_ingress:   # oldest first
        d = default_backend(ing)
        if d is None:
            continue
        fallback = fallback or d
        for r in routes:
            if r.host:
                by_host.setdefault(r.host, d)
    return by_host, fallback


# ---------------------------------------------------------------- the plan

@dataclass(frozen=True)
class Upstream:
    name: str
    endpoints: tuple[str, ...]     # "ip:port", "[v6]:port"


@dataclass(frozen=True)
class Share:
    """One weighted part of a split: an upstream, or a status nginx answers itself."""

    upstream: str | None
    status: int
    weight: int


@dataclass(frozen=True)
class Location:
    """An nginx location: `= path` (exact) or `^~ path` / `/` (prefix).

    `route` answers what the `guarded` locations (routes with a `Match`,
    best first, tried in turn) leave; `split` shares the requests between
    several backends by weight."""

    path: str
    exact: bool
    route: Route | None
    upstream: str | None           # None: answer `status` from nginx
    status: int = 0
    split: tuple[Share, ...] = ()
    guarded: tuple[Location, ...] = ()


@dataclass
class Server:
    name: str                      # a host, `*.foo.com`, or "_" for the default server
    locations: list[Location] = field(default_factory=list)
    certificate: str = DEFAULT_CERT


@dataclass(frozen=True)
class Event:
    ingress: str                   # namespace/name
    type: str
    reason: str
    message: str


@dataclass
class Plan:
    servers: list[Server]
    upstreams: list[Upstream]
    certificates: dict[str, str]   # file name → PEM
    events: list[Event]


@dataclass(frozen=True)
class Snapshot:
    """The API objects a plan is made of (the controller's informer caches)."""

    ingresses: Sequence[Obj]
    services: Mapping[str, Obj]                 # "ns/name" → Service
    slices: Callable[[str], list[Obj]]          # "ns/name" → its EndpointSlices
    secrets: Mapping[str, Obj]                  # "ns/name" → Secret
    routes: Sequence[Route] = ()                # translated HTTPRoutes, oldest first
    certificates: Mapping[str, tuple[str, Certificate]] = field(default_factory=dict)  # host → (file, cert)


def is_ours(ing: Obj, class_name: str, controller: str, classes: Mapping[str, Obj], without_class: bool) -> bool:
    """Does this controller serve `ing`?  By `ingressClassName` naming an
    IngressClass of our controller, by the legacy annotation naming our class,
    or (with `--watch-ingress-without-class`) by having neither."""
    name = _d(ing.get("spec")).get("ingressClassName")
    if name:
        cls = classes.get(str(name))
        return cls is not None and _d(cls.get("spec")).get("controller") == controller
    annotation = _d(_d(ing.get("metadata")).get("annotations")).get(CLASS_ANNOTATION)
    if annotation is not None:
        return bool(annotation == class_name)
    return without_class


def _endpoint(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


class _Backends:
    """Service references resolved to upstreams, each once, with the problem if any."""

    def __init__(self, snap: Snapshot) -> None:
        self.snap = snap
        self.upstreams: dict[str, Upstream] = {}
        self.problems: dict[ServiceRef, tuple[str, str]] = {}

    def resolve(self, ref: ServiceRef) -> tuple[Upstream | None, tuple[str, str] | None]:
        if ref.upstream in self.upstreams:
            return self.upstreams[ref.upstream], None
        if ref in self.problems:
            return None, self.problems[ref]
        up, problem = self._resolve(ref)
        if up is not None:
            self.upstreams[ref.upstream] = up
        else:
            assert problem is not None
            self.problems[ref] = problem
        return up, problem

    def _resolve(self, ref: ServiceRef) -> tuple[Upstream | None, tuple[str, str] | None]:
        key = f"{ref.namespace}/{ref.name}"
        svc = self.snap.services.get(key)
        if svc is None:
            return None, ("ServiceNotFound", f'Service "{key}" not found')
        spec = _d(svc.get("spec"))
        if spec.get("type") == "ExternalName":
            return None, ("ServiceNotSupported", f'Service "{key}" is of type ExternalName, which kinns does not proxy')
        ports = _dicts(spec.get("ports"))
        want = [p for p in ports if (p.get("name") == ref.port if isinstance(ref.port, str) else p.get("port") == ref.port)]
        if not want:
            have = ", ".join(f"{p.get('port')}/{p.get('protocol', 'TCP')}" + (f" ({p['name']})" if p.get("name") else "")
                             for p in ports) or "none"
            what = f'named "{ref.port}"' if isinstance(ref.port, str) else str(ref.port)
            return None, ("ServicePortNotFound", f'Service "{key}" has no port {what} (it has {have})')
        port_name = want[0].get("name") or ""
        endpoints: set[str] = set()
        for s in self.snap.slices(key):
            if s.get("addressType", "IPv4") not in ("IPv4", "IPv6"):
                continue
            target = next((p.get("port") for p in _dicts(s.get("ports"))
                           if (p.get("name") or "") == port_name and p.get("protocol", "TCP") == "TCP"), None)
            if not target:
                continue
            for ep in _dicts(s.get("endpoints")):
                if _d(ep.get("conditions")).get("ready") is False:
                    continue
                endpoints.update(_endpoint(str(ip), int(target)) for ip in ep.get("addresses") or [])
        return Upstream(ref.upstream, tuple(sorted(endpoints))), None


def _share(ref: ServiceRef | None, weight: int, backends: _Backends) -> Share:
    """An HTTPRoute backendRef's part: 500 for one that does not resolve (the spec's
    answer), 503 for a Service without ready endpoints."""
    if ref is None:
        return Share(None, 500, weight)
    up, _problem = backends.resolve(ref)
    if up is None:
        return Share(None, 500, weight)
    return Share(up.name, 0, weight) if up.endpoints else Share(None, 503, weight)


def _split_location(path: str, exact: bool, route: Route, backends: _Backends) -> Location:
    """An HTTPRoute rule's answer: its redirect, else its backends by weight (none: 500)."""
    if route.filters.redirect is not None:
        return Location(path, exact, route, None, route.filters.redirect.status)
    shares = tuple(_share(w.ref, w.weight, backends) for w in route.split if w.weight > 0)
    if not shares:
        return Location(path, exact, route, None, 500)
    if len({(s.upstream, s.status) for s in shares}) == 1:
        return Location(path, exact, route, shares[0].upstream, shares[0].status)
    return Location(path, exact, route, None, 0, shares)


def _location(path: str, exact: bool, route: Route | None, backends: _Backends,
              events: list[Event], reported: set[tuple[str, str]]) -> Location:
    """A location for `route` (None: nothing matched, 404)."""
    if route is None:
        return Location(path, exact, None, None, 404)
    if route.kind != "Ingress":
        return _split_location(path, exact, route, backends)
    if route.backend is None:
        return Location(path, exact, route, None, 503)
    up, problem = backends.resolve(route.backend)
    if up is None:
        assert problem is not None
        if (route.ingress, problem[1]) not in reported:
            reported.add((route.ingress, problem[1]))
            events.append(Event(route.ingress, "Warning", problem[0],
                                f"{problem[1]}: requests for {route.describe()} are answered 503"
                                if route.path else
                                f"{problem[1]}: requests for the default backend are answered 503"))
        return Location(path, exact, route, None, 503)
    if not up.endpoints:
        return Location(path, exact, route, None, 503)
    return Location(path, exact, route, up.name)


def _winners(routes: list[Route], events: list[Event]) -> list[Route]:
    """Drop later duplicates of (host, exact, key, match); an Event for each loser from another Ingress."""
    seen: dict[tuple[str, bool, str, Match], Route] = {}
    out: list[Route] = []
    for r in routes:
        k = (r.host, r.exact, r.key, r.match)
        first = seen.get(k)
        if first is None:
            seen[k] = r
            out.append(r)
        elif first.ingress != r.ingress and r.kind == first.kind == "Ingress":
            events.append(Event(r.ingress, "Warning", "Conflict",
                                f'host "{r.host or "*"}" and path "{r.path}" ({r.path_type}) are already defined '
                                f"in ingress {first.ingress}, which is older; that ingress serves them"))
    return out


def _candidates(routes: list[Route], path: str, exact: bool) -> list[Route]:
    """The routes that may answer every request a location gets, best first
    (a prefix location's requests all lie under `path`, so Exact routes are
    not among them); equals keep their order, oldest first."""
    hits = [r for r in routes if r.matches(path) and (exact or not r.exact)]
    return sorted(hits, key=lambda r: r.rank, reverse=True)


def _answer(path: str, exact: bool, candidates: list[Route], fallback: Route | None, backends: _Backends,
            events: list[Event], reported: set[tuple[str, str]]) -> Location:
    """The first candidate without a Match answers; those with one before it guard it."""
    guarded: list[Location] = []
    final = fallback
    for r in candidates:
        if r.match == Match():
            final = r
            break
        guarded.append(_location(path, exact, r, backends, events, reported))
    loc = _location(path, exact, final, backends, events, reported)
    return replace(loc, guarded=tuple(guarded)) if guarded else loc


def _server_locations(routes: list[Route], fallback: Route | None, backends: _Backends,
                      events: list[Event], reported: set[tuple[str, str]]) -> list[Location]:
    """nginx locations equivalent to `best` over `routes`: an Exact path is `= path`;
    a Prefix `/p` is `= /p` plus `^~ /p/`; `/` takes the rest.  Each answers
    with its best candidate route (or, when none fits, the fallback)."""
    exact = {r.path for r in routes if r.exact} | {r.key for r in routes if not r.exact and r.key}
    prefix = {"/"} | {r.key + "/" for r in routes if not r.exact and r.key}
    # nginx answers `/p` with a 301 to `/p/` when a proxying location `/p/`
    # exists and nothing else claims `/p` exactly; claim it with the route
    # the spec picks for `/p`.
    exact |= {p.rstrip("/") for p in exact | prefix if len(p) > 1 and p.endswith("/") and p.rstrip("/")}
    return ([_answer(p, True, _candidates(routes, p, True), fallback, backends, events, reported)
             for p in sorted(exact)]
            + [_answer(p, False, _candidates(routes, p, False), fallback, backends, events, reported)
               for p in sorted(prefix)])


def _certificate(ing: Obj, tls: Obj, host: str, snap: Snapshot, certs: dict[str, str],
                 parsed: dict[str, Certificate | str], events: list[Event]) -> str | None:
    """The certificate file for `host` from one tls entry, or None (default cert, Event said why)."""
    key = ingress_key(ing)
    ns = key.split("/", 1)[0]
    secret_name = tls.get("secretName")
    if not secret_name:
        return None
    skey = f"{ns}/{secret_name}"
    if skey not in parsed:
        secret = snap.secrets.get(skey)
        if secret is None:
            parsed[skey] = f'Secret "{skey}" not found'
        else:
            try:
                parsed[skey] = parse_secret(secret)
            except InvalidCertificate as e:
                parsed[skey] = f'Secret "{skey}" is not a valid TLS certificate: {e}'
    cert = parsed[skey]
    if isinstance(cert, str):
        events.append(Event(key, "Warning", "InvalidTLSSecret",
                            f"{cert}; host {host} is served with the default certificate"))
        return None
    if not covers(cert.names, host):
        events.append(Event(key, "Warning", "InvalidTLSSecret",
                            f'the certificate in Secret "{skey}" is for {", ".join(cert.names) or "no name"}, '
                            f"not {host}; host {host} is served with the default certificate"))
        return None
    name = f"{ns}-{secret_name}.pem"
    certs[name] = cert.pem
    return name


def _tls_hosts(ing: Obj, tls: Obj, server_names: Iterable[str]) -> list[str]:
    hosts = [str(h).lower() for h in tls.get("hosts") or []]
    if not hosts:
        return sorted({r.host for r in routes_of(ing) if r.host})
    out = []
    for name in server_names:
        if name in hosts or any(h.startswith("*.") and host_matches(h, name) for h in hosts):
            out.append(name)
    return sorted(set(out) | {h for h in hosts})


def build(snap: Snapshot) -> Plan:
    """The whole routing plan for the Ingresses this controller serves."""
    ordered = sorted(snap.ingresses, key=age_order)
    events: list[Event] = []
    reported: set[tuple[str, str]] = set()
    per_ingress = [(ing, routes_of(ing)) for ing in ordered]
    routes = _winners([r for _ing, rs in per_ingress for r in rs] + list(snap.routes), events)
    by_server: dict[str, list[Route]] = {}
    for r in routes:
        by_server.setdefault(r.host or DEFAULT_SERVER, []).append(r)
    default_for, fallback = fallbacks(per_ingress)
    backends = _Backends(snap)
    names = sorted({r.host for r in routes if r.host}
                   | {str(h).lower() for ing in ordered for t in _dicts(_d(ing.get("spec")).get("tls"))
                      for h in t.get("hosts") or [] if h} | set(snap.certificates))
    servers: list[Server] = []
    for name in [DEFAULT_SERVER] + names:
        locations = _server_locations(by_server.get(name, []), default_for.get(name, fallback), backends, events,
                                      reported)
        servers.append(Server(name, locations))
    certs: dict[str, str] = {}
    parsed: dict[str, Certificate | str] = {}
    by_name = {s.name: s for s in servers}
    assigned: set[str] = set()
    for ing in ordered:
        for tls in _dicts(_d(ing.get("spec")).get("tls")):
            for host in _tls_hosts(ing, tls, names):
                if host in assigned or host not in by_name:
                    continue
                assigned.add(host)
                file = _certificate(ing, tls, host, snap, certs, parsed, events)
                if file is not None:
                    by_name[host].certificate = file
    for host, (file, cert) in sorted(snap.certificates.items()):    # a Gateway listener's
        if host not in assigned and host in by_name:
            by_name[host].certificate = file
            certs[file] = cert.pem
    return Plan(servers, sorted(backends.upstreams.values(), key=lambda u: u.name), certs, events)
