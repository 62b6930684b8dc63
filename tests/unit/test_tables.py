"""Server-side Table columns and cells, checked against what kube-apiserver v1.32 prints."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from kinns.api.tables import (column_definitions, format_label_selector, format_quantity, human_duration,
                              known_kinds, row_cells, row_conditions)

NOW = dt.datetime(2026, 11, 23, 12, 0, 0, tzinfo=dt.timezone.utc)


def ago(**delta: float) -> str:
    """An RFC 3339 timestamp `delta` before NOW."""
    return (NOW - dt.timedelta(**delta)).strftime("%Y-%m-%dT%H:%M:%SZ")


def meta(name: str, age: dict[str, float] | None = None, **extra: Any) -> dict[str, Any]:
    return {"name": name, "creationTimestamp": ago(**(age or {"days": 2, "hours": 3})), **extra}


def header(kind: str, wide: bool = False) -> list[str]:
    return [c["name"].upper() for c in column_definitions(kind) if wide or c["priority"] == 0]


# --- human_duration ---------------------------------------------------------

@pytest.mark.parametrize("seconds, text", [
    (-5, "<invalid>"), (-1.5, "0s"), (0, "0s"), (5, "5s"), (119, "119s"), (120, "2m"), (182, "3m2s"),
    (599, "9m59s"), (600, "10m"), (179 * 60, "179m"), (3 * 3600, "3h"), (3 * 3600 + 25 * 60, "3h25m"),
    (8 * 3600, "8h"), (47 * 3600, "47h"), (48 * 3600, "2d"), (51 * 3600, "2d3h"), (7 * 86400 + 23 * 3600, "7d23h"),
    (8 * 86400, "8d"), (45 * 86400, "45d"), (729 * 86400, "729d"), (730 * 86400, "2y"),
    (3 * 365 * 86400 + 10 * 86400, "3y10d"), (9 * 365 * 86400 + 10 * 86400, "9y"),
])
def test_human_duration(seconds: float, text: str) -> None:
    assert human_duration(seconds) == text


@pytest.mark.parametrize("value, text", [
    ("1Gi", "1Gi"), ("1024Mi", "1Gi"), ("1536Mi", "1536Mi"), ("1000M", "1G"), ("1500M", "1500M"),
    ("0.5", "500m"), ("100m", "100m"), ("512", "512"), ("1e3", "1k"), ("5Ki", "5Ki"), ("0.5Ki", "512"),
    (None, "0"), ("0", "0"), (10, "10"),
])
def test_quantity_canonical_form(value: Any, text: str) -> None:
    assert format_quantity(value) == text


def test_label_selector_syntax() -> None:
    sel = {"matchLabels": {"tier": "web", "app": "x"},
           "matchExpressions": [{"key": "env", "operator": "In", "values": ["prod", "dev"]},
                                {"key": "zz", "operator": "DoesNotExist"}]}
    assert format_label_selector(sel) == "app=x,env in (dev,prod),tier=web,!zz"
    assert format_label_selector(None) == "<none>"
    assert format_label_selector({}) == "<none>"


# --- column sets ------------------------------------------------------------

@pytest.mark.parametrize("kind, normal, wide_extra", [
    ("Pod", "NAME READY STATUS RESTARTS AGE", "IP NODE NOMINATED|NODE READINESS|GATES"),
    ("Service", "NAME TYPE CLUSTER-IP EXTERNAL-IP PORT(S) AGE", "SELECTOR"),
    ("Node", "NAME STATUS ROLES AGE VERSION",
     "INTERNAL-IP EXTERNAL-IP OS-IMAGE KERNEL-VERSION CONTAINER-RUNTIME"),
    ("Deployment", "NAME READY UP-TO-DATE AVAILABLE AGE", "CONTAINERS IMAGES SELECTOR"),
    ("ReplicaSet", "NAME DESIRED CURRENT READY AGE", "CONTAINERS IMAGES SELECTOR"),
    ("DaemonSet", "NAME DESIRED CURRENT READY UP-TO-DATE AVAILABLE NODE|SELECTOR AGE", "CONTAINERS IMAGES SELECTOR"),
    ("StatefulSet", "NAME READY AGE", "CONTAINERS IMAGES"),
    ("Endpoints", "NAME ENDPOINTS AGE", ""),
    ("EndpointSlice", "NAME ADDRESSTYPE PORTS ENDPOINTS AGE", ""),
    ("Event", "LAST|SEEN TYPE REASON OBJECT MESSAGE", "SUBOBJECT SOURCE FIRST|SEEN COUNT NAME"),
    ("PersistentVolume", "NAME CAPACITY ACCESS|MODES RECLAIM|POLICY STATUS CLAIM STORAGECLASS "
                         "VOLUMEATTRIBUTESCLASS REASON AGE", "VOLUMEMODE"),
    ("PersistentVolumeClaim", "NAME STATUS VOLUME CAPACITY ACCESS|MODES STORAGECLASS VOLUMEATTRIBUTESCLASS AGE",
     "VOLUMEMODE"),
    ("StorageClass", "NAME PROVISIONER RECLAIMPOLICY VOLUMEBINDINGMODE ALLOWVOLUMEEXPANSION AGE", ""),
    ("ConfigMap", "NAME DATA AGE", ""),
    ("Secret", "NAME TYPE DATA AGE", ""),
    ("ServiceAccount", "NAME SECRETS AGE", ""),
    ("Namespace", "NAME STATUS AGE", ""),
    ("Lease", "NAME HOLDER AGE", ""),
    ("Widget", "NAME AGE", ""),
])
def test_columns(kind: str, normal: str, wide_extra: str) -> None:
    def words(s: str) -> list[str]:
        return [w.replace("|", " ") for w in s.split()]
    assert header(kind) == words(normal)
    wide = header(kind, wide=True)
    assert [c for c in wide if c not in words(normal)] == words(wide_extra)
    for c in column_definitions(kind):
        assert set(c) == {"name", "type", "format", "description", "priority"}
        assert c["type"] in ("string", "integer", "date")


def test_name_column_is_marked_and_cell_is_the_name() -> None:
    for kind in known_kinds():
        cols = column_definitions(kind)
        names = [i for i, c in enumerate(cols) if c["format"] == "name"]
        assert len(names) == 1, kind
        cells = row_cells(kind, {"metadata": meta("thing")}, NOW)
        assert len(cells) == len(cols), kind
        assert cells[names[0]] == "thing", kind
        json.dumps(cells)


def test_default_table_for_unknown_kinds() -> None:
    cols = column_definitions("Widget")
    assert [(c["name"], c["type"]) for c in cols] == [("Name", "string"), ("Age", "date")]
    assert row_cells("Widget", {"metadata": meta("w", {"minutes": 5})}, NOW) == ["w", "5m"]
    assert row_cells("Widget", {"metadata": {"name": "w"}}, NOW) == ["w", "<unknown>"]


def test_column_definitions_are_fresh_copies() -> None:
    column_definitions("Pod")[0]["name"] = "mutated"
    assert column_definitions("Pod")[0]["name"] == "Name"


# --- pods -------------------------------------------------------------------

def pod(status: dict[str, Any], spec: dict[str, Any] | None = None, **m: Any) -> dict[str, Any]:
    spec = spec or {"containers": [{"name": "app", "image": "busybox"}, {"name": "side", "image": "nginx"}]}
    return {"metadata": meta("web-1", {"minutes": 42}, **m), "spec": spec, "status": status}


def running(ready: bool = True, restarts: int = 0, finished: str | None = None) -> dict[str, Any]:
    cs: dict[str, Any] = {"name": "c", "ready": ready, "restartCount": restarts,
                          "state": {"running": {"startedAt": ago(minutes=40)}}}
    if finished:
        cs["lastState"] = {"terminated": {"exitCode": 1, "reason": "Error", "finishedAt": finished}}
    return cs


def test_pod_running_wide() -> None:
    p = pod({"phase": "Running", "podIP": "10.244.1.5", "podIPs": [{"ip": "10.244.1.5"}],
             "containerStatuses": [running(), running(ready=False)]},
            {"nodeName": "node-1", "containers": [{"name": "a"}, {"name": "b"}]})
    assert row_cells("Pod", p, NOW) == ["web-1", "1/2", "Running", "0", "42m",
                                        "10.244.1.5", "node-1", "<none>", "<none>"]


def test_pod_pending_unscheduled() -> None:
    p = pod({"phase": "Pending"})
    assert row_cells("Pod", p, NOW)[:5] == ["web-1", "0/2", "Pending", "0", "42m"]
    assert row_cells("Pod", p, NOW)[5:] == ["<none>", "<none>", "<none>", "<none>"]


@pytest.mark.parametrize("state, reason", [
    ({"waiting": {"reason": "ContainerCreating"}}, "ContainerCreating"),
    ({"waiting": {"reason": "CrashLoopBackOff", "message": "back-off"}}, "CrashLoopBackOff"),
    ({"terminated": {"exitCode": 0, "reason": "Completed"}}, "Completed"),
    ({"terminated": {"exitCode": 1, "reason": "Error"}}, "Error"),
    ({"terminated": {"exitCode": 137}}, "ExitCode:137"),
    ({"terminated": {"exitCode": 0, "signal": 9}}, "Signal:9"),
])
def test_pod_status_from_container_state(state: dict[str, Any], reason: str) -> None:
    p = pod({"phase": "Running", "containerStatuses": [{"name": "app", "ready": False, "restartCount": 0,
                                                        "state": state}]},
            {"containers": [{"name": "app"}]})
    assert row_cells("Pod", p, NOW)[1:3] == ["0/1", reason]


def test_pod_completed_but_one_container_still_running() -> None:
    statuses = [{"name": "a", "ready": False, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
                running()]
    ready_cond = [{"type": "Ready", "status": "True"}]
    # Statuses are read last to first: the first container's "Completed" wins the reason.
    assert row_cells("Pod", pod({"phase": "Running", "containerStatuses": statuses,
                                 "conditions": ready_cond}), NOW)[1:3] == ["1/2", "Running"]
    assert row_cells("Pod", pod({"phase": "Running", "containerStatuses": statuses}), NOW)[1:3] == ["1/2", "NotReady"]


def test_pod_restarts_with_last_restart_time() -> None:
    p = pod({"phase": "Running", "containerStatuses": [running(restarts=3, finished=ago(minutes=5)),
                                                       running(restarts=1, finished=ago(hours=2))]})
    assert row_cells("Pod", p, NOW)[3] == "4 (5m ago)"
    p = pod({"phase": "Running", "containerStatuses": [running(restarts=2)]})
    assert row_cells("Pod", p, NOW)[3] == "2"


def test_pod_succeeded_and_failed_phases() -> None:
    done = {"name": "app", "ready": False, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}
    assert row_cells("Pod", pod({"phase": "Succeeded", "containerStatuses": [done]},
                                {"containers": [{"name": "app"}]}), NOW)[1:3] == ["0/1", "Completed"]
    assert row_cells("Pod", pod({"phase": "Failed", "reason": "Evicted"}), NOW)[2] == "Evicted"
    assert row_conditions("Pod", pod({"phase": "Succeeded"})) == [
        {"type": "Completed", "status": "True", "reason": "Succeeded", "message": "The pod has completed successfully."}]
    assert row_conditions("Pod", pod({"phase": "Failed"}))[0]["reason"] == "Failed"
    assert row_conditions("Pod", pod({"phase": "Running"})) == []
    assert row_conditions("Service", {"status": {"phase": "Succeeded"}}) == []


def test_pod_terminating() -> None:
    p = pod({"phase": "Running", "containerStatuses": [running(), running()]}, deletionTimestamp=ago(seconds=3))
    assert row_cells("Pod", p, NOW)[2] == "Terminating"
    p = pod({"phase": "Succeeded"}, deletionTimestamp=ago(seconds=3))
    assert row_cells("Pod", p, NOW)[2] == "Succeeded"
    p = pod({"phase": "Running", "reason": "NodeLost"}, deletionTimestamp=ago(seconds=3))
    assert row_cells("Pod", p, NOW)[2] == "Unknown"


def test_pod_scheduling_gated() -> None:
    p = pod({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False",
                                                 "reason": "SchedulingGated"}]})
    assert row_cells("Pod", p, NOW)[2] == "SchedulingGated"


INIT_SPEC = {"initContainers": [{"name": "i1"}, {"name": "i2"}], "containers": [{"name": "app"}]}


@pytest.mark.parametrize("init_states, reason", [
    ([{"running": {}}, {"waiting": {"reason": "PodInitializing"}}], "Init:0/2"),
    ([{"terminated": {"exitCode": 0, "reason": "Completed"}}, {"running": {}}], "Init:1/2"),
    ([{"terminated": {"exitCode": 0}}, {"waiting": {"reason": "CrashLoopBackOff"}}], "Init:CrashLoopBackOff"),
    ([{"terminated": {"exitCode": 2, "reason": "Error"}}, {"waiting": {"reason": "PodInitializing"}}], "Init:Error"),
    ([{"terminated": {"exitCode": 3}}, {"waiting": {}}], "Init:ExitCode:3"),
    ([{"terminated": {"exitCode": 143, "signal": 15}}, {"waiting": {}}], "Init:Signal:15"),
    # exit code 0 means done, whatever the signal: the next container is the one that counts
    ([{"terminated": {"exitCode": 0, "signal": 15}}, {"running": {}}], "Init:1/2"),
])
def test_pod_init_containers(init_states: list[dict[str, Any]], reason: str) -> None:
    statuses = [{"name": f"i{n + 1}", "ready": False, "restartCount": 0, "state": s}
                for n, s in enumerate(init_states)]
    p = pod({"phase": "Pending", "initContainerStatuses": statuses,
             "containerStatuses": [{"name": "app", "ready": False, "state": {"waiting": {"reason": "PodInitializing"}}}]},
            INIT_SPEC)
    assert row_cells("Pod", p, NOW)[1:3] == ["0/1", reason]


def test_pod_sidecar_counts_in_ready_and_restarts() -> None:
    spec = {"initContainers": [{"name": "proxy", "restartPolicy": "Always"}], "containers": [{"name": "app"}]}
    status = {"phase": "Running", "conditions": [{"type": "Initialized", "status": "True"}],
              "initContainerStatuses": [{"name": "proxy", "ready": True, "started": True, "restartCount": 2,
                                         "lastState": {"terminated": {"finishedAt": ago(minutes=7)}},
                                         "state": {"running": {}}}],
              "containerStatuses": [running()]}
    assert row_cells("Pod", pod(status, spec), NOW)[1:4] == ["2/2", "Running", "2 (7m ago)"]


def test_pod_readiness_gates() -> None:
    spec = {"containers": [{"name": "app"}], "readinessGates": [{"conditionType": "a/x"}, {"conditionType": "b/y"}]}
    status = {"phase": "Running", "conditions": [{"type": "a/x", "status": "True"}, {"type": "b/y", "status": "False"}]}
    assert row_cells("Pod", pod(status, spec), NOW)[8] == "1/2"


# --- services ---------------------------------------------------------------

def svc(spec: dict[str, Any], status: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"metadata": meta("web"), "spec": spec, "status": status or {}}


def test_service_cluster_ip() -> None:
    s = svc({"type": "ClusterIP", "clusterIP": "10.96.0.20", "clusterIPs": ["10.96.0.20"],
             "ports": [{"port": 80, "protocol": "TCP", "targetPort": 8080},
                       {"port": 53, "protocol": "UDP"}], "selector": {"app": "web", "tier": "fe"}})
    assert row_cells("Service", s, NOW) == ["web", "ClusterIP", "10.96.0.20", "<none>", "80/TCP,53/UDP", "2d3h",
                                            "app=web,tier=fe"]


def test_service_node_port_and_headless() -> None:
    s = svc({"type": "NodePort", "clusterIPs": ["10.96.5.5"], "externalIPs": ["192.168.1.9"],
             "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}]})
    assert row_cells("Service", s, NOW)[1:5] == ["NodePort", "10.96.5.5", "192.168.1.9", "80:30080/TCP"]
    s = svc({"type": "ClusterIP", "clusterIP": "None", "clusterIPs": ["None"], "selector": {"app": "db"}})
    assert row_cells("Service", s, NOW)[1:5] == ["ClusterIP", "None", "<none>", "<none>"]
    assert row_cells("Service", svc({"type": "ClusterIP"}), NOW)[6] == "<none>"


def test_service_load_balancer() -> None:
    spec = {"type": "LoadBalancer", "clusterIPs": ["10.96.0.7"], "ports": [{"port": 443, "nodePort": 31443}]}
    assert row_cells("Service", svc(spec), NOW)[3:5] == ["<pending>", "443:31443/TCP"]
    status = {"loadBalancer": {"ingress": [{"ip": "172.20.0.250"}, {"hostname": "lb.example"},
                                          {"ip": "172.20.0.250"}]}}
    assert row_cells("Service", svc(spec, status), NOW)[3] == "172.20.0.250,lb.example"
    spec["externalIPs"] = ["1.2.3.4"]
    assert row_cells("Service", svc(spec, status), NOW)[3] == "172.20.0.250,lb.example,1.2.3.4"


def test_service_external_name() -> None:
    s = svc({"type": "ExternalName", "externalName": "db.example.com"})
    assert row_cells("Service", s, NOW)[1:5] == ["ExternalName", "<none>", "db.example.com", "<none>"]


# --- nodes ------------------------------------------------------------------

def node(ready: str | None, labels: dict[str, str] | None = None, unschedulable: bool = False) -> dict[str, Any]:
    conditions = [{"type": "MemoryPressure", "status": "False"}]
    if ready is not None:
        conditions.append({"type": "Ready", "status": ready})
    return {"metadata": meta("node-1", {"days": 45}, labels=labels or {}),
            "spec": {"unschedulable": unschedulable},
            "status": {"conditions": conditions,
                       "addresses": [{"type": "Hostname", "address": "node-1"},
                                     {"type": "InternalIP", "address": "172.20.0.2"}],
                       "nodeInfo": {"kubeletVersion": "v1.32.0", "osImage": "Ubuntu 24.04 LTS",
                                    "kernelVersion": "6.8.0", "containerRuntimeVersion": ""}}}


def test_node_cells() -> None:
    labels = {"node-role.kubernetes.io/control-plane": "", "kubernetes.io/role": "infra",
              "node-role.kubernetes.io/": "x", "kubernetes.io/hostname": "node-1"}
    assert row_cells("Node", node("True", labels), NOW) == [
        "node-1", "Ready", "control-plane,infra", "45d", "v1.32.0",
        "172.20.0.2", "<none>", "Ubuntu 24.04 LTS", "6.8.0", "<unknown>"]


@pytest.mark.parametrize("ready, unschedulable, status", [
    ("True", False, "Ready"), ("False", False, "NotReady"), ("Unknown", False, "NotReady"),
    ("True", True, "Ready,SchedulingDisabled"), (None, False, "Unknown"), (None, True, "Unknown,SchedulingDisabled"),
])
def test_node_status(ready: str | None, unschedulable: bool, status: str) -> None:
    cells = row_cells("Node", node(ready, unschedulable=unschedulable), NOW)
    assert cells[1:3] == [status, "<none>"]


# --- workloads --------------------------------------------------------------

TEMPLATE = {"spec": {"containers": [{"name": "web", "image": "nginx:1.27"}, {"name": "log", "image": "busybox"}]}}


def test_deployment() -> None:
    d = {"metadata": meta("web"), "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                                           "template": TEMPLATE},
         "status": {"replicas": 3, "readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}}
    assert row_cells("Deployment", d, NOW) == ["web", "2/3", 3, 2, "2d3h", "web,log", "nginx:1.27,busybox", "app=web"]
    d["status"] = {}
    assert row_cells("Deployment", d, NOW)[1:4] == ["0/3", 0, 0]


def test_replicaset() -> None:
    rs = {"metadata": meta("web-5d4f"), "spec": {"replicas": 2, "selector": {"matchLabels": {
        "app": "web", "pod-template-hash": "5d4f"}}, "template": TEMPLATE},
        "status": {"replicas": 2, "readyReplicas": 1}}
    assert row_cells("ReplicaSet", rs, NOW) == ["web-5d4f", 2, 2, 1, "2d3h", "web,log", "nginx:1.27,busybox",
                                                "app=web,pod-template-hash=5d4f"]


def test_statefulset() -> None:
    sts = {"metadata": meta("db"), "spec": {"replicas": 3, "template": TEMPLATE}, "status": {"readyReplicas": 3}}
    assert row_cells("StatefulSet", sts, NOW) == ["db", "3/3", "2d3h", "web,log", "nginx:1.27,busybox"]


def test_daemonset() -> None:
    tmpl = {"spec": {"nodeSelector": {"kubernetes.io/os": "linux"}, "containers": [{"name": "p", "image": "kp"}]}}
    ds = {"metadata": meta("kube-proxy"), "spec": {"selector": {"matchLabels": {"k8s-app": "kube-proxy"}},
                                                   "template": tmpl},
          "status": {"desiredNumberScheduled": 3, "currentNumberScheduled": 3, "numberReady": 2,
                     "updatedNumberScheduled": 3, "numberAvailable": 2}}
    assert row_cells("DaemonSet", ds, NOW) == ["kube-proxy", 3, 3, 2, 3, 2, "kubernetes.io/os=linux", "2d3h",
                                               "p", "kp", "k8s-app=kube-proxy"]
    ds["spec"]["template"] = {"spec": {"containers": []}}
    assert row_cells("DaemonSet", ds, NOW)[6] == "<none>"


# --- endpoints --------------------------------------------------------------

def test_endpoints() -> None:
    ep = {"metadata": meta("web"), "subsets": [
        {"addresses": [{"ip": "10.244.1.2"}, {"ip": "10.244.2.3"}], "ports": [{"port": 80}, {"port": 443}]}]}
    assert row_cells("Endpoints", ep, NOW) == ["web", "10.244.1.2:80,10.244.2.3:80,10.244.1.2:443 + 1 more...",
                                               "2d3h"]
    ep["subsets"] = [{"addresses": [{"ip": "10.244.1.2"}], "ports": [{"port": 80}]},
                     {"addresses": [{"ip": "fd00::5"}], "ports": [{"port": 8080}]}]
    assert row_cells("Endpoints", ep, NOW)[1] == "10.244.1.2:80,[fd00::5]:8080"
    ep["subsets"] = [{"addresses": [{"ip": "10.244.1.9"}]}]
    assert row_cells("Endpoints", ep, NOW)[1] == "10.244.1.9"
    ep["subsets"] = [{"notReadyAddresses": [{"ip": "10.244.1.9"}], "ports": [{"port": 80}]}]
    assert row_cells("Endpoints", ep, NOW)[1] == ""
    assert row_cells("Endpoints", {"metadata": meta("none")}, NOW)[1] == "<none>"


def test_endpointslice() -> None:
    es = {"metadata": meta("web-abcde"), "addressType": "IPv4",
          "ports": [{"name": "http", "port": 80, "protocol": "TCP"}, {"name": "named"}, {}],
          "endpoints": [{"addresses": ["10.244.1.2"]}, {"addresses": ["10.244.2.3"]},
                        {"addresses": ["10.244.3.4"]}, {"addresses": ["10.244.4.5"]}]}
    assert row_cells("EndpointSlice", es, NOW) == ["web-abcde", "IPv4", "80,named,*",
                                                   "10.244.1.2,10.244.2.3,10.244.3.4 + 1 more...", "2d3h"]
    empty = {"metadata": meta("e"), "addressType": "IPv4"}
    assert row_cells("EndpointSlice", empty, NOW)[2:4] == ["<unset>", "<unset>"]


# --- events -----------------------------------------------------------------

def test_event_core_v1() -> None:
    ev = {"metadata": meta("web-1.17a"), "type": "Warning", "reason": "BackOff",
          "message": "Back-off restarting failed container\n",
          "involvedObject": {"kind": "Pod", "name": "web-1", "fieldPath": "spec.containers{app}"},
          "source": {"component": "kubelet", "host": "node-1"},
          "firstTimestamp": ago(minutes=30), "lastTimestamp": ago(seconds=40), "count": 7}
    assert row_cells("Event", ev, NOW) == ["40s", "Warning", "BackOff", "pod/web-1", "spec.containers{app}",
                                           "kubelet, node-1", "Back-off restarting failed container",
                                           "30m", 7, "web-1.17a"]


def test_event_new_api_singleton_and_series() -> None:
    ev = {"metadata": meta("x"), "type": "Normal", "reason": "Scheduled", "message": "ok",
          "involvedObject": {"kind": "Node"}, "eventTime": "2026-11-23T11:59:00.123456Z",
          "reportingComponent": "default-scheduler", "reportingInstance": ""}
    assert row_cells("Event", ev, NOW) == ["59s", "Normal", "Scheduled", "node", "", "default-scheduler", "ok",
                                           "59s", 1, "x"]
    ev["series"] = {"count": 4, "lastObservedTime": "2026-11-23T11:59:55.000000Z"}
    cells = row_cells("Event", ev, NOW)
    assert (cells[0], cells[8]) == ("5s", 4)
    assert row_cells("Event", {"metadata": meta("y")}, NOW)[0] == "<unknown>"


# --- storage ----------------------------------------------------------------

def test_persistent_volume() -> None:
    pv = {"metadata": meta("pv-1", annotations={}),
          "spec": {"capacity": {"storage": "1024Mi"}, "accessModes": ["ReadWriteMany", "ReadWriteOnce",
                                                                     "ReadWriteOnce"],
                   "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "standard",
                   "claimRef": {"namespace": "default", "name": "data"}, "volumeMode": "Filesystem"},
          "status": {"phase": "Bound"}}
    assert row_cells("PersistentVolume", pv, NOW) == ["pv-1", "1Gi", "RWO,RWX", "Retain", "Bound", "default/data",
                                                      "standard", "<unset>", "", "2d3h", "Filesystem"]
    pv["metadata"]["deletionTimestamp"] = ago(seconds=1)
    pv["metadata"]["annotations"] = {"volume.beta.kubernetes.io/storage-class": "old"}
    del pv["spec"]["claimRef"], pv["spec"]["volumeMode"]
    cells = row_cells("PersistentVolume", pv, NOW)
    assert (cells[4], cells[5], cells[6], cells[10]) == ("Terminating", "", "old", "<unset>")


def test_persistent_volume_claim() -> None:
    pvc = {"metadata": meta("data"), "spec": {"accessModes": ["ReadWriteOncePod"], "storageClassName": "standard",
                                              "resources": {"requests": {"storage": "5Gi"}}},
           "status": {"phase": "Pending"}}
    assert row_cells("PersistentVolumeClaim", pvc, NOW) == ["data", "Pending", "", "", "", "standard", "<unset>",
                                                            "2d3h", "<unset>"]
    pvc["spec"].update(volumeName="pvc-123", volumeMode="Filesystem", volumeAttributesClassName="gold")
    pvc["status"] = {"phase": "Bound", "accessModes": ["ReadWriteOncePod"], "capacity": {"storage": "5Gi"}}
    assert row_cells("PersistentVolumeClaim", pvc, NOW) == ["data", "Bound", "pvc-123", "5Gi", "RWOP", "standard",
                                                            "gold", "2d3h", "Filesystem"]


def test_storage_class() -> None:
    sc = {"metadata": meta("standard", annotations={"storageclass.kubernetes.io/is-default-class": "true"}),
          "provisioner": "kinns.io/hostpath"}
    assert row_cells("StorageClass", sc, NOW) == ["standard (default)", "kinns.io/hostpath", "Delete", "Immediate",
                                                  False, "2d3h"]
    sc = {"metadata": meta("fast"), "provisioner": "p", "reclaimPolicy": "Retain",
          "volumeBindingMode": "WaitForFirstConsumer", "allowVolumeExpansion": True}
    assert row_cells("StorageClass", sc, NOW) == ["fast", "p", "Retain", "WaitForFirstConsumer", True, "2d3h"]


# --- the simple ones --------------------------------------------------------

def test_simple_kinds() -> None:
    assert row_cells("Namespace", {"metadata": meta("default"), "status": {"phase": "Active"}}, NOW) == \
        ["default", "Active", "2d3h"]
    assert row_cells("ConfigMap", {"metadata": meta("cfg"), "data": {"a": "1", "b": "2"},
                                   "binaryData": {"c": "AA=="}}, NOW) == ["cfg", 3, "2d3h"]
    assert row_cells("ConfigMap", {"metadata": meta("empty")}, NOW) == ["empty", 0, "2d3h"]
    assert row_cells("Secret", {"metadata": meta("tls"), "type": "kubernetes.io/tls",
                                "data": {"tls.crt": "", "tls.key": ""}}, NOW) == ["tls", "kubernetes.io/tls", 2,
                                                                                 "2d3h"]
    assert row_cells("ServiceAccount", {"metadata": meta("default")}, NOW) == ["default", 0, "2d3h"]
    assert row_cells("ServiceAccount", {"metadata": meta("bot"), "secrets": [{"name": "t"}]}, NOW)[1] == 1
    assert row_cells("Lease", {"metadata": meta("node-1"), "spec": {"holderIdentity": "node-1"}}, NOW) == \
        ["node-1", "node-1", "2d3h"]
    assert row_cells("Lease", {"metadata": meta("free"), "spec": {}}, NOW)[1] == ""


def test_ages_from_fractional_and_offset_timestamps() -> None:
    obj = {"metadata": {"name": "n", "creationTimestamp": "2026-11-23T13:00:00+01:00"}}
    assert row_cells("ConfigMap", obj, NOW)[2] == "0s"
    obj["metadata"]["creationTimestamp"] = "2026-11-23T11:58:00.123456789Z"
    assert row_cells("ConfigMap", obj, NOW)[2] == "119s"
    obj["metadata"]["creationTimestamp"] = "2026-11-23T12:00:05Z"  # a clock ahead of ours
    assert row_cells("ConfigMap", obj, NOW)[2] == "<invalid>"
