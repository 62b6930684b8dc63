"""What `kubectl get` prints: the server-side Table columns and cells per kind.

kubectl does not format objects itself.  It asks the API server for a
`meta.k8s.io/v1 Table` and prints the column definitions and row cells it
gets back, hiding the columns with priority > 0 unless `-o wide` is given.
So the look of `kubectl get pods` -- READY "1/2", STATUS "CrashLoopBackOff",
RESTARTS "3 (5m ago)", AGE "2d3h" -- is decided here, and it must match what
kube-apiserver v1.32 produces (kubernetes pkg/printers/internalversion):
same column names, order, types and priorities, same cell text.

Like kube-apiserver, the server always computes every cell, the wide ones
included (upstream's table convertor runs its printers with Wide on); the
client drops what it does not show.  Kinds without a printer get the
default CRD-style table: Name and Age.

Column descriptions are looked up in the upstream OpenAPI definitions we
already ship (`schemas`), as upstream takes them from the types' Swagger
docs, with a plain sentence where upstream wrote its own.

Public interface: `column_definitions(kind)`, `row_cells(kind, obj, now)`,
`human_duration(seconds)`; also `row_conditions(kind, obj)` for the row
`conditions` upstream sets on finished pods.
"""

from __future__ import annotations

import datetime as dt
import functools
import ipaddress
import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Callable

from . import hpa, ingress, schemas

Obj = dict[str, Any]
Cells = list[Any]
CellFn = Callable[[Obj, dt.datetime], Cells]

NONE = "<none>"
UNSET = "<unset>"
UNKNOWN = "<unknown>"


# ---------------------------------------------------------------------------
# Durations and timestamps


def human_duration(seconds: float) -> str:
    """Upstream `duration.HumanDuration`: about 2-3 significant figures.

    A clock slightly behind (up to two seconds) still reads "0s"; more than
    that reads "<invalid>".
    """
    whole = int(seconds)  # truncates toward zero, like Go's int(d.Seconds())
    if whole < -1:
        return "<invalid>"
    if whole < 0:
        return "0s"
    if whole < 120:
        return f"{whole}s"
    minutes = whole // 60
    if minutes < 10:
        s = whole % 60
        return f"{minutes}m" if s == 0 else f"{minutes}m{s}s"
    if minutes < 180:
        return f"{minutes}m"
    hours = whole // 3600
    if hours < 8:
        m = minutes % 60
        return f"{hours}h" if m == 0 else f"{hours}h{m}m"
    if hours < 48:
        return f"{hours}h"
    days = hours // 24
    if hours < 24 * 8:
        h = hours % 24
        return f"{days}d" if h == 0 else f"{days}d{h}h"
    if hours < 24 * 365 * 2:
        return f"{days}d"
    years = days // 365
    if hours < 24 * 365 * 8:
        dy = days % 365
        return f"{years}y" if dy == 0 else f"{years}y{dy}d"
    return f"{years}y"


_FRACTION = re.compile(r"\.(\d+)")


def parse_time(value: Any) -> dt.datetime | None:
    """An RFC 3339 timestamp (Time or MicroTime) as an aware datetime; None if unset."""
    if not value or not isinstance(value, str):
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    # Python takes at most six fractional digits.
    text = _FRACTION.sub(lambda m: "." + m.group(1)[:6].ljust(6, "0"), text, count=1)
    try:
        t = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.timezone.utc)
    return t


def since(value: Any, now: dt.datetime) -> str:
    """Upstream translateTimestampSince: human age of a timestamp, "<unknown>" if unset."""
    t = parse_time(value)
    if t is None:
        return UNKNOWN
    if now.tzinfo is None:
        now = now.replace(tzinfo=dt.timezone.utc)
    return human_duration((now - t).total_seconds())


def _age(obj: Obj, now: dt.datetime) -> str:
    return since(_meta(obj).get("creationTimestamp"), now)


# ---------------------------------------------------------------------------
# Small formatting helpers shared by several kinds


def _meta(obj: Obj) -> Obj:
    return obj.get("metadata") or {}


def _name(obj: Obj) -> str:
    name: str = _meta(obj).get("name", "")
    return name


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def format_labels(labels: dict[str, str] | None) -> str:
    """`k=v` pairs sorted by key, "<none>" when empty (labels.FormatLabels)."""
    if not labels:
        return NONE
    return ",".join(f"{k}={labels[k]}" for k in sorted(labels))


def selector_string(selector: Obj | None) -> str:
    """A LabelSelector in selector syntax ("app=web,tier in (a,b),!x"); "" when empty."""
    if not selector:
        return ""
    reqs: list[tuple[str, str]] = []
    for key, value in (selector.get("matchLabels") or {}).items():
        reqs.append((key, f"{key}={value}"))
    for expr in selector.get("matchExpressions") or []:
        key, op = expr.get("key", ""), expr.get("operator", "")
        values = ",".join(sorted(set(expr.get("values") or [])))
        if op == "In":
            reqs.append((key, f"{key} in ({values})"))
        elif op == "NotIn":
            reqs.append((key, f"{key} notin ({values})"))
        elif op == "Exists":
            reqs.append((key, key))
        elif op == "DoesNotExist":
            reqs.append((key, f"!{key}"))
    reqs.sort(key=lambda r: r[0])
    return ",".join(text for _, text in reqs)


def format_label_selector(selector: Obj | None) -> str:
    """metav1.FormatLabelSelector: the selector string, "<none>" when it selects by nothing."""
    return selector_string(selector) or NONE


def _containers(template_spec: Obj | None) -> tuple[str, str]:
    """Container names and images of a pod spec, each comma-joined."""
    containers = (template_spec or {}).get("containers") or []
    return (",".join(c.get("name", "") for c in containers),
            ",".join(c.get("image", "") for c in containers))


def _pod_template_spec(obj: Obj) -> Obj:
    return ((obj.get("spec") or {}).get("template") or {}).get("spec") or {}


def _join_host_port(host: str, port: Any) -> str:
    try:
        if ipaddress.ip_address(host).version == 6:
            return f"[{host}]:{port}"
    except ValueError:
        if ":" in host:
            return f"[{host}]:{port}"
    return f"{host}:{port}"


def _list_with_more(items: list[str], total: int, limit: int = 3, empty: str = UNSET) -> str:
    """The first `limit` items, then " + N more..." (upstream listWithMoreString)."""
    text = ",".join(items[:limit])
    if total > limit:
        return f"{text} + {total - limit} more..."
    return text or empty


_ACCESS_MODES = (("ReadWriteOnce", "RWO"), ("ReadOnlyMany", "ROX"),
                 ("ReadWriteMany", "RWX"), ("ReadWriteOncePod", "RWOP"))


def access_modes(modes: list[str] | None) -> str:
    """Access modes abbreviated, always in the order RWO,ROX,RWX,RWOP."""
    present = set(modes or [])
    return ",".join(short for long, short in _ACCESS_MODES if long in present)


_BETA_STORAGE_CLASS = "volume.beta.kubernetes.io/storage-class"


def _storage_class_of(obj: Obj) -> str:
    annotations = _meta(obj).get("annotations") or {}
    if _BETA_STORAGE_CLASS in annotations:
        beta: str = annotations[_BETA_STORAGE_CLASS]
        return beta
    return (obj.get("spec") or {}).get("storageClassName") or ""


# ---------------------------------------------------------------------------
# Quantities ("1Gi", "500m") in upstream's canonical form


_BINARY = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_DECIMAL_SUFFIX = {e: s for s, e in _DECIMAL.items()}
_QUANTITY = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+))(.*)$")


def format_quantity(value: Any) -> str:
    """A resource.Quantity as its String() prints it: "1Gi", "1536Mi", "1G", "500m".

    Binary quantities that are whole and at least 1024 keep a binary suffix;
    others print in decimal SI with an exponent that is a multiple of 3.
    """
    if value is None or value == "":
        return "0"
    if isinstance(value, (int, float)):
        value = repr(value) if isinstance(value, float) else str(value)
    m = _QUANTITY.match(str(value).strip())
    if not m:
        return str(value)
    number, suffix = Fraction(m.group(1)), m.group(2)
    binary = False
    if suffix in _BINARY:
        amount, binary = number * (2 ** _BINARY[suffix]), True
    elif suffix in _DECIMAL:
        amount = number * Fraction(10) ** _DECIMAL[suffix]
    elif suffix[:1] in ("e", "E") and re.fullmatch(r"[+-]?\d+", suffix[1:]):
        amount = number * Fraction(10) ** int(suffix[1:])
    else:
        return str(value)
    if amount == 0:
        return "0"
    sign = "-" if amount < 0 else ""
    amount = abs(amount)
    if binary and amount >= 1024 and amount.denominator == 1:
        mantissa, exp = int(amount), 0
        while mantissa % 1024 == 0 and exp < 60:
            mantissa //= 1024
            exp += 10
        suffix_out = {v: k for k, v in _BINARY.items()}.get(exp, "")
        return f"{sign}{mantissa}{suffix_out}"
    exp = 0
    scaled = amount
    while scaled.denominator != 1 and exp > -9:
        exp -= 3
        scaled = amount / Fraction(10) ** exp
    mantissa = -(-scaled.numerator // scaled.denominator)  # upstream rounds up below 1n
    while mantissa % 1000 == 0 and exp < 18:
        mantissa //= 1000
        exp += 3
    return f"{sign}{mantissa}{_DECIMAL_SUFFIX.get(exp, f'e{exp}')}"


# ---------------------------------------------------------------------------
# Column definitions


@dataclass(frozen=True)
class Col:
    """One column: upstream's name/type/format/priority; `doc` is the description.

    `doc` is either a sentence, or "@<group>.<version>.<Type>.<field>"
    (e.g. "@core.v1.PodSpec.nodeName", "@meta.v1.ObjectMeta.name") naming the
    upstream field whose documentation upstream uses.
    """

    name: str
    type: str = "string"
    doc: str = ""
    priority: int = 0
    format: str = ""


NAME = Col("Name", doc="@meta.v1.ObjectMeta.name", format="name")
AGE = Col("Age", doc="@meta.v1.ObjectMeta.creationTimestamp")
CONTAINERS = Col("Containers", doc="Names of each container in the template.", priority=1)
IMAGES = Col("Images", doc="Images referenced by each container in the template.", priority=1)


def _description(doc: str) -> str:
    if not doc.startswith("@"):
        return doc
    group, version, type_name, field = doc[1:].split(".")
    prefix = "io.k8s.apimachinery.pkg.apis.meta" if group == "meta" else f"io.k8s.api.{group}"
    try:
        definition = schemas.definition(f"{prefix}.{version}.{type_name}") or {}
    except Exception:  # schemas unavailable: descriptions are cosmetic
        definition = {}
    description: str = ((definition.get("properties") or {}).get(field) or {}).get("description", "")
    return description


# ---------------------------------------------------------------------------
# Cells, one function per kind


def _pod_cells(pod: Obj, now: dt.datetime) -> Cells:
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    conditions = status.get("conditions") or []
    phase = status.get("phase", "")
    reason = status.get("reason") or phase
    if any(c.get("type") == "PodScheduled" and c.get("reason") == "SchedulingGated" for c in conditions):
        reason = "SchedulingGated"

    init_specs = {c.get("name"): c for c in spec.get("initContainers") or []}

    def sidecar(name: str | None) -> bool:
        return (init_specs.get(name) or {}).get("restartPolicy") == "Always"

    total = len(spec.get("containers") or []) + sum(1 for n in init_specs if sidecar(n))
    ready = 0
    restarts = sidecar_restarts = 0
    last_restart: dt.datetime | None = None
    last_sidecar_restart: dt.datetime | None = None

    def later(a: dt.datetime | None, b: dt.datetime | None) -> dt.datetime | None:
        return b if a is None or (b is not None and b > a) else a

    def finished_at(cs: Obj) -> dt.datetime | None:
        terminated = (cs.get("lastState") or {}).get("terminated")
        return parse_time(terminated.get("finishedAt")) if terminated else None

    # Init containers run in order; the first one not yet done explains the pod.
    initializing = False
    init_statuses = status.get("initContainerStatuses") or []
    for i, cs in enumerate(init_statuses):
        state = cs.get("state") or {}
        restarts += _int(cs.get("restartCount"))
        last_restart = later(last_restart, finished_at(cs))
        is_sidecar = sidecar(cs.get("name"))
        if is_sidecar:
            sidecar_restarts += _int(cs.get("restartCount"))
            last_sidecar_restart = later(last_sidecar_restart, finished_at(cs))
        terminated, waiting = state.get("terminated"), state.get("waiting")
        if terminated is not None and _int(terminated.get("exitCode")) == 0:
            continue
        if is_sidecar and cs.get("started"):
            if cs.get("ready"):
                ready += 1
            continue
        if terminated is not None:
            if terminated.get("reason"):
                reason = "Init:" + terminated["reason"]
            elif _int(terminated.get("signal")):
                reason = f"Init:Signal:{_int(terminated.get('signal'))}"
            else:
                reason = f"Init:ExitCode:{_int(terminated.get('exitCode'))}"
        elif waiting is not None and waiting.get("reason") and waiting["reason"] != "PodInitializing":
            reason = "Init:" + waiting["reason"]
        else:
            reason = f"Init:{i}/{len(init_specs)}"
        initializing = True
        break

    initialized = next((c.get("status") == "True" for c in conditions if c.get("type") == "Initialized"), False)
    if not initializing or initialized:
        restarts, last_restart = sidecar_restarts, last_sidecar_restart
        has_running = False
        for cs in reversed(status.get("containerStatuses") or []):
            state = cs.get("state") or {}
            restarts += _int(cs.get("restartCount"))
            last_restart = later(last_restart, finished_at(cs))
            waiting, terminated = state.get("waiting"), state.get("terminated")
            if waiting is not None and waiting.get("reason"):
                reason = waiting["reason"]
            elif terminated is not None and terminated.get("reason"):
                reason = terminated["reason"]
            elif terminated is not None:
                if _int(terminated.get("signal")):
                    reason = f"Signal:{_int(terminated.get('signal'))}"
                else:
                    reason = f"ExitCode:{_int(terminated.get('exitCode'))}"
            elif cs.get("ready") and state.get("running") is not None:
                has_running = True
                ready += 1
        if reason == "Completed" and has_running:
            pod_ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
            reason = "Running" if pod_ready else "NotReady"

    if _meta(pod).get("deletionTimestamp"):
        if status.get("reason") == "NodeLost":
            reason = "Unknown"
        elif phase not in ("Succeeded", "Failed"):
            reason = "Terminating"

    restarts_text = str(restarts)
    if restarts and last_restart is not None:
        restarts_text = f"{restarts} ({human_duration((now - last_restart).total_seconds())} ago)"

    pod_ips = status.get("podIPs") or []
    ip = (pod_ips[0].get("ip") if pod_ips else status.get("podIP")) or NONE
    gates = spec.get("readinessGates") or []
    gates_text = NONE
    if gates:
        by_type: dict[Any, Obj] = {}
        for c in conditions:
            by_type.setdefault(c.get("type"), c)
        true = sum(1 for g in gates if (by_type.get(g.get("conditionType")) or {}).get("status") == "True")
        gates_text = f"{true}/{len(gates)}"
    return [_name(pod), f"{ready}/{total}", reason, restarts_text, _age(pod, now),
            ip, spec.get("nodeName") or NONE, status.get("nominatedNodeName") or NONE, gates_text]


def _lb_ingress(status: Obj) -> str:
    ingress = ((status.get("loadBalancer") or {}).get("ingress")) or []
    found = {i.get("ip") or i.get("hostname") for i in ingress} - {None, ""}
    return ",".join(sorted(found))


def _service_external_ip(svc: Obj, svc_type: str) -> str:
    spec = svc.get("spec") or {}
    external = spec.get("externalIPs") or []
    if svc_type in ("ClusterIP", "NodePort"):
        return ",".join(external) if external else NONE
    if svc_type == "LoadBalancer":
        lb = _lb_ingress(svc.get("status") or {})
        if external:
            return ",".join(([lb] if lb else []) + external)
        return lb or "<pending>"
    if svc_type == "ExternalName":
        external_name: str = spec.get("externalName", "")
        return external_name
    return UNKNOWN


def _service_cells(svc: Obj, now: dt.datetime) -> Cells:
    spec = svc.get("spec") or {}
    svc_type = spec.get("type") or "ClusterIP"
    cluster_ips = spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else [])
    ports = []
    for p in spec.get("ports") or []:
        proto = p.get("protocol") or "TCP"
        node_port = _int(p.get("nodePort"))
        ports.append(f"{p.get('port')}:{node_port}/{proto}" if node_port > 0 else f"{p.get('port')}/{proto}")
    return [_name(svc), svc_type, cluster_ips[0] if cluster_ips else NONE,
            _service_external_ip(svc, svc_type), ",".join(ports) or NONE, _age(svc, now),
            format_labels(spec.get("selector"))]


_NODE_ROLE_PREFIX = "node-role.kubernetes.io/"


def _node_cells(node: Obj, now: dt.datetime) -> Cells:
    spec, status = node.get("spec") or {}, node.get("status") or {}
    states = []
    ready = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
    if ready is not None:
        states.append("Ready" if ready.get("status") == "True" else "NotReady")
    else:
        states.append("Unknown")
    if spec.get("unschedulable"):
        states.append("SchedulingDisabled")
    roles = set()
    for key, value in (_meta(node).get("labels") or {}).items():
        if key.startswith(_NODE_ROLE_PREFIX) and key[len(_NODE_ROLE_PREFIX):]:
            roles.add(key[len(_NODE_ROLE_PREFIX):])
        elif key == "kubernetes.io/role" and value:
            roles.add(value)
    info = status.get("nodeInfo") or {}

    def address(kind: str) -> str:
        return next((a.get("address", "") for a in status.get("addresses") or [] if a.get("type") == kind), NONE)

    return [_name(node), ",".join(states), ",".join(sorted(roles)) or NONE, _age(node, now),
            info.get("kubeletVersion", ""), address("InternalIP"), address("ExternalIP"),
            info.get("osImage") or UNKNOWN, info.get("kernelVersion") or UNKNOWN,
            info.get("containerRuntimeVersion") or UNKNOWN]


def _endpoints_cells(ep: Obj, now: dt.datetime) -> Cells:
    subsets = ep.get("subsets") or []
    if not subsets:
        return [_name(ep), NONE, _age(ep, now)]
    shown: list[str] = []
    total = 0
    for subset in subsets:
        addresses = subset.get("addresses") or []
        ports = subset.get("ports") or []
        if not ports:  # headless services may have no ports
            total += len(addresses)
            shown.extend(a.get("ip", "") for a in addresses)
            continue
        for port in ports:
            total += len(addresses)
            shown.extend(_join_host_port(a.get("ip", ""), port.get("port")) for a in addresses)
    return [_name(ep), _list_with_more(shown, total, empty=""), _age(ep, now)]


def _endpointslice_cells(es: Obj, now: dt.datetime) -> Cells:
    ports = []
    for p in es.get("ports") or []:
        if p.get("port") is not None:
            ports.append(str(p["port"]))
        elif p.get("name") is not None:
            ports.append(p["name"])
        else:
            ports.append("*")
    addresses = [a for e in es.get("endpoints") or [] for a in e.get("addresses") or []]
    return [_name(es), es.get("addressType", ""), _list_with_more(ports, len(ports)),
            _list_with_more(addresses, len(addresses)), _age(es, now)]


def _event_cells(ev: Obj, now: dt.datetime) -> Cells:
    first = since(ev.get("firstTimestamp"), now)
    if not parse_time(ev.get("firstTimestamp")):
        first = since(ev.get("eventTime"), now)
    last = since(ev.get("lastTimestamp"), now) if parse_time(ev.get("lastTimestamp")) else first
    count = _int(ev.get("count"))
    series = ev.get("series")
    if series is not None:
        last = since(series.get("lastObservedTime"), now)
        count = _int(series.get("count"))
    elif count == 0:
        count = 1  # singleton events of the new API carry no count
    involved = ev.get("involvedObject") or {}
    kind = (involved.get("kind") or "").lower()
    target = f"{kind}/{involved['name']}" if involved.get("name") else kind
    source = ev.get("source") or {}
    component = source.get("component") or ev.get("reportingComponent") or ""
    instance = source.get("host") or ev.get("reportingInstance") or ""
    return [last, ev.get("type", ""), ev.get("reason", ""), target, involved.get("fieldPath", ""),
            f"{component}, {instance}" if instance else component,
            (ev.get("message") or "").strip(), first, count, _name(ev)]


def _pv_cells(pv: Obj, now: dt.datetime) -> Cells:
    spec, status = pv.get("spec") or {}, pv.get("status") or {}
    claim = spec.get("claimRef")
    phase = "Terminating" if _meta(pv).get("deletionTimestamp") else status.get("phase", "")
    return [_name(pv), format_quantity((spec.get("capacity") or {}).get("storage")),
            access_modes(spec.get("accessModes")), spec.get("persistentVolumeReclaimPolicy", ""),
            phase, f"{claim.get('namespace', '')}/{claim.get('name', '')}" if claim else "",
            _storage_class_of(pv), spec.get("volumeAttributesClassName") or UNSET,
            status.get("reason", ""), _age(pv, now), spec.get("volumeMode") or UNSET]


def _pvc_cells(pvc: Obj, now: dt.datetime) -> Cells:
    spec, status = pvc.get("spec") or {}, pvc.get("status") or {}
    phase = "Terminating" if _meta(pvc).get("deletionTimestamp") else status.get("phase", "")
    capacity = modes = ""
    if spec.get("volumeName"):
        modes = access_modes(status.get("accessModes"))
        capacity = format_quantity((status.get("capacity") or {}).get("storage"))
    return [_name(pvc), phase, spec.get("volumeName", ""), capacity, modes, _storage_class_of(pvc),
            spec.get("volumeAttributesClassName") or UNSET, _age(pvc, now), spec.get("volumeMode") or UNSET]


def _replicas(obj: Obj) -> int:
    spec = obj.get("spec") or {}
    return _int(spec["replicas"]) if spec.get("replicas") is not None else 1


def _deployment_cells(d: Obj, now: dt.datetime) -> Cells:
    status = d.get("status") or {}
    names, images = _containers(_pod_template_spec(d))
    return [_name(d), f"{_int(status.get('readyReplicas'))}/{_replicas(d)}",
            _int(status.get("updatedReplicas")), _int(status.get("availableReplicas")), _age(d, now),
            names, images, selector_string((d.get("spec") or {}).get("selector"))]


def _replicaset_cells(rs: Obj, now: dt.datetime) -> Cells:
    status = rs.get("status") or {}
    names, images = _containers(_pod_template_spec(rs))
    return [_name(rs), _replicas(rs), _int(status.get("replicas")), _int(status.get("readyReplicas")),
            _age(rs, now), names, images, format_label_selector((rs.get("spec") or {}).get("selector"))]


def _statefulset_cells(sts: Obj, now: dt.datetime) -> Cells:
    names, images = _containers(_pod_template_spec(sts))
    ready = _int((sts.get("status") or {}).get("readyReplicas"))
    return [_name(sts), f"{ready}/{_replicas(sts)}", _age(sts, now), names, images]


def _daemonset_cells(ds: Obj, now: dt.datetime) -> Cells:
    status = ds.get("status") or {}
    template = _pod_template_spec(ds)
    names, images = _containers(template)
    return [_name(ds), _int(status.get("desiredNumberScheduled")), _int(status.get("currentNumberScheduled")),
            _int(status.get("numberReady")), _int(status.get("updatedNumberScheduled")),
            _int(status.get("numberAvailable")), format_labels(template.get("nodeSelector")), _age(ds, now),
            names, images, format_label_selector((ds.get("spec") or {}).get("selector"))]


def _replicationcontroller_cells(rc: Obj, now: dt.datetime) -> Cells:
    status = rc.get("status") or {}
    names, images = _containers(_pod_template_spec(rc))
    return [_name(rc), _replicas(rc), _int(status.get("replicas")), _int(status.get("readyReplicas")),
            _age(rc, now), names, images, format_labels((rc.get("spec") or {}).get("selector"))]


def _controllerrevision_cells(cr: Obj, now: dt.datetime) -> Cells:
    ref = next((r for r in _meta(cr).get("ownerReferences") or [] if r.get("controller")), None)
    controller = NONE
    if ref is not None:
        group = str(ref.get("apiVersion", "")).rpartition("/")[0]
        controller = f"{ref.get('kind', '')}{'.' + group if group else ''}".lower() + f"/{ref.get('name', '')}"
    return [_name(cr), controller, _int(cr.get("revision")), _age(cr, now)]


def _pdb_cells(pdb: Obj, now: dt.datetime) -> Cells:
    spec = pdb.get("spec") or {}
    def bound(key: str) -> str:
        return "N/A" if spec.get(key) is None else str(spec[key])
    return [_name(pdb), bound("minAvailable"), bound("maxUnavailable"),
            _int((pdb.get("status") or {}).get("disruptionsAllowed")), _age(pdb, now)]


def _job_condition(job: Obj, ctype: str) -> bool:
    return any(c.get("type") == ctype and c.get("status") == "True"
               for c in (job.get("status") or {}).get("conditions") or [])


def _job_cells(job: Obj, now: dt.datetime) -> Cells:
    """printJob: STATUS from the conditions, COMPLETIONS "<succeeded>/<completions>", DURATION."""
    spec, status = job.get("spec") or {}, job.get("status") or {}
    succeeded = _int(status.get("succeeded"))
    if spec.get("completions") is not None:
        completions = f"{succeeded}/{_int(spec['completions'])}"
    elif _int(spec.get("parallelism")) > 1:
        completions = f"{succeeded}/1 of {_int(spec['parallelism'])}"
    else:
        completions = f"{succeeded}/1"
    start, done = parse_time(status.get("startTime")), parse_time(status.get("completionTime"))
    took = "" if start is None else since(status["startTime"], now) if done is None else \
        human_duration((done - start).total_seconds())
    if _job_condition(job, "Complete"):
        state = "Complete"
    elif _job_condition(job, "Failed"):
        state = "Failed"
    elif _meta(job).get("deletionTimestamp"):
        state = "Terminating"
    elif _job_condition(job, "Suspended"):
        state = "Suspended"
    elif _job_condition(job, "FailureTarget"):
        state = "FailureTarget"
    else:
        state = "Running"
    names, images = _containers(_pod_template_spec(job))
    return [_name(job), state, completions, took, _age(job, now), names, images,
            format_label_selector(spec.get("selector"))]


def _cronjob_cells(cj: Obj, now: dt.datetime) -> Cells:
    spec, status = cj.get("spec") or {}, cj.get("status") or {}
    last = since(status["lastScheduleTime"], now) if status.get("lastScheduleTime") else NONE
    suspend = UNSET if spec.get("suspend") is None else ("True" if spec["suspend"] else "False")
    job_spec = (spec.get("jobTemplate") or {}).get("spec") or {}
    names, images = _containers((job_spec.get("template") or {}).get("spec"))
    return [_name(cj), spec.get("schedule", ""), spec.get("timeZone") or NONE, suspend,
            len(status.get("active") or []), last, _age(cj, now), names, images,
            format_label_selector(job_spec.get("selector"))]


_DEFAULT_CLASS_ANNOTATIONS = ("storageclass.kubernetes.io/is-default-class",
                              "storageclass.beta.kubernetes.io/is-default-class")


def _storageclass_cells(sc: Obj, now: dt.datetime) -> Cells:
    annotations = _meta(sc).get("annotations") or {}
    name = _name(sc)
    if any(annotations.get(a) == "true" for a in _DEFAULT_CLASS_ANNOTATIONS):
        name += " (default)"
    expansion = sc.get("allowVolumeExpansion")
    return [name, sc.get("provisioner", ""), sc.get("reclaimPolicy") or "Delete",
            sc.get("volumeBindingMode") or "Immediate", bool(expansion),
            _age(sc, now)]


def _namespace_cells(ns: Obj, now: dt.datetime) -> Cells:
    return [_name(ns), (ns.get("status") or {}).get("phase", ""), _age(ns, now)]


def _configmap_cells(cm: Obj, now: dt.datetime) -> Cells:
    return [_name(cm), len(cm.get("data") or {}) + len(cm.get("binaryData") or {}), _age(cm, now)]


def _secret_cells(secret: Obj, now: dt.datetime) -> Cells:
    return [_name(secret), secret.get("type", ""), len(secret.get("data") or {}), _age(secret, now)]


def _serviceaccount_cells(sa: Obj, now: dt.datetime) -> Cells:
    return [_name(sa), len(sa.get("secrets") or []), _age(sa, now)]


def _networkpolicy_cells(np: Obj, now: dt.datetime) -> Cells:
    return [_name(np), format_label_selector((np.get("spec") or {}).get("podSelector")), _age(np, now)]


def _lease_cells(lease: Obj, now: dt.datetime) -> Cells:
    return [_name(lease), (lease.get("spec") or {}).get("holderIdentity") or "", _age(lease, now)]


def _role_cells(role: Obj, now: dt.datetime) -> Cells:
    return [_name(role), _meta(role).get("creationTimestamp") or ""]


def _subjects_strings(subjects: Any) -> tuple[str, str, str]:
    """rbac.SubjectsStrings joined as kubectl shows them: users, groups, `ns/name` ServiceAccounts."""
    users, groups, sas = [], [], []
    for s in subjects or []:
        if not isinstance(s, dict):
            continue
        kind, name = s.get("kind"), s.get("name", "")
        if kind == "User":
            users.append(name)
        elif kind == "Group":
            groups.append(name)
        elif kind == "ServiceAccount":
            sas.append(f"{s.get('namespace', '')}/{name}")
    return ", ".join(users), ", ".join(groups), ", ".join(sas)


def _binding_cells(binding: Obj, now: dt.datetime) -> Cells:
    ref = binding.get("roleRef") or {}
    return [_name(binding), f"{ref.get('kind', '')}/{ref.get('name', '')}", _age(binding, now),
            *_subjects_strings(binding.get("subjects"))]


def _apiservice_cells(svc: Obj, now: dt.datetime) -> Cells:
    """kube-aggregator's printer: SERVICE "Local" or ns/name, AVAILABLE "True" or "False (Reason)"."""
    ref = (svc.get("spec") or {}).get("service")
    service = f"{ref.get('namespace', '')}/{ref.get('name', '')}" if isinstance(ref, dict) else "Local"
    cond = next((c for c in (svc.get("status") or {}).get("conditions") or [] if c.get("type") == "Available"), None)
    available = "Unknown"
    if cond is not None:
        status = str(cond.get("status", ""))
        available = f"{status} ({cond['reason']})" if status != "True" and cond.get("reason") else status
    return [_name(svc), service, available, _age(svc, now)]


def _default_cells(obj: Obj, now: dt.datetime) -> Cells:
    return [_name(obj), _age(obj, now)]


# ---------------------------------------------------------------------------
# The table: kind -> (columns, cells)


_ROLE_COLUMNS = (NAME, Col("Created At", "date", "@meta.v1.ObjectMeta.creationTimestamp"))


def _binding_columns(what: str) -> tuple[Col, ...]:
    return (NAME, Col("Role", doc="@rbac.v1.RoleBinding.roleRef"), AGE,
            Col("Users", doc=f"Users in the {what}", priority=1),
            Col("Groups", doc=f"Groups in the {what}", priority=1),
            Col("ServiceAccounts", doc=f"ServiceAccounts in the {what}", priority=1))


_TABLES: dict[str, tuple[tuple[Col, ...], CellFn]] = {
    "Pod": ((
        NAME,
        Col("Ready", doc="The aggregate readiness state of this pod for accepting traffic."),
        Col("Status", doc="The aggregate status of the containers in this pod."),
        Col("Restarts", doc="The number of times the containers in this pod have been restarted "
                            "and when the last container in this pod has restarted."),
        AGE,
        Col("IP", doc="@core.v1.PodStatus.podIP", priority=1),
        Col("Node", doc="@core.v1.PodSpec.nodeName", priority=1),
        Col("Nominated Node", doc="@core.v1.PodStatus.nominatedNodeName", priority=1),
        Col("Readiness Gates", doc="@core.v1.PodSpec.readinessGates", priority=1),
    ), _pod_cells),
    "Service": ((
        NAME,
        Col("Type", doc="@core.v1.ServiceSpec.type"),
        Col("Cluster-IP", doc="@core.v1.ServiceSpec.clusterIP"),
        Col("External-IP", doc="@core.v1.ServiceSpec.externalIPs"),
        Col("Port(s)", doc="@core.v1.ServiceSpec.ports"),
        AGE,
        Col("Selector", doc="@core.v1.ServiceSpec.selector", priority=1),
    ), _service_cells),
    "Node": ((
        NAME,
        Col("Status", doc="The status of the node"),
        Col("Roles", doc="The roles of the node"),
        AGE,
        Col("Version", doc="@core.v1.NodeSystemInfo.kubeletVersion"),
        Col("Internal-IP", doc="@core.v1.NodeStatus.addresses", priority=1),
        Col("External-IP", doc="@core.v1.NodeStatus.addresses", priority=1),
        Col("OS-Image", doc="@core.v1.NodeSystemInfo.osImage", priority=1),
        Col("Kernel-Version", doc="@core.v1.NodeSystemInfo.kernelVersion", priority=1),
        Col("Container-Runtime", doc="@core.v1.NodeSystemInfo.containerRuntimeVersion", priority=1),
    ), _node_cells),
    "Endpoints": ((
        NAME,
        Col("Endpoints", doc="@core.v1.Endpoints.subsets"),
        AGE,
    ), _endpoints_cells),
    "EndpointSlice": ((
        NAME,
        Col("AddressType", doc="@discovery.v1.EndpointSlice.addressType"),
        Col("Ports", doc="@discovery.v1.EndpointSlice.ports"),
        Col("Endpoints", doc="@discovery.v1.EndpointSlice.endpoints"),
        AGE,
    ), _endpointslice_cells),
    "Event": ((
        Col("Last Seen", doc="@core.v1.Event.lastTimestamp"),
        Col("Type", doc="@core.v1.Event.type"),
        Col("Reason", doc="@core.v1.Event.reason"),
        Col("Object", doc="@core.v1.Event.involvedObject"),
        Col("Subobject", doc="@core.v1.ObjectReference.fieldPath", priority=1),
        Col("Source", doc="@core.v1.Event.source", priority=1),
        Col("Message", doc="@core.v1.Event.message"),
        Col("First Seen", doc="@core.v1.Event.firstTimestamp", priority=1),
        Col("Count", doc="@core.v1.Event.count", priority=1),
        Col("Name", doc="@meta.v1.ObjectMeta.name", priority=1, format="name"),
    ), _event_cells),
    "Namespace": ((
        NAME,
        Col("Status", doc="The status of the namespace"),
        AGE,
    ), _namespace_cells),
    "Secret": ((
        NAME,
        Col("Type", doc="@core.v1.Secret.type"),
        Col("Data", doc="@core.v1.Secret.data"),
        AGE,
    ), _secret_cells),
    "ServiceAccount": ((
        NAME,
        Col("Secrets", doc="@core.v1.ServiceAccount.secrets"),
        AGE,
    ), _serviceaccount_cells),
    "ConfigMap": ((
        NAME,
        Col("Data", doc="@core.v1.ConfigMap.data"),
        AGE,
    ), _configmap_cells),
    "PersistentVolume": ((
        NAME,
        Col("Capacity", doc="@core.v1.PersistentVolumeSpec.capacity"),
        Col("Access Modes", doc="@core.v1.PersistentVolumeSpec.accessModes"),
        Col("Reclaim Policy", doc="@core.v1.PersistentVolumeSpec.persistentVolumeReclaimPolicy"),
        Col("Status", doc="@core.v1.PersistentVolumeStatus.phase"),
        Col("Claim", doc="@core.v1.PersistentVolumeSpec.claimRef"),
        Col("StorageClass", doc="StorageClass of the pv"),
        Col("VolumeAttributesClass", doc="VolumeAttributesClass of the pv"),
        Col("Reason", doc="@core.v1.PersistentVolumeStatus.reason"),
        AGE,
        Col("VolumeMode", doc="@core.v1.PersistentVolumeSpec.volumeMode", priority=1),
    ), _pv_cells),
    "PersistentVolumeClaim": ((
        NAME,
        Col("Status", doc="@core.v1.PersistentVolumeClaimStatus.phase"),
        Col("Volume", doc="@core.v1.PersistentVolumeClaimSpec.volumeName"),
        Col("Capacity", doc="@core.v1.PersistentVolumeClaimStatus.capacity"),
        Col("Access Modes", doc="@core.v1.PersistentVolumeClaimStatus.accessModes"),
        Col("StorageClass", doc="StorageClass of the pvc"),
        Col("VolumeAttributesClass", doc="VolumeAttributesClass of the pvc"),
        AGE,
        Col("VolumeMode", doc="@core.v1.PersistentVolumeClaimSpec.volumeMode", priority=1),
    ), _pvc_cells),
    "Deployment": ((
        NAME,
        Col("Ready", doc="Number of the pod with ready state"),
        Col("Up-to-date", doc="@apps.v1.DeploymentStatus.updatedReplicas"),
        Col("Available", doc="@apps.v1.DeploymentStatus.availableReplicas"),
        AGE,
        CONTAINERS,
        IMAGES,
        Col("Selector", doc="@apps.v1.DeploymentSpec.selector", priority=1),
    ), _deployment_cells),
    "ReplicaSet": ((
        NAME,
        Col("Desired", "integer", "@apps.v1.ReplicaSetSpec.replicas"),
        Col("Current", "integer", "@apps.v1.ReplicaSetStatus.replicas"),
        Col("Ready", "integer", "@apps.v1.ReplicaSetStatus.readyReplicas"),
        AGE,
        CONTAINERS,
        IMAGES,
        Col("Selector", doc="@apps.v1.ReplicaSetSpec.selector", priority=1),
    ), _replicaset_cells),
    "StatefulSet": ((
        NAME,
        Col("Ready", doc="Number of the pod with ready state"),
        AGE,
        CONTAINERS,
        IMAGES,
    ), _statefulset_cells),
    "DaemonSet": ((
        NAME,
        Col("Desired", "integer", "@apps.v1.DaemonSetStatus.desiredNumberScheduled"),
        Col("Current", "integer", "@apps.v1.DaemonSetStatus.currentNumberScheduled"),
        Col("Ready", "integer", "@apps.v1.DaemonSetStatus.numberReady"),
        Col("Up-to-date", "integer", "@apps.v1.DaemonSetStatus.updatedNumberScheduled"),
        Col("Available", "integer", "@apps.v1.DaemonSetStatus.numberAvailable"),
        Col("Node Selector", doc="@core.v1.PodSpec.nodeSelector"),
        AGE,
        CONTAINERS,
        IMAGES,
        Col("Selector", doc="@apps.v1.DaemonSetSpec.selector", priority=1),
    ), _daemonset_cells),
    "ReplicationController": ((
        NAME,
        Col("Desired", "integer", "@core.v1.ReplicationControllerSpec.replicas"),
        Col("Current", "integer", "@core.v1.ReplicationControllerStatus.replicas"),
        Col("Ready", "integer", "@core.v1.ReplicationControllerStatus.readyReplicas"),
        AGE,
        CONTAINERS,
        IMAGES,
        Col("Selector", doc="@core.v1.ReplicationControllerSpec.selector", priority=1),
    ), _replicationcontroller_cells),
    "ControllerRevision": ((
        NAME,
        Col("Controller", doc="Controller of the object"),
        Col("Revision", doc="@apps.v1.ControllerRevision.revision"),
        AGE,
    ), _controllerrevision_cells),
    "PodDisruptionBudget": ((
        NAME,
        Col("Min Available", doc="The minimum number of pods that must be available."),
        Col("Max Unavailable", doc="The maximum number of pods that may be unavailable."),
        Col("Allowed Disruptions", "integer", "Calculated number of pods that may be disrupted at this time."),
        AGE,
    ), _pdb_cells),
    "Job": ((
        NAME,
        Col("Status", doc="Status of the job."),
        Col("Completions", doc="@batch.v1.JobStatus.succeeded"),
        Col("Duration", doc="Time required to complete the job."),
        AGE,
        CONTAINERS,
        IMAGES,
        Col("Selector", doc="@batch.v1.JobSpec.selector", priority=1),
    ), _job_cells),
    "CronJob": ((
        NAME,
        Col("Schedule", doc="@batch.v1.CronJobSpec.schedule"),
        Col("Timezone", doc="@batch.v1.CronJobSpec.timeZone"),
        Col("Suspend", "boolean", "@batch.v1.CronJobSpec.suspend"),
        Col("Active", "integer", "@batch.v1.CronJobStatus.active"),
        Col("Last Schedule", doc="@batch.v1.CronJobStatus.lastScheduleTime"),
        AGE,
        CONTAINERS,
        IMAGES,
        Col("Selector", doc="@batch.v1.JobSpec.selector", priority=1),
    ), _cronjob_cells),
    "StorageClass": ((
        NAME,
        Col("Provisioner", doc="@storage.v1.StorageClass.provisioner"),
        Col("ReclaimPolicy", doc="@storage.v1.StorageClass.reclaimPolicy"),
        Col("VolumeBindingMode", doc="@storage.v1.StorageClass.volumeBindingMode"),
        Col("AllowVolumeExpansion", doc="@storage.v1.StorageClass.allowVolumeExpansion"),
        AGE,
    ), _storageclass_cells),
    "NetworkPolicy": ((
        NAME,
        Col("Pod-Selector", doc="@networking.v1.NetworkPolicySpec.podSelector"),
        AGE,
    ), _networkpolicy_cells),
    "Ingress": ((
        NAME,
        Col("Class", doc="The name of the IngressClass resource that should be used for this Ingress"),
        Col("Hosts", doc="Hosts that incoming requests are matched against before the ingress rule"),
        Col("Address", doc="Address is a list containing ingress points for the load-balancer"),
        Col("Ports", doc="Ports of TLS configurations that open"),
        AGE,
    ), ingress.cells),
    "IngressClass": ((
        NAME,
        Col("Controller", doc="Controller that is responsible for handling this class"),
        Col("Parameters", doc="A reference to a resource with additional parameters"),
        AGE,
    ), ingress.class_cells),
    "Lease": ((
        NAME,
        Col("Holder", doc="@coordination.v1.LeaseSpec.holderIdentity"),
        AGE,
    ), _lease_cells),
    "Role": (_ROLE_COLUMNS, _role_cells),
    "ClusterRole": (_ROLE_COLUMNS, _role_cells),
    "CustomResourceDefinition": (_ROLE_COLUMNS, _role_cells),
    "RoleBinding": (_binding_columns("roleBinding"), _binding_cells),
    "ClusterRoleBinding": (_binding_columns("clusterRoleBinding"), _binding_cells),
    "HorizontalPodAutoscaler": ((
        NAME,
        Col("Reference", doc="@autoscaling.v2.HorizontalPodAutoscalerSpec.scaleTargetRef"),
        Col("Targets", doc="@autoscaling.v2.HorizontalPodAutoscalerSpec.metrics"),
        Col("MinPods", doc="@autoscaling.v2.HorizontalPodAutoscalerSpec.minReplicas"),
        Col("MaxPods", doc="@autoscaling.v2.HorizontalPodAutoscalerSpec.maxReplicas"),
        Col("Replicas", doc="@autoscaling.v2.HorizontalPodAutoscalerStatus.currentReplicas"),
        AGE,
    ), hpa.cells),
    "APIService": ((
        NAME,
        Col("Service", doc="The reference to the service that hosts this API endpoint."),
        Col("Available", doc="Whether this service is available."),
        AGE,
    ), _apiservice_cells),
}

# Kinds without a printer: what kube-apiserver shows for a CRD without printer columns.
_DEFAULT: tuple[tuple[Col, ...], CellFn] = ((NAME, Col("Age", "date", "@meta.v1.ObjectMeta.creationTimestamp")),
                                            _default_cells)


@functools.cache
def _definitions(kind: str) -> tuple[tuple[tuple[str, Any], ...], ...]:
    columns, _ = _TABLES.get(kind, _DEFAULT)
    out = []
    for c in columns:
        d: dict[str, Any] = {"name": c.name, "type": c.type, "format": c.format,
                             "description": _description(c.doc), "priority": c.priority}
        out.append(tuple(d.items()))
    return tuple(out)


def column_definitions(kind: str) -> list[dict[str, Any]]:
    """The Table columnDefinitions for a kind (a fresh list each call)."""
    return [dict(items) for items in _definitions(kind)]


def row_cells(kind: str, obj: dict[str, Any], now: dt.datetime) -> list[Any]:
    """The cells of one row, one per column of `column_definitions(kind)`, wide ones included."""
    _, cells = _TABLES.get(kind, _DEFAULT)
    if now.tzinfo is None:
        now = now.replace(tzinfo=dt.timezone.utc)
    return cells(obj, now)


def row_conditions(kind: str, obj: dict[str, Any]) -> list[dict[str, Any]]:
    """Row `conditions` upstream attaches: a finished pod's row is marked Completed."""
    if kind != "Pod":
        return []
    phase = (obj.get("status") or {}).get("phase")
    message = {"Succeeded": "The pod has completed successfully.", "Failed": "The pod failed."}.get(phase or "")
    if message is None:
        return []
    return [{"type": "Completed", "status": "True", "reason": phase, "message": message}]


def known_kinds() -> list[str]:
    """Kinds with a printer of their own (everything else gets Name + Age)."""
    return sorted(_TABLES)


__all__ = ["column_definitions", "row_cells", "row_conditions", "human_duration", "format_quantity", "format_labels",
           "selector_string", "format_label_selector", "access_modes", "parse_time", "since", "known_kinds"]

