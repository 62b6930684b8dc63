"""Defaulting and validation: what a user sees after `kubectl apply`.

Table-driven.  Each validation case is a manifest (defaulted first, as the
API server does) and the exact `field: message` lines a real v1.32 API
server reports for it; each defaulting case names fields a user finds in
`kubectl get -o yaml` without having written them.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Callable

import pytest

from kinns.api.defaults import apply_defaults, qos_class
from kinns.api.errors import invalid
from kinns.api.validation import validate, validate_update

Obj = dict[str, Any]


# ------------------------------------------------------------------ builders


def meta(name: str, ns: str | None = "default", **extra: Any) -> Obj:
    m: Obj = {"name": name, **extra}
    if ns is not None:
        m["namespace"] = ns
    return m


def pod(name: str = "web", **spec: Any) -> Obj:
    base: Obj = {"containers": [{"name": "c", "image": "nginx"}]}
    base.update(spec)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta(name), "spec": base}


def svc(name: str = "web", **spec: Any) -> Obj:
    base: Obj = {"ports": [{"port": 80}], "selector": {"app": name}}
    base.update(spec)
    return {"apiVersion": "v1", "kind": "Service", "metadata": meta(name), "spec": base}


def template(labels: dict[str, str] | None = None, **spec: Any) -> Obj:
    base: Obj = {"containers": [{"name": "c", "image": "nginx"}]}
    base.update(spec)
    return {"metadata": {"labels": {"app": "x"} if labels is None else labels}, "spec": base}


def workload(kind: str, name: str = "x", selector: Any = "default", tmpl: Obj | None = None, **spec: Any) -> Obj:
    base: Obj = {"template": tmpl or template()}
    if selector == "default":
        base["selector"] = {"matchLabels": {"app": "x"}}
    elif selector is not None:
        base["selector"] = selector
    base.update(spec)
    return {"apiVersion": "apps/v1", "kind": kind, "metadata": meta(name), "spec": base}


def pvc(name: str = "data", **spec: Any) -> Obj:
    base: Obj = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
    base.update(spec)
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": meta(name), "spec": base}


def errors(kind: str, obj: Obj) -> list[str]:
    obj = copy.deepcopy(obj)
    apply_defaults(kind, obj)
    return [str(e) for e in validate(kind, obj)]


def update_errors(kind: str, old: Obj, change: Callable[[Obj], None]) -> list[str]:
    old = copy.deepcopy(old)
    apply_defaults(kind, old)
    assert validate(kind, old) == []
    new = copy.deepcopy(old)
    change(new)
    apply_defaults(kind, new)
    return [str(e) for e in validate_update(kind, new, old)]


# ------------------------------------------------------------ create cases

LABEL_MSG = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start "
             "and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is "
             "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')")
SUBDOMAIN_MSG = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and "
                 "must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation "
                 "is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")
DNS1035_MSG = ("a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic "
               "character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for "
               "validation is '[a-z]([-a-z0-9]*[a-z0-9])?')")
QNAME_MSG = ("name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
             "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
             "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')")
PORT_RANGE = "must be between 1 and 65535, inclusive"


@dataclass
class Case:
    id: str
    kind: str
    obj: Obj
    want: list[str] = field(default_factory=list)   # exact messages, in order


def _cm(name: str, **extra: Any) -> Obj:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta(name), **extra}


CREATE_CASES = [
    # --- metadata, any kind
    Case("valid-configmap", "ConfigMap", _cm("settings", data={"a.b": "1"})),
    Case("bad-name", "ConfigMap", _cm("Bad_Name"), [f'metadata.name: Invalid value: "Bad_Name": {SUBDOMAIN_MSG}']),
    Case("no-name", "ConfigMap", {"metadata": {"namespace": "default"}},
         ["metadata.name: Required value: name or generateName is required"]),
    Case("long-name", "ConfigMap", _cm("a" * 254),
         [f'metadata.name: Invalid value: "{"a" * 254}": must be no more than 253 characters']),
    Case("namespace-name-is-label", "Namespace", {"metadata": {"name": "a.b"}},
         [f'metadata.name: Invalid value: "a.b": {LABEL_MSG}']),
    Case("service-name-is-dns1035", "Service", svc("1web"),
         [f'metadata.name: Invalid value: "1web": {DNS1035_MSG}']),
    Case("bad-label-key", "ConfigMap", {"metadata": meta("c", labels={"-x": "y"})},
         [f'metadata.labels: Invalid value: "-x": {QNAME_MSG}']),
    Case("bad-label-value", "ConfigMap", {"metadata": meta("c", labels={"app": "a b"})},
         ['metadata.labels: Invalid value: "a b": a valid label must be an empty string or consist of alphanumeric '
          "characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or "
          "'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"]),
    Case("label-value-too-long", "ConfigMap", {"metadata": meta("c", labels={"app": "v" * 64})},
         [f'metadata.labels: Invalid value: "{"v" * 64}": must be no more than 63 characters']),
    Case("annotations-too-big", "ConfigMap", {"metadata": meta("c", annotations={"a": "x" * (256 * 1024)})},
         ["metadata.annotations: Too long: may not be more than 262144 bytes"]),
    Case("configmap-bad-key", "ConfigMap", _cm("c", data={"a b": "1"}),
         ["data[a b]: Invalid value: \"a b\": a valid config key must consist of alphanumeric characters, '-', '_' "
          "or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is "
          "'[-._a-zA-Z0-9]+')"]),
    # --- Service
    Case("service-ok", "Service", svc()),
    Case("service-headless-no-ports", "Service", svc(ports=[], clusterIP="None")),
    Case("service-port-zero", "Service", svc(ports=[{"port": 0, "targetPort": 8080}]),
         [f"spec.ports[0].port: Invalid value: 0: {PORT_RANGE}"]),
    Case("service-port-70000", "Service", svc(ports=[{"port": 70000, "targetPort": 80}]),
         [f"spec.ports[0].port: Invalid value: 70000: {PORT_RANGE}"]),
    Case("service-no-ports", "Service", svc(ports=[]), ["spec.ports: Required value"]),
    Case("service-duplicate-port-names", "Service",
         svc(ports=[{"name": "http", "port": 80}, {"name": "http", "port": 81}]),
         ['spec.ports[1].name: Duplicate value: "http"']),
    Case("service-port-names-required", "Service", svc(ports=[{"port": 80}, {"name": "b", "port": 81}]),
         ["spec.ports[0].name: Required value"]),
    Case("service-bad-protocol", "Service", svc(ports=[{"port": 80, "protocol": "tcp"}]),
         ['spec.ports[0].protocol: Unsupported value: "tcp": supported values: "SCTP", "TCP", "UDP"']),
    Case("service-bad-target-port-name", "Service", svc(ports=[{"port": 80, "targetPort": "HTTP"}]),
         ['spec.ports[0].targetPort: Invalid value: "HTTP": must contain only alpha-numeric characters '
          "(a-z, 0-9), and hyphens (-)"]),
    Case("service-bad-type", "Service", svc(type="Magic"),
         ['spec.type: Unsupported value: "Magic": supported values: "ClusterIP", "ExternalName", '
          '"LoadBalancer", "NodePort"']),
    Case("service-nodeport-on-clusterip", "Service", svc(ports=[{"port": 80, "nodePort": 30080}]),
         ["spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"]),
    Case("service-duplicate-port", "Service", svc(ports=[{"name": "a", "port": 80}, {"name": "b", "port": 80}]),
         ['spec.ports[1]: Duplicate value: core.ServicePort{Name:"", Protocol:"TCP", AppProtocol:(*string)(nil), '
          'Port:80, TargetPort:intstr.IntOrString{Type:0, IntVal:0, StrVal:""}, NodePort:0}']),
    Case("service-headless-nodeport", "Service", svc(type="NodePort", clusterIP="None"),
         ["spec.clusterIPs[0]: Invalid value: \"None\": may not be set to 'None' for NodePort services"]),
    Case("service-bad-cluster-ip", "Service", svc(clusterIP="10.96.0.300"),
         ['spec.clusterIPs[0]: Invalid value: "10.96.0.300": must be a valid IP address, '
          "(e.g. 10.9.8.7 or 2001:db8::ffff)"]),
    Case("service-externalname-ok", "Service", svc(type="ExternalName", externalName="example.com.", ports=[])),
    Case("service-externalname-missing", "Service", svc(type="ExternalName", ports=[]),
         ["spec.externalName: Required value"]),
    Case("service-externalname-with-ip", "Service", svc(type="ExternalName", externalName="a.b", clusterIP="10.96.0.9"),
         ["spec.clusterIPs: Forbidden: may not be set for ExternalName services"]),
    Case("service-bad-affinity", "Service", svc(sessionAffinity="Sticky"),
         ['spec.sessionAffinity: Unsupported value: "Sticky": supported values: "ClientIP", "None"']),
    Case("service-etp-on-clusterip", "Service", svc(externalTrafficPolicy="Local"),
         ['spec.externalTrafficPolicy: Invalid value: "Local": may only be set for externally-accessible services']),
    # --- Pod
    Case("pod-ok", "Pod", pod()),
    Case("pod-no-containers", "Pod", pod(containers=[]), ["spec.containers: Required value"]),
    Case("pod-no-image", "Pod", pod(containers=[{"name": "c"}]), ["spec.containers[0].image: Required value"]),
    Case("pod-bad-container-name", "Pod", pod(containers=[{"name": "My_C", "image": "x"}]),
         [f'spec.containers[0].name: Invalid value: "My_C": {LABEL_MSG}']),
    Case("pod-duplicate-container", "Pod", pod(containers=[{"name": "c", "image": "x"}, {"name": "c", "image": "y"}]),
         ['spec.containers[1].name: Duplicate value: "c"']),
    Case("pod-bad-container-port", "Pod", pod(containers=[{"name": "c", "image": "x",
                                                           "ports": [{"containerPort": 99999}]}]),
         [f"spec.containers[0].ports[0].containerPort: Invalid value: 99999: {PORT_RANGE}"]),
    Case("pod-duplicate-port-name", "Pod", pod(containers=[{"name": "c", "image": "x", "ports": [
        {"name": "http", "containerPort": 80}, {"name": "http", "containerPort": 81}]}]),
         ['spec.containers[0].ports[1].name: Duplicate value: "http"']),
    Case("pod-host-port-conflict", "Pod", pod(containers=[
        {"name": "a", "image": "x", "ports": [{"containerPort": 80, "hostPort": 8080}]},
        {"name": "b", "image": "x", "ports": [{"containerPort": 81, "hostPort": 8080}]}]),
         ['spec.containers[1].ports[0].hostPort: Duplicate value: "TCP//8080"']),
    Case("pod-bad-restart-policy", "Pod", pod(restartPolicy="Sometimes"),
         ['spec.restartPolicy: Unsupported value: "Sometimes": supported values: "Always", "OnFailure", "Never"']),
    Case("pod-bad-dns-policy", "Pod", pod(dnsPolicy="Google"),
         ['spec.dnsPolicy: Unsupported value: "Google": supported values: "ClusterFirst", '
          '"ClusterFirstWithHostNet", "Default", "None"']),
    Case("pod-mount-unknown-volume", "Pod", pod(containers=[{"name": "c", "image": "x",
                                                             "volumeMounts": [{"name": "data", "mountPath": "/d"}]}]),
         ['spec.containers[0].volumeMounts[0].name: Not found: "data"']),
    Case("pod-duplicate-volume", "Pod", pod(volumes=[{"name": "v", "emptyDir": {}}, {"name": "v", "emptyDir": {}}]),
         ['spec.volumes[1].name: Duplicate value: "v"']),
    Case("pod-requests-over-limits", "Pod", pod(containers=[{"name": "c", "image": "x", "resources": {
        "requests": {"cpu": "2"}, "limits": {"cpu": "500m"}}}]),
         ['spec.containers[0].resources.requests: Invalid value: "2": must be less than or equal to cpu limit of 500m']),
    Case("pod-probe-without-handler", "Pod", pod(containers=[{"name": "c", "image": "x", "livenessProbe": {}}]),
         ["spec.containers[0].livenessProbe: Required value: must specify a handler type"]),
    Case("pod-liveness-success-threshold", "Pod", pod(containers=[{"name": "c", "image": "x", "livenessProbe": {
        "tcpSocket": {"port": 80}, "successThreshold": 2}}]),
         ["spec.containers[0].livenessProbe.successThreshold: Invalid value: 2: must be 1"]),
    Case("pod-bad-env-name", "Pod", pod(containers=[{"name": "c", "image": "x", "env": [{"name": "1X", "value": "y"}]}]),
         ['spec.containers[0].env[0].name: Invalid value: "1X": a valid environment variable name must consist of '
          "alphabetic characters, digits, '_', '-', or '.', and must not start with a digit (e.g. 'my.env-name',  "
          "or 'MY_ENV.NAME',  or 'MyEnvName1', regex used for validation is '[-._a-zA-Z][-._a-zA-Z0-9]*')"]),
    # --- workloads
    Case("deployment-ok", "Deployment", workload("Deployment")),
    Case("deployment-selector-mismatch", "Deployment", workload("Deployment", tmpl=template({"app": "y"})),
         ['spec.template.metadata.labels: Invalid value: map[string]string{"app":"y"}: '
          "`selector` does not match template `labels`"]),
    # A missing selector selects nothing, so upstream also reports the mismatch.
    Case("deployment-no-selector", "Deployment", workload("Deployment", selector=None),
         ["spec.selector: Required value",
          'spec.template.metadata.labels: Invalid value: map[string]string{"app":"x"}: '
          "`selector` does not match template `labels`"]),
    Case("daemonset-no-selector", "DaemonSet", workload("DaemonSet", selector=None),
         ['spec.template.metadata.labels: Invalid value: map[string]string{"app":"x"}: '
          "`selector` does not match template `labels`"]),
    Case("statefulset-empty-selector", "StatefulSet", workload("StatefulSet", selector={}),
         ["spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), "
          "MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: empty selector is invalid for statefulset"]),
    Case("deployment-bad-strategy", "Deployment", workload("Deployment", strategy={"type": "BlueGreen"}),
         ['spec.strategy: Unsupported value: apps.DeploymentStrategy{Type:"BlueGreen", '
          'RollingUpdate:(*apps.RollingUpdateDeployment)(nil)}: supported values: "Recreate", "RollingUpdate"']),
    Case("deployment-empty-selector", "Deployment", workload("Deployment", selector={}),
         ["spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), "
          "MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: empty selector is invalid for deployment"]),
    Case("deployment-negative-replicas", "Deployment", workload("Deployment", replicas=-1),
         ["spec.replicas: Invalid value: -1: must be greater than or equal to 0"]),
    Case("deployment-restart-never", "Deployment", workload("Deployment", tmpl=template(restartPolicy="Never")),
         ['spec.template.spec.restartPolicy: Unsupported value: "Never": supported values: "Always"']),
    Case("deployment-surge-and-unavailable-zero", "Deployment", workload(
        "Deployment", strategy={"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 0}}),
         ["spec.strategy.rollingUpdate.maxUnavailable: Invalid value: intstr.IntOrString{Type:0, IntVal:0, "
          'StrVal:""}: may not be 0 when `maxSurge` is 0']),
    Case("replicaset-mismatch", "ReplicaSet", workload("ReplicaSet", tmpl=template({"app": "z", "tier": "w"})),
         ['spec.template.metadata.labels: Invalid value: map[string]string{"app":"z", "tier":"w"}: '
          "`selector` does not match template `labels`"]),
    Case("statefulset-mounts-claim-template", "StatefulSet", workload(
        "StatefulSet", serviceName="x", volumeClaimTemplates=[{"metadata": {"name": "data"}, "spec": {
            "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}],
        tmpl=template(containers=[{"name": "c", "image": "x", "volumeMounts": [{"name": "data", "mountPath": "/d"}]}]))),
    Case("statefulset-bad-policy", "StatefulSet", workload("StatefulSet", podManagementPolicy="Fast"),
         ["spec.podManagementPolicy: Invalid value: \"Fast\": must be 'OrderedReady' or 'Parallel'"]),
    Case("daemonset-both-zero", "DaemonSet", workload(
        "DaemonSet", updateStrategy={"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 0}}),
         ["spec.updateStrategy.rollingUpdate.maxUnavailable: Required value: cannot be 0 when maxSurge is 0"]),
    # --- storage
    Case("pvc-ok", "PersistentVolumeClaim", pvc()),
    Case("pvc-no-access-modes", "PersistentVolumeClaim", pvc(accessModes=[]),
         ["spec.accessModes: Required value: at least 1 access mode is required"]),
    Case("pvc-no-storage", "PersistentVolumeClaim", pvc(resources={}), ["spec.resources[storage]: Required value"]),
    Case("pvc-bad-mode", "PersistentVolumeClaim", pvc(accessModes=["ReadWriteSometimes"]),
         ['spec.accessModes: Unsupported value: "ReadWriteSometimes": supported values: "ReadOnlyMany", '
          '"ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod"']),
    Case("pv-ok", "PersistentVolume", {"metadata": meta("pv1", None), "spec": {
        "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "hostPath": {"path": "/tmp/x"}}}),
    Case("pv-no-source", "PersistentVolume", {"metadata": meta("pv1", None), "spec": {
        "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"]}},
         ["spec: Required value: must specify a volume type"]),
    Case("storageclass-no-provisioner", "StorageClass", {"metadata": meta("fast", None)},
         ["provisioner: Required value"]),
    # --- other kinds
    Case("endpointslice-bad-type", "EndpointSlice", {"metadata": meta("s"), "addressType": "IPv5", "endpoints": []},
         ['addressType: Unsupported value: "IPv5": supported values: "FQDN", "IPv4", "IPv6"']),
    Case("endpointslice-bad-address", "EndpointSlice", {"metadata": meta("s"), "addressType": "IPv4",
                                                         "endpoints": [{"addresses": ["::1"]}]},
         ['endpoints[0].addresses[0]: Invalid value: "::1": must be a valid IPv4 address']),
    Case("event-namespace-mismatch", "Event", {"metadata": meta("e", "team"), "involvedObject": {
        "kind": "Pod", "name": "p", "namespace": "other"}},
         ['involvedObject.namespace: Invalid value: "other": does not match event.namespace']),
    Case("lease-zero-duration", "Lease", {"metadata": meta("l"), "spec": {"leaseDurationSeconds": 0}},
         ["spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0"]),
    Case("node-bad-taint-effect", "Node", {"metadata": meta("n1", None), "spec": {"taints": [
        {"key": "k", "effect": "Sometimes"}]}},
         ['metadata.taints[0].effect: Unsupported value: "Sometimes": supported values: "NoSchedule", '
          '"PreferNoSchedule", "NoExecute"']),
    Case("secret-tls-missing-keys", "Secret", {"metadata": meta("t"), "type": "kubernetes.io/tls", "data": {}},
         ["data[tls.crt]: Required value", "data[tls.key]: Required value"]),
]


@pytest.mark.parametrize("case", CREATE_CASES, ids=[c.id for c in CREATE_CASES])
def test_create_validation(case: Case) -> None:
    assert errors(case.kind, case.obj) == case.want


def test_kubectl_sees_upstream_sentence() -> None:
    errs = validate("Service", _defaulted("Service", svc("kp", ports=[{"port": 0, "targetPort": 80}])))
    assert invalid("Service", "", "kp", errs).message == (
        'Service "kp" is invalid: spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive')
    causes = invalid("Service", "", "kp", errs).details["causes"]  # type: ignore[index]
    assert causes == [{"reason": "FieldValueInvalid", "field": "spec.ports[0].port",
                       "message": "Invalid value: 0: must be between 1 and 65535, inclusive"}]


def test_port_zero_without_target_port_reports_both() -> None:
    """Upstream defaults targetPort to port (0 here), then rejects both."""
    assert errors("Service", svc(ports=[{"port": 0}])) == [
        f"spec.ports[0].port: Invalid value: 0: {PORT_RANGE}",
        f"spec.ports[0].targetPort: Invalid value: 0: {PORT_RANGE}",
    ]


def _defaulted(kind: str, obj: Obj) -> Obj:
    obj = copy.deepcopy(obj)
    apply_defaults(kind, obj)
    return obj


# ------------------------------------------------------------ update cases


@dataclass
class UpdateCase:
    id: str
    kind: str
    old: Obj
    change: Callable[[Obj], None]
    want: list[str] = field(default_factory=list)


def _set(path: str, value: Any) -> Callable[[Obj], None]:
    def change(obj: Obj) -> None:
        keys = path.split(".")
        cur = obj
        for k in keys[:-1]:
            cur = cur[int(k)] if isinstance(cur, list) else cur.setdefault(k, {})
        if isinstance(cur, list):
            cur[int(keys[-1])] = value
        else:
            cur[keys[-1]] = value
    return change


_ALLOCATED = svc("stable", clusterIP="10.96.5.5")

UPDATE_CASES = [
    UpdateCase("deployment-selector-immutable", "Deployment", workload("Deployment"),
               lambda d: d["spec"].update(selector={"matchLabels": {"app": "other"}},
                                          template=template({"app": "other"})),
               ['spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{"app":"other"}, '
                "MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable"]),
    UpdateCase("deployment-scale-ok", "Deployment", workload("Deployment"), _set("spec.replicas", 5)),
    UpdateCase("daemonset-selector-immutable", "DaemonSet", workload("DaemonSet"),
               lambda d: d["spec"].update(selector={"matchLabels": {"app": "x", "b": "c"}},
                                          template=template({"app": "x", "b": "c"})),
               ['spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{"app":"x", "b":"c"}, '
                "MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable"]),
    UpdateCase("statefulset-service-name", "StatefulSet", workload("StatefulSet", serviceName="a"),
               _set("spec.serviceName", "b"),
               ["spec: Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', "
                "'template', 'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' "
                "and 'minReadySeconds' are forbidden"]),
    UpdateCase("statefulset-template-ok", "StatefulSet", workload("StatefulSet", serviceName="a"),
               _set("spec.template.spec.containers.0.image", "nginx:2")),
    UpdateCase("service-cluster-ip-immutable", "Service", _ALLOCATED,
               lambda s: s["spec"].update(clusterIP="10.96.100.100"),
               ['spec.clusterIPs[0]: Invalid value: []string{"10.96.100.100"}: may not change once set']),
    UpdateCase("service-cluster-ip-omitted-is-kept", "Service", _ALLOCATED,
               lambda s: [s["spec"].pop("clusterIP"), s["spec"].pop("clusterIPs")]),
    UpdateCase("service-to-externalname", "Service", _ALLOCATED,
               lambda s: s["spec"].update(type="ExternalName", externalName="example.com")),
    UpdateCase("configmap-immutable", "ConfigMap", _cm("c", data={"a": "1"}, immutable=True),
               _set("data", {"a": "2"}), ["data: Forbidden: field is immutable when `immutable` is set"]),
    UpdateCase("configmap-mutable", "ConfigMap", _cm("c", data={"a": "1"}), _set("data", {"a": "2"})),
    UpdateCase("secret-type-immutable", "Secret", {"metadata": meta("s"), "type": "Opaque"},
               _set("type", "example.com/other"), ['type: Invalid value: "example.com/other": field is immutable']),
    UpdateCase("pvc-unbound-resize", "PersistentVolumeClaim", pvc(),
               _set("spec.resources", {"requests": {"storage": "2Gi"}}),
               ["spec: Forbidden: spec is immutable after creation except resources.requests for bound claims\n"
                "  core.PersistentVolumeClaimSpec{\n"
                '- \tResources: {"requests": {"storage": "1Gi"}},\n'
                '+ \tResources: {"requests": {"storage": "2Gi"}},\n'
                "  }"]),
    UpdateCase("pvc-bound-grow", "PersistentVolumeClaim", pvc() | {"status": {"phase": "Bound"}},
               _set("spec.resources", {"requests": {"storage": "2Gi"}})),
    UpdateCase("pvc-bound-shrink", "PersistentVolumeClaim",
               pvc() | {"status": {"phase": "Bound", "capacity": {"storage": "1Gi"}}},
               _set("spec.resources", {"requests": {"storage": "500Mi"}}),
               ["spec.resources.requests.storage: Forbidden: field can not be less than status.capacity"]),
    # RecoverVolumeExpansionFailure: a request above the capacity may come back down (a failed expansion).
    UpdateCase("pvc-bound-shrink-to-capacity", "PersistentVolumeClaim",
               pvc() | {"status": {"phase": "Bound", "capacity": {"storage": "500Mi"}}},
               _set("spec.resources", {"requests": {"storage": "600Mi"}})),
    UpdateCase("pvc-bind-volume-name", "PersistentVolumeClaim", pvc(), _set("spec.volumeName", "pv-1")),
    UpdateCase("pod-image-ok", "Pod", pod(), _set("spec.containers.0.image", "nginx:1.27")),
    UpdateCase("pod-add-toleration-ok", "Pod", pod(),
               lambda p: p["spec"]["tolerations"].append({"key": "k", "operator": "Exists", "effect": "NoSchedule"})),
    UpdateCase("storageclass-provisioner", "StorageClass", {"metadata": meta("sc", None), "provisioner": "a.io/x"},
               _set("provisioner", "b.io/y"), ["provisioner: Forbidden: updates to provisioner are forbidden."]),
    UpdateCase("node-pod-cidr", "Node", {"metadata": meta("n", None), "spec": {"podCIDR": "10.244.1.0/24",
                                                                             "podCIDRs": ["10.244.1.0/24"]}},
               lambda n: n["spec"].update(podCIDR="10.244.2.0/24", podCIDRs=["10.244.2.0/24"]),
               ['spec.podCIDRs: Forbidden: node updates may not change podCIDR except from "" to valid']),
]


@pytest.mark.parametrize("case", UPDATE_CASES, ids=[c.id for c in UPDATE_CASES])
def test_update_validation(case: UpdateCase) -> None:
    assert update_errors(case.kind, case.old, case.change) == case.want


def test_pod_spec_change_is_forbidden_with_upstream_words() -> None:
    errs = update_errors("Pod", pod(), _set("spec.restartPolicy", "Never"))
    assert len(errs) == 1
    assert errs[0].startswith(
        "spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`,"
        "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to "
        "existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was "
        "previously negative)\n")
    assert "RestartPolicy" in errs[0]


def test_status_update_of_pod_is_allowed() -> None:
    old = _defaulted("Pod", pod())
    new = copy.deepcopy(old)
    new["status"] = {"phase": "Running"}
    assert validate_update("Pod", new, old) == []


def test_service_type_change_drops_node_ports_before_validation() -> None:
    old = _defaulted("Service", svc(type="NodePort", clusterIP="10.96.5.5"))
    old["spec"]["ports"][0]["nodePort"] = 30080
    new = copy.deepcopy(old)
    new["spec"]["type"] = "ClusterIP"
    apply_defaults("Service", new)
    assert validate_update("Service", new, old) == []


# ---------------------------------------------------------------- defaults


def test_pod_defaults_match_a_real_cluster() -> None:
    p = _defaulted("Pod", pod(containers=[{"name": "c", "image": "nginx", "ports": [{"containerPort": 80}],
                                           "readinessProbe": {"httpGet": {"port": 80}}}]))
    spec = p["spec"]
    assert {k: spec[k] for k in ("restartPolicy", "dnsPolicy", "schedulerName", "terminationGracePeriodSeconds",
                                 "securityContext", "serviceAccountName", "serviceAccount",
                                 "enableServiceLinks", "priority", "preemptionPolicy")} == {
        "restartPolicy": "Always", "dnsPolicy": "ClusterFirst", "schedulerName": "default-scheduler",
        "terminationGracePeriodSeconds": 30, "securityContext": {}, "serviceAccountName": "default",
        "serviceAccount": "default", "enableServiceLinks": True, "priority": 0,
        "preemptionPolicy": "PreemptLowerPriority"}
    c = spec["containers"][0]
    assert c["imagePullPolicy"] == "Always"
    assert c["terminationMessagePath"] == "/dev/termination-log"
    assert c["terminationMessagePolicy"] == "File"
    assert c["resources"] == {}
    assert c["ports"] == [{"containerPort": 80, "protocol": "TCP"}]
    assert c["readinessProbe"] == {"httpGet": {"port": 80, "path": "/", "scheme": "HTTP"}, "timeoutSeconds": 1,
                                   "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3}
    assert spec["tolerations"] == [
        {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
        {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute",
         "tolerationSeconds": 300}]
    assert p["status"] == {"phase": "Pending", "qosClass": "BestEffort"}


def test_defaults_are_idempotent() -> None:
    for kind, obj in (("Pod", pod()), ("Service", svc(type="LoadBalancer")), ("Deployment", workload("Deployment")),
                      ("StatefulSet", workload("StatefulSet", volumeClaimTemplates=[{"metadata": {"name": "d"}}]))):
        once = _defaulted(kind, obj)
        twice = _defaulted(kind, once)
        assert once == twice, kind


@pytest.mark.parametrize("image,policy", [
    ("nginx", "Always"), ("nginx:latest", "Always"), ("nginx:1.27", "IfNotPresent"),
    ("registry.local:5000/app", "Always"), ("registry.local:5000/app:v1", "IfNotPresent"),
    ("nginx@sha256:abc", "IfNotPresent"), ("nginx:latest@sha256:abc", "Always"),
])
def test_image_pull_policy(image: str, policy: str) -> None:
    p = _defaulted("Pod", pod(containers=[{"name": "c", "image": image}]))
    assert p["spec"]["containers"][0]["imagePullPolicy"] == policy


@pytest.mark.parametrize("resources,qos", [
    ({}, "BestEffort"),
    ({"requests": {"cpu": "100m"}}, "Burstable"),
    ({"limits": {"cpu": "1", "memory": "1Gi"}}, "Guaranteed"),           # requests default to limits
    ({"requests": {"cpu": "1000m", "memory": "1Gi"}, "limits": {"cpu": "1", "memory": "1Gi"}}, "Guaranteed"),
    ({"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"cpu": "1", "memory": "1Gi"}}, "Burstable"),
])
def test_qos_class(resources: Obj, qos: str) -> None:
    p = _defaulted("Pod", pod(containers=[{"name": "c", "image": "x", "resources": resources}]))
    assert p["status"]["qosClass"] == qos
    assert qos_class(p["spec"]) == qos


def test_existing_toleration_is_not_duplicated() -> None:
    p = _defaulted("Pod", pod(tolerations=[{"key": "node.kubernetes.io/not-ready", "operator": "Exists",
                                            "effect": "NoExecute", "tolerationSeconds": 10}]))
    keys = [t["key"] for t in p["spec"]["tolerations"]]
    assert keys == ["node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"]
    assert p["spec"]["tolerations"][0]["tolerationSeconds"] == 10


def test_service_defaults() -> None:
    s = _defaulted("Service", svc(type="LoadBalancer", ports=[{"port": 80}]))["spec"]
    assert s["sessionAffinity"] == "None"
    assert s["ports"] == [{"port": 80, "protocol": "TCP", "targetPort": 80}]
    assert s["externalTrafficPolicy"] == "Cluster"
    assert s["internalTrafficPolicy"] == "Cluster"
    assert s["allocateLoadBalancerNodePorts"] is True
    assert s["ipFamilyPolicy"] == "SingleStack" and s["ipFamilies"] == ["IPv4"]
    plain = _defaulted("Service", svc())["spec"]
    assert plain["type"] == "ClusterIP" and "externalTrafficPolicy" not in plain
    ext = _defaulted("Service", svc(type="ExternalName", externalName="a.b", ports=[]))["spec"]
    assert "ipFamilies" not in ext and "internalTrafficPolicy" not in ext


def test_workload_defaults() -> None:
    d = _defaulted("Deployment", workload("Deployment"))["spec"]
    assert (d["replicas"], d["revisionHistoryLimit"], d["progressDeadlineSeconds"]) == (1, 10, 600)
    assert d["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}
    assert d["template"]["spec"]["restartPolicy"] == "Always"
    assert "tolerations" not in d["template"]["spec"]      # admission touches pods, not templates
    assert "status" not in d["template"]
    s = _defaulted("StatefulSet", workload("StatefulSet", volumeClaimTemplates=[{"metadata": {"name": "d"}}]))["spec"]
    assert s["podManagementPolicy"] == "OrderedReady"
    assert s["updateStrategy"] == {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}
    assert s["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Retain", "whenScaled": "Retain"}
    assert s["volumeClaimTemplates"][0]["spec"]["volumeMode"] == "Filesystem"
    ds = _defaulted("DaemonSet", workload("DaemonSet"))["spec"]
    assert ds["updateStrategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}
    assert _defaulted("ReplicaSet", workload("ReplicaSet"))["spec"]["replicas"] == 1


def test_other_defaults() -> None:
    ns = _defaulted("Namespace", {"metadata": {"name": "team"}})
    assert ns["spec"] == {"finalizers": ["kubernetes"]} and ns["status"] == {"phase": "Active"}
    assert ns["metadata"]["labels"] == {"kubernetes.io/metadata.name": "team"}
    assert _defaulted("Secret", {"metadata": meta("s")})["type"] == "Opaque"
    sc = _defaulted("StorageClass", {"metadata": meta("sc", None), "provisioner": "x"})
    assert (sc["reclaimPolicy"], sc["volumeBindingMode"]) == ("Delete", "Immediate")
    pv = _defaulted("PersistentVolume", {"metadata": meta("pv", None), "spec": {}})["spec"]
    assert (pv["persistentVolumeReclaimPolicy"], pv["volumeMode"]) == ("Retain", "Filesystem")
    assert _defaulted("PersistentVolumeClaim", pvc())["spec"]["volumeMode"] == "Filesystem"
    es = _defaulted("EndpointSlice", {"metadata": meta("e"), "addressType": "IPv4", "ports": [{"port": 80}]})
    assert es["ports"] == [{"port": 80, "protocol": "TCP", "name": ""}]
