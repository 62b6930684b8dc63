"""Defaulting: the fields a real API server fills in before anything else runs.

A learner who runs `kubectl get pod web -o yaml` against a real cluster sees
`restartPolicy: Always`, `dnsPolicy: ClusterFirst`, `qosClass: BestEffort`
and a pair of `node.kubernetes.io/not-ready` tolerations they never wrote.
This module makes our objects look the same.  It mirrors upstream's
`SetDefaults_*` functions for v1.32 (pkg/apis/*/v1/defaults.go) plus the
bits that upstream does elsewhere but a user cannot tell apart from
defaulting: the admission plugins that touch every pod (ServiceAccount,
Priority, DefaultTolerationSeconds), the QoS class the pod strategy stores,
and the Service strategy's clusterIP/clusterIPs normalisation.

Division of labour: defaults fill, `validation` judges, `allocator` hands
out cluster IPs and node ports.  Every function mutates the object in place
and only fills what is missing, so running it twice changes nothing and it
is safe on updates too.  `prepare_service_update` is the one piece that
needs the old object: what upstream's Service strategy does before an update
is validated (keep allocated values the client left out, drop fields the
new type does not use).
"""

from __future__ import annotations

import copy
import ipaddress
from decimal import Decimal, InvalidOperation
from typing import Any, Callable

from . import batchdefaults, hpa, ingress, networkpolicy
from .replication import default_replication_controller

Obj = dict[str, Any]

EXTERNALLY_ACCESSIBLE = ("NodePort", "LoadBalancer")
NODE_PORT_TYPES = ("NodePort", "LoadBalancer")

# DefaultTolerationSeconds admission: how long a pod stays bound to a node
# that went NotReady/unreachable before it is evicted.
DEFAULT_TOLERATION_SECONDS = 300
_DEFAULT_TOLERATION_KEYS = ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable")


def apply_defaults(kind: str, obj: Obj) -> None:
    """Fill the defaults of `kind` into `obj`, in place (idempotent)."""
    fn = _BY_KIND.get(kind)
    if fn is not None:
        fn(obj)


# ----------------------------------------------------------------- helpers


def _child(obj: Obj, key: str) -> Obj:
    """The dict at `obj[key]`, created (or replacing junk) so defaults can go in."""
    value = obj.get(key)
    if not isinstance(value, dict):
        value = obj[key] = {}
    return value


def _spec(obj: Obj) -> Obj:
    return _child(obj, "spec")


def _dicts(value: Any) -> list[Obj]:
    """The dict items of a list field, tolerating junk (validation reports it)."""
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


# --------------------------------------------------------------- pod specs


def _image_pull_policy(image: str) -> str:
    """Always for `:latest` or an untagged image, else IfNotPresent (upstream's rule).

    A digest without a tag counts as tagged: the image cannot change under it.
    """
    name, _, digest = image.partition("@")
    last = name.rsplit("/", 1)[-1]
    tag = last.rsplit(":", 1)[1] if ":" in last else ""
    if not tag and not digest:
        tag = "latest"
    return "Always" if tag == "latest" else "IfNotPresent"


def _default_probe(probe: Any) -> None:
    if not isinstance(probe, dict):
        return
    probe.setdefault("timeoutSeconds", 1)
    probe.setdefault("periodSeconds", 10)
    probe.setdefault("successThreshold", 1)
    probe.setdefault("failureThreshold", 3)
    http = probe.get("httpGet")
    if isinstance(http, dict):
        http.setdefault("path", "/")
        http.setdefault("scheme", "HTTP")


def _default_container(c: Obj, host_network: bool) -> None:
    image = c.get("image")
    if isinstance(image, str) and image and not c.get("imagePullPolicy"):
        c["imagePullPolicy"] = _image_pull_policy(image)
    c.setdefault("terminationMessagePath", "/dev/termination-log")
    c.setdefault("terminationMessagePolicy", "File")
    _child(c, "resources")
    for port in _dicts(c.get("ports")):
        port.setdefault("protocol", "TCP")
        if host_network and not port.get("hostPort") and "containerPort" in port:
            port["hostPort"] = port["containerPort"]
    for env in _dicts(c.get("env")):
        ref = (env.get("valueFrom") or {}).get("fieldRef") if isinstance(env.get("valueFrom"), dict) else None
        if isinstance(ref, dict):
            ref.setdefault("apiVersion", "v1")
    for name in ("livenessProbe", "readinessProbe", "startupProbe"):
        _default_probe(c.get(name))


def _default_volume(v: Obj) -> None:
    sources = [k for k in v if k != "name"]
    if not sources:
        v["emptyDir"] = {}
    for src in ("secret", "configMap", "downwardAPI", "projected"):
        if isinstance(v.get(src), dict):
            v[src].setdefault("defaultMode", 420)
    # SetDefaults_ServiceAccountTokenProjection / _ObjectFieldSelector inside projected and downwardAPI volumes.
    projected: Obj = v["projected"] if isinstance(v.get("projected"), dict) else {}
    downward: list[Obj] = [v["downwardAPI"]] if isinstance(v.get("downwardAPI"), dict) else []
    for source in _dicts(projected.get("sources")):
        if isinstance(source.get("serviceAccountToken"), dict):
            source["serviceAccountToken"].setdefault("expirationSeconds", 3600)
        if isinstance(source.get("downwardAPI"), dict):
            downward.append(source["downwardAPI"])
    for d in downward:
        for item in _dicts(d.get("items")):
            if isinstance(item.get("fieldRef"), dict):
                item["fieldRef"].setdefault("apiVersion", "v1")


def default_pod_spec(spec: Obj) -> None:
    """SetDefaults_PodSpec + containers + volumes: shared by pods and templates."""
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("schedulerName", "default-scheduler")
    _child(spec, "securityContext")
    host_network = bool(spec.get("hostNetwork"))
    for key in ("initContainers", "containers", "ephemeralContainers"):
        for c in _dicts(spec.get(key)):
            _default_container(c, host_network)
    for v in _dicts(spec.get("volumes")):
        _default_volume(v)


def _requests_from_limits(spec: Obj) -> None:
    """A container that names only a limit gets the same request (SetDefaults_Pod)."""
    for key in ("initContainers", "containers"):
        for c in _dicts(spec.get(key)):
            res = c.get("resources")
            if not isinstance(res, dict) or not isinstance(res.get("limits"), dict):
                continue
            requests = res.setdefault("requests", {})
            if isinstance(requests, dict):
                for name, value in res["limits"].items():
                    requests.setdefault(name, value)


def _default_tolerations(spec: Obj) -> None:
    """DefaultTolerationSeconds admission: tolerate NotReady/unreachable for 300 s."""
    tolerations = spec.get("tolerations")
    if tolerations is None:
        tolerations = []
    if not isinstance(tolerations, list):
        return
    for key in _DEFAULT_TOLERATION_KEYS:
        covered = any(
            isinstance(t, dict) and t.get("effect", "") in ("", "NoExecute")
            and (t.get("key") == key or (not t.get("key") and t.get("operator") == "Exists"))
            for t in tolerations
        )
        if not covered:
            tolerations.append({"key": key, "operator": "Exists", "effect": "NoExecute",
                                "tolerationSeconds": DEFAULT_TOLERATION_SECONDS})
    spec["tolerations"] = tolerations


_SUFFIX: dict[str, Decimal | int] = {
    "": 1, "m": Decimal("0.001"), "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60, "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
}


def parse_quantity(value: Any) -> Decimal | None:
    """A resource quantity ("100m", "1Gi", "0.5", 2) as a number; None if malformed."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return Decimal(str(value))
    if not isinstance(value, str) or not value:
        return None
    text = value.strip()
    for suffix in sorted(_SUFFIX, key=len, reverse=True):
        if suffix and text.endswith(suffix):
            number, mult = text[: -len(suffix)], Decimal(_SUFFIX[suffix])
            break
    else:
        number, mult = text, Decimal(1)
    try:
        return Decimal(number) * mult
    except InvalidOperation:
        return None


def qos_class(spec: Obj) -> str:
    """BestEffort / Burstable / Guaranteed, as upstream's qos.GetPodQOS."""
    containers = _dicts(spec.get("containers")) + _dicts(spec.get("initContainers"))
    any_set = False
    guaranteed = True
    for c in containers:
        res: Obj = c["resources"] if isinstance(c.get("resources"), dict) else {}
        req: Obj = res["requests"] if isinstance(res.get("requests"), dict) else {}
        lim: Obj = res["limits"] if isinstance(res.get("limits"), dict) else {}
        for name in ("cpu", "memory"):
            r, l_ = parse_quantity(req.get(name)), parse_quantity(lim.get(name))
            if (r is not None and r != 0) or (l_ is not None and l_ != 0):
                any_set = True
            if l_ is None or r is None or r != l_:
                guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


def _pod(obj: Obj) -> None:
    spec = _spec(obj)
    default_pod_spec(spec)
    spec.setdefault("enableServiceLinks", True)
    # The ServiceAccount admission plugin names the default account, in both fields.
    sa = spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"
    spec.setdefault("serviceAccountName", sa)
    spec.setdefault("serviceAccount", spec["serviceAccountName"])
    # The Priority admission plugin, with no PriorityClass in the cluster.
    spec.setdefault("priority", 0)
    spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
    _requests_from_limits(spec)
    _default_tolerations(spec)
    status = _child(obj, "status")
    status.setdefault("phase", "Pending")
    status.setdefault("qosClass", qos_class(spec))


def _template(obj: Obj) -> None:
    template = _spec(obj).get("template")
    if isinstance(template, dict):
        tspec = template.get("spec")
        if isinstance(tspec, dict):
            default_pod_spec(tspec)


# ---------------------------------------------------------------- workloads


def _deployment(obj: Obj) -> None:
    spec = _spec(obj)
    spec.setdefault("replicas", 1)
    strategy = _child(spec, "strategy")
    strategy.setdefault("type", "RollingUpdate")
    if strategy["type"] == "RollingUpdate":
        ru = _child(strategy, "rollingUpdate")
        ru.setdefault("maxUnavailable", "25%")
        ru.setdefault("maxSurge", "25%")
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("progressDeadlineSeconds", 600)
    _template(obj)


def _replicaset(obj: Obj) -> None:
    _spec(obj).setdefault("replicas", 1)
    _template(obj)


def _statefulset(obj: Obj) -> None:
    spec = _spec(obj)
    spec.setdefault("replicas", 1)
    spec.setdefault("podManagementPolicy", "OrderedReady")
    strategy = _child(spec, "updateStrategy")
    strategy.setdefault("type", "RollingUpdate")
    if strategy["type"] == "RollingUpdate":
        ru = _child(strategy, "rollingUpdate")
        ru.setdefault("partition", 0)
    spec.setdefault("revisionHistoryLimit", 10)
    policy = _child(spec, "persistentVolumeClaimRetentionPolicy")
    policy.setdefault("whenDeleted", "Retain")
    policy.setdefault("whenScaled", "Retain")
    for vct in _dicts(spec.get("volumeClaimTemplates")):
        vct.setdefault("apiVersion", "v1")
        vct.setdefault("kind", "PersistentVolumeClaim")
        _pvc(vct)
        status = _child(vct, "status")
        status.setdefault("phase", "Pending")
    _template(obj)


def _daemonset(obj: Obj) -> None:
    spec = _spec(obj)
    strategy = _child(spec, "updateStrategy")
    strategy.setdefault("type", "RollingUpdate")
    if strategy["type"] == "RollingUpdate":
        ru = _child(strategy, "rollingUpdate")
        ru.setdefault("maxUnavailable", 1)
        ru.setdefault("maxSurge", 0)
    spec.setdefault("revisionHistoryLimit", 10)
    _template(obj)


def _replicationcontroller(obj: Obj) -> None:
    default_replication_controller(obj)
    _template(obj)


# ----------------------------------------------------------------- services


def _ip_family(ip: Any) -> str | None:
    try:
        return "IPv6" if ipaddress.ip_address(ip).version == 6 else "IPv4"
    except (ValueError, TypeError):
        return None


def _service(obj: Obj) -> None:
    spec = _spec(obj)
    spec.setdefault("type", "ClusterIP")
    spec.setdefault("sessionAffinity", "None")
    if spec["sessionAffinity"] == "ClientIP":
        cfg = spec.setdefault("sessionAffinityConfig", {})
        if isinstance(cfg, dict):
            cip = cfg.setdefault("clientIP", {})
            if isinstance(cip, dict):
                cip.setdefault("timeoutSeconds", 10800)
    for port in _dicts(spec.get("ports")):
        port.setdefault("protocol", "TCP")
        if port.get("targetPort") in (None, 0, "") and "port" in port:
            port["targetPort"] = port["port"]
    stype = spec["type"]
    if stype in EXTERNALLY_ACCESSIBLE or (stype == "ClusterIP" and spec.get("externalIPs")):
        spec.setdefault("externalTrafficPolicy", "Cluster")
    if stype == "LoadBalancer":
        spec.setdefault("allocateLoadBalancerNodePorts", True)
    # The Service strategy's normalisation: an old client sets only clusterIP.
    if spec.get("clusterIP") and not spec.get("clusterIPs"):
        spec["clusterIPs"] = [spec["clusterIP"]]
    if stype == "ExternalName":
        return
    spec.setdefault("internalTrafficPolicy", "Cluster")
    headless = spec.get("clusterIP") == "None"
    if "ipFamilyPolicy" not in spec:
        spec["ipFamilyPolicy"] = "RequireDualStack" if headless and not spec.get("selector") else "SingleStack"
    if not spec.get("ipFamilies"):
        ips = [ip for ip in spec.get("clusterIPs") or [] if ip != "None"]
        spec["ipFamilies"] = [_ip_family(ips[0]) or "IPv4"] if ips else ["IPv4"]


def _needs_cluster_ip(spec: Obj) -> bool:
    return bool(spec.get("type", "ClusterIP") != "ExternalName")


def _needs_node_ports(spec: Obj) -> bool:
    return spec.get("type") in NODE_PORT_TYPES


def needs_health_check_port(spec: Obj) -> bool:
    """A LoadBalancer with externalTrafficPolicy Local gets a healthCheckNodePort."""
    return bool(spec.get("type") == "LoadBalancer" and spec.get("externalTrafficPolicy") == "Local")


def prepare_service_update(new: Obj, old: Obj) -> None:
    """What upstream's Service strategy does to an update before validation.

    A client that sends a Service back without its clusterIP or nodePorts
    (`kubectl replace` of a hand-written file) keeps the allocated values;
    a client that changes the type drops the fields the new type does not
    use (nodePorts when going NodePort -> ClusterIP, clusterIPs when going
    to ExternalName), so the change validates.  Idempotent.
    """
    spec, ospec = _spec(new), old.get("spec") or {}
    # Keep allocated values the client left out.
    if _needs_cluster_ip(ospec) and _needs_cluster_ip(spec):
        if not spec.get("clusterIP") and ospec.get("clusterIP"):
            spec["clusterIP"] = ospec["clusterIP"]
        if not spec.get("clusterIPs") and ospec.get("clusterIPs"):
            spec["clusterIPs"] = list(ospec["clusterIPs"])
    if _needs_node_ports(ospec) and _needs_node_ports(spec):
        old_by_name = {p.get("name", ""): p.get("nodePort") for p in _dicts(ospec.get("ports"))}
        used = {p.get("nodePort") for p in _dicts(spec.get("ports")) if p.get("nodePort")}
        for p in _dicts(spec.get("ports")):
            if not p.get("nodePort"):
                candidate = old_by_name.get(p.get("name", ""))
                if candidate and candidate not in used:
                    p["nodePort"] = candidate
    if needs_health_check_port(ospec) and needs_health_check_port(spec):
        if not spec.get("healthCheckNodePort") and ospec.get("healthCheckNodePort"):
            spec["healthCheckNodePort"] = ospec["healthCheckNodePort"]
    # Singular changed, plural left as it was: the client meant the singular.
    if spec.get("clusterIP", "") != ospec.get("clusterIP", "") and spec.get("clusterIPs") == ospec.get("clusterIPs"):
        if spec.get("clusterIP"):
            spec["clusterIPs"] = [spec["clusterIP"]] + list((spec.get("clusterIPs") or [])[1:])
        else:
            spec.pop("clusterIPs", None)
    # Drop what the new type does not use (only if the client did not touch it).
    if _needs_cluster_ip(ospec) and not _needs_cluster_ip(spec):
        if spec.get("clusterIPs") == ospec.get("clusterIPs"):
            for key in ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"):
                spec.pop(key, None)
        spec.pop("internalTrafficPolicy", None)
    if _needs_node_ports(ospec) and not _needs_node_ports(spec):
        old_ports = [p.get("nodePort") for p in _dicts(ospec.get("ports"))]
        if [p.get("nodePort") for p in _dicts(spec.get("ports"))] == old_ports:
            for p in _dicts(spec.get("ports")):
                p.pop("nodePort", None)
    if needs_health_check_port(ospec) and not needs_health_check_port(spec):
        if spec.get("healthCheckNodePort") == ospec.get("healthCheckNodePort"):
            spec.pop("healthCheckNodePort", None)
    if spec.get("type") != "LoadBalancer":
        spec.pop("allocateLoadBalancerNodePorts", None)
        spec.pop("loadBalancerClass", None)
    stype = spec.get("type", "ClusterIP")
    if not (stype in EXTERNALLY_ACCESSIBLE or (stype == "ClusterIP" and spec.get("externalIPs"))):
        spec.pop("externalTrafficPolicy", None)
    _service(new)


def service_update_view(new: Obj, old: Obj) -> Obj:
    """A copy of `new` as `prepare_service_update` would leave it (for validation)."""
    view = copy.deepcopy(new)
    prepare_service_update(view, old)
    return view


def _endpoint_ports(ports: Any) -> None:
    for p in _dicts(ports):
        p.setdefault("protocol", "TCP")


def _endpointslice(obj: Obj) -> None:
    for p in _dicts(obj.get("ports")):
        p.setdefault("protocol", "TCP")
        p.setdefault("name", "")


def _endpoints(obj: Obj) -> None:
    for subset in _dicts(obj.get("subsets")):
        _endpoint_ports(subset.get("ports"))


# ------------------------------------------------------------------ storage


def _pvc(obj: Obj) -> None:
    _spec(obj).setdefault("volumeMode", "Filesystem")


def _pv(obj: Obj) -> None:
    spec = _spec(obj)
    spec.setdefault("persistentVolumeReclaimPolicy", "Retain")
    spec.setdefault("volumeMode", "Filesystem")
    status = _child(obj, "status")
    status.setdefault("phase", "Pending")


def _storageclass(obj: Obj) -> None:
    obj.setdefault("reclaimPolicy", "Delete")
    obj.setdefault("volumeBindingMode", "Immediate")


# -------------------------------------------------------------------- other


def _namespace(obj: Obj) -> None:
    meta = obj.setdefault("metadata", {})
    name = meta.get("name")
    if isinstance(name, str) and name:
        labels = _child(meta, "labels")
        labels["kubernetes.io/metadata.name"] = name  # always, as upstream
    spec = _spec(obj)
    if "finalizers" not in spec:
        spec["finalizers"] = ["kubernetes"]
    status = _child(obj, "status")
    status.setdefault("phase", "Active")


def _secret(obj: Obj) -> None:
    if not obj.get("type"):
        obj["type"] = "Opaque"


def _node(obj: Obj) -> None:
    status = obj.get("status")
    if isinstance(status, dict) and isinstance(status.get("capacity"), dict) and not status.get("allocatable"):
        status["allocatable"] = dict(status["capacity"])


def _event(obj: Obj) -> None:
    obj.setdefault("reportingComponent", "")
    obj.setdefault("reportingInstance", "")


def _rbac_binding(obj: Obj) -> None:
    """SetDefaults_(Cluster)RoleBinding and SetDefaults_Subject: User/Group subjects and
    the roleRef are in the rbac group unless said otherwise."""
    ref = obj.get("roleRef")
    if isinstance(ref, dict) and not ref.get("apiGroup"):
        ref["apiGroup"] = "rbac.authorization.k8s.io"
    for subject in _dicts(obj.get("subjects")):
        if subject.get("kind") in ("User", "Group") and not subject.get("apiGroup"):
            subject["apiGroup"] = "rbac.authorization.k8s.io"


_BY_KIND: dict[str, Callable[[Obj], None]] = {
    "Pod": _pod,
    "Deployment": _deployment,
    "ReplicaSet": _replicaset,
    "StatefulSet": _statefulset,
    "DaemonSet": _daemonset,
    "ReplicationController": _replicationcontroller,
    "Service": _service,
    "EndpointSlice": _endpointslice,
    "Endpoints": _endpoints,
    "PersistentVolumeClaim": _pvc,
    "PersistentVolume": _pv,
    "StorageClass": _storageclass,
    "Namespace": _namespace,
    "Secret": _secret,
    "Node": _node,
    "Event": _event,
    "RoleBinding": _rbac_binding,
    "ClusterRoleBinding": _rbac_binding,
    # Looked up when called: batchdefaults uses default_pod_spec from here.
    "Job": lambda o: batchdefaults.job(o),
    "CronJob": lambda o: batchdefaults.cronjob(o),
    "HorizontalPodAutoscaler": hpa.default,
    "NetworkPolicy": networkpolicy.default,
    "IngressClass": ingress.default_class,
}
