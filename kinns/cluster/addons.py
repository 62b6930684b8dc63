"""The add-ons kubeadm installs into kube-system, as kinns installs them.

CoreDNS likewise (phases/addons/dns): Deployment `coredns` (2 replicas,
`k8s-app=kube-dns`), ConfigMap `coredns` with kubeadm's Corefile, Service
`kube-dns` at the tenth service IP (10.96.0.10); the
`registry.k8s.io/coredns/coredns` image runs kinns' DNS server
(`kinns.dns`), which reaches the API through the `kubernetes` Service.

kube-proxy is deployed the way kubeadm deploys it (phases/addons/proxy):
a ServiceAccount `kube-proxy`, a ConfigMap `kube-proxy` whose `config.conf`
holds the KubeProxyConfiguration (the `mode` chosen with `kinns up
--proxy-mode`) and whose `kubeconfig.conf` points at the API server on the
control-plane node (https://<node IP>:6443), and a DaemonSet `kube-proxy`
(hostNetwork, every taint tolerated, `--hostname-override=$(NODE_NAME)`).
The node's kubelet runs each pod; the `registry.k8s.io/kube-proxy` image
runs kinns' kube-proxy (`kinns.proxy`) as the container's own process.

Where kubeadm gives kube-proxy a service-account token, kinns gives it a
client certificate for `system:kube-proxy` (the legacy identity upstream's
default RBAC still binds to `system:node-proxier`), in a Secret mounted at
SA_DIR with a kubeconfig that uses it.  The objects are
built by pure functions; `install` creates the missing ones.
"""

from __future__ import annotations

import base64
import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..api.discovery import VERSION_INFO
from ..api.request import Request
from ..api.server import ApiServer
from ..dns.corefile import KUBEADM_COREFILE
from ..ingress.gatewayapi_crds import CONTROLLER_NAME as GATEWAY_CONTROLLER, GROUP as GATEWAY_GROUP, \
    gateway_api_objects
from .certs import client_cert, paths
from .config import ClusterConfig

KUBE_PROXY_IMAGE = f"registry.k8s.io/kube-proxy:{VERSION_INFO['gitVersion']}"
COREDNS_IMAGE = "registry.k8s.io/coredns/coredns:v1.11.3"
KUBE_NETWORK_POLICIES_IMAGE = "registry.k8s.io/networking/kube-network-policies:v0.9.1"
INGRESS_NGINX_IMAGE = "registry.k8s.io/ingress-nginx/controller:v1.12.1"
# kubeadm's Corefile (phases/addons/dns/manifests.go), which kinns.dns reads.
COREFILE = KUBEADM_COREFILE
# Where a component's credentials Secret is mounted: beside, not on, the
# service-account token's path, which admission may fill for the pod.
SA_DIR = "/var/run/secrets/kinns.io/credentials"
Obj = dict[str, Any]


def kube_proxy_config(cfg: ClusterConfig) -> str:
    """config.conf: a KubeProxyConfiguration as kind writes it (1 s min sync)."""
    doc = {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "bindAddress": "0.0.0.0",
        "clientConnection": {"kubeconfig": "/var/lib/kube-proxy/kubeconfig.conf"},
        "clusterCIDR": cfg.cluster_cidr,
        "conntrack": {"maxPerCore": 0, "tcpBeLiberal": cfg.proxy_mode == "nftables"},
        "healthzBindAddress": "0.0.0.0:10256",
        "metricsBindAddress": "127.0.0.1:10249",
        "iptables": {"masqueradeAll": False, "masqueradeBit": 14, "minSyncPeriod": "1s", "syncPeriod": "30s"},
        "nftables": {"masqueradeAll": False, "masqueradeBit": 14, "minSyncPeriod": "1s", "syncPeriod": "30s"},
        "mode": cfg.proxy_mode,
    }
    return yaml.safe_dump(doc, sort_keys=False)


def in_cluster_kubeconfig(server: str) -> str:
    """A kubeconfig for a component in the cluster: the API at `server`, the
    identity in the credentials Secret mounted at SA_DIR."""
    doc = {
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "default", "cluster": {"certificate-authority": f"{SA_DIR}/ca.crt", "server": server}}],
        "contexts": [{"name": "default", "context": {"cluster": "default", "namespace": "default",
                                                     "user": "default"}}],
        "current-context": "default",
        "users": [{"name": "default", "user": {"client-certificate": f"{SA_DIR}/tls.crt",
                                               "client-key": f"{SA_DIR}/tls.key"}}],
    }
    return yaml.safe_dump(doc, sort_keys=False)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@dataclass(frozen=True)
class Identity:
    """A component's client certificate and the cluster CA, as PEM bytes."""

    ca: bytes
    crt: bytes
    key: bytes


def credentials_secret(name: str, ns: str, ident: Identity, server: str, labels: dict[str, str]) -> tuple[str, Obj]:
    """A Secret holding a component's identity and a kubeconfig that uses it,
    mounted where a service-account token would be (SA_DIR)."""
    return (f"/api/v1/namespaces/{ns}/secrets",
            {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
             "metadata": {"name": f"{name}-credentials", "namespace": ns, "labels": labels},
             "data": {"ca.crt": _b64(ident.ca), "tls.crt": _b64(ident.crt), "tls.key": _b64(ident.key),
                      "kubeconfig": _b64(in_cluster_kubeconfig(server).encode())}})


def kube_proxy_objects(cfg: ClusterConfig, server: str, ident: Identity) -> list[tuple[str, Obj]]:
    """(collection path, object) for everything kube-proxy needs, in creation order."""
    ns = "kube-system"
    labels = {"k8s-app": "kube-proxy"}
    return [
        (f"/api/v1/namespaces/{ns}/serviceaccounts",
         {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "kube-proxy", "namespace": ns}}),
        (f"/api/v1/namespaces/{ns}/configmaps",
         {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "kube-proxy", "namespace": ns, "labels": {"app": "kube-proxy"}},
          "data": {"config.conf": kube_proxy_config(cfg), "kubeconfig.conf": in_cluster_kubeconfig(server)}}),
        credentials_secret("kube-proxy", ns, ident, server, labels),
        (f"/apis/apps/v1/namespaces/{ns}/daemonsets", {
            "apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": {"name": "kube-proxy", "namespace": ns, "labels": labels},
            "spec": {
                "selector": {"matchLabels": labels},
                "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "containers": [{
                            "name": "kube-proxy", "image": KUBE_PROXY_IMAGE, "imagePullPolicy": "IfNotPresent",
                            "command": ["/usr/local/bin/kube-proxy", "--config=/var/lib/kube-proxy/config.conf",
                                        "--hostname-override=$(NODE_NAME)"],
                            "env": [{"name": "NODE_NAME",
                                     "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "spec.nodeName"}}}],
                            "securityContext": {"privileged": True},
                            "volumeMounts": [{"name": "kube-proxy", "mountPath": "/var/lib/kube-proxy"},
                                             {"name": "credentials", "mountPath": SA_DIR, "readOnly": True}],
                        }],
                        "hostNetwork": True,
                        "dnsPolicy": "ClusterFirst",
                        "nodeSelector": {"kubernetes.io/os": "linux"},
                        "priorityClassName": "system-node-critical",
                        "serviceAccountName": "kube-proxy",
                        "tolerations": [{"operator": "Exists"}],
                        "volumes": [{"name": "kube-proxy", "configMap": {"name": "kube-proxy"}},
                                    {"name": "credentials", "secret": {"secretName": "kube-proxy-credentials"}}],
                    },
                },
            },
        }),
    ]


def coredns_objects(cfg: ClusterConfig, server: str, ident: Identity) -> list[tuple[str, Obj]]:
    """CoreDNS as kubeadm deploys it: SA, ConfigMap `coredns`, Deployment `coredns`
    (2 replicas), Service `kube-dns` at the 10th service IP."""
    ns = "kube-system"
    labels = {"k8s-app": "kube-dns"}
    dns_ip = str(ipaddress.ip_network(cfg.service_cidr)[10])
    probe = {"failureThreshold": 5, "initialDelaySeconds": 60, "periodSeconds": 10, "successThreshold": 1,
             "timeoutSeconds": 5}
    return [
        (f"/api/v1/namespaces/{ns}/serviceaccounts",
         {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "coredns", "namespace": ns}}),
        (f"/api/v1/namespaces/{ns}/configmaps",
         {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "coredns", "namespace": ns},
          "data": {"Corefile": COREFILE}}),
        credentials_secret("coredns", ns, ident, server, labels),
        (f"/api/v1/namespaces/{ns}/services", {
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "kube-dns", "namespace": ns,
                         "labels": {**labels, "kubernetes.io/cluster-service": "true",
                                    "kubernetes.io/name": "CoreDNS"},
                         "annotations": {"prometheus.io/port": "9153", "prometheus.io/scrape": "true"}},
            "spec": {"clusterIP": dns_ip, "selector": labels,
                     "ports": [{"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                               {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
                               {"name": "metrics", "port": 9153, "protocol": "TCP", "targetPort": 9153}]},
        }),
        (f"/apis/apps/v1/namespaces/{ns}/deployments", {
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "coredns", "namespace": ns, "labels": labels},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": labels},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "containers": [{
                            "name": "coredns", "image": COREDNS_IMAGE, "imagePullPolicy": "IfNotPresent",
                            "args": ["-conf", "/etc/coredns/Corefile"],
                            "ports": [{"name": "dns", "containerPort": 53, "protocol": "UDP"},
                                      {"name": "dns-tcp", "containerPort": 53, "protocol": "TCP"},
                                      {"name": "metrics", "containerPort": 9153, "protocol": "TCP"}],
                            "livenessProbe": {"httpGet": {"path": "/health", "port": 8080, "scheme": "HTTP"},
                                              **probe},
                            "readinessProbe": {"httpGet": {"path": "/ready", "port": 8181, "scheme": "HTTP"},
                                               "failureThreshold": 3, "periodSeconds": 1, "successThreshold": 1,
                                               "timeoutSeconds": 1},
                            "resources": {"limits": {"memory": "170Mi"}, "requests": {"cpu": "100m",
                                                                                     "memory": "70Mi"}},
                            "securityContext": {"allowPrivilegeEscalation": False,
                                                "capabilities": {"add": ["NET_BIND_SERVICE"], "drop": ["ALL"]},
                                                "readOnlyRootFilesystem": True},
                            "volumeMounts": [{"name": "config-volume", "mountPath": "/etc/coredns",
                                              "readOnly": True},
                                             {"name": "credentials", "mountPath": SA_DIR, "readOnly": True}],
                        }],
                        "dnsPolicy": "Default",
                        "nodeSelector": {"kubernetes.io/os": "linux"},
                        "priorityClassName": "system-cluster-critical",
                        "serviceAccountName": "coredns",
                        "tolerations": [{"key": "CriticalAddonsOnly", "operator": "Exists"},
                                        {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}],
                        "affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                            {"weight": 100, "podAffinityTerm": {
                                "labelSelector": {"matchExpressions": [
                                    {"key": "k8s-app", "operator": "In", "values": ["kube-dns"]}]},
                                "topologyKey": "kubernetes.io/hostname"}}]}},
                        "volumes": [{"name": "config-volume",
                                     "configMap": {"name": "coredns", "items": [{"key": "Corefile",
                                                                                 "path": "Corefile"}]}},
                                    {"name": "credentials", "secret": {"secretName": "coredns-credentials"}}],
                    },
                },
            },
        }),
    ]


def network_policy_objects(server: str, ident: Identity) -> list[tuple[str, Obj]]:
    """NetworkPolicy enforcement as sigs.k8s.io/kube-network-policies' install.yaml lays it out
    (what kindnetd embeds in kind): ClusterRole and binding to list/watch pods, namespaces and
    networkpolicies, a ServiceAccount, and a hostNetwork, privileged DaemonSet whose image runs
    kinns' agent (`kinns.netpol`), reaching the API on the control-plane node as kube-proxy does."""
    ns, name = "kube-system", "kube-network-policies"
    labels = {"tier": "node", "app": name, "k8s-app": name}
    rbac = "/apis/rbac.authorization.k8s.io/v1"
    return [
        (f"{rbac}/clusterroles", {
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": name},
            "rules": [{"apiGroups": [""], "resources": ["pods", "namespaces"], "verbs": ["list", "watch"]},
                      {"apiGroups": ["networking.k8s.io"], "resources": ["networkpolicies"],
                       "verbs": ["list", "watch"]}]}),
        (f"{rbac}/clusterrolebindings", {
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": ns}]}),
        (f"/api/v1/namespaces/{ns}/serviceaccounts",
         {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": ns}}),
        credentials_secret(name, ns, ident, server, {"k8s-app": name}),
        (f"/apis/apps/v1/namespaces/{ns}/daemonsets", {
            "apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": name, "namespace": ns, "labels": labels},
            "spec": {
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "hostNetwork": True,
                        "nodeSelector": {"kubernetes.io/os": "linux"},
                        "tolerations": [{"operator": "Exists", "effect": "NoSchedule"}],
                        "serviceAccountName": name,
                        "containers": [{
                            "name": name, "image": KUBE_NETWORK_POLICIES_IMAGE,
                            "args": ["/bin/netpol", "--hostname-override=$(MY_NODE_NAME)", "--v=2",
                                     f"--kubeconfig={SA_DIR}/kubeconfig"],
                            "env": [{"name": "MY_NODE_NAME",
                                     "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "spec.nodeName"}}}],
                            "resources": {"requests": {"cpu": "100m", "memory": "50Mi"}},
                            "securityContext": {"privileged": True, "capabilities": {"add": ["NET_ADMIN"]}},
                            "volumeMounts": [{"name": "credentials", "mountPath": SA_DIR, "readOnly": True}],
                        }],
                        "volumes": [{"name": "credentials", "secret": {"secretName": f"{name}-credentials"}}],
                    },
                },
            },
        }),
    ]


def ingress_nginx_objects(server: str, ident: Identity) -> list[tuple[str, Obj]]:
    """ingress-nginx as its cloud manifest (deploy/static/provider/cloud) lays it out, in
    namespace ingress-nginx: ServiceAccount, ClusterRole/Role and bindings, the controller
    ConfigMap, a LoadBalancer Service on 80/443 (externalTrafficPolicy Local, so backends see
    client addresses) whose address ServiceLB hands out, the Deployment whose image runs
    kinns' controller (`kinns.ingress`, nginx in the same container), and the IngressClass
    `nginx` marked default so class-less Ingresses are served."""
    ns = name = "ingress-nginx"
    ctl = "ingress-nginx-controller"
    version = INGRESS_NGINX_IMAGE.rsplit(":v", 1)[1]
    base = {"app.kubernetes.io/instance": name, "app.kubernetes.io/name": name}
    labels = {**base, "app.kubernetes.io/part-of": name, "app.kubernetes.io/version": version}
    comp = {**labels, "app.kubernetes.io/component": "controller"}
    select = {**base, "app.kubernetes.io/component": "controller"}
    rbac = "/apis/rbac.authorization.k8s.io/v1"
    rgroup = "rbac.authorization.k8s.io"

    def rule(groups: list[str], resources: list[str], verbs: list[str], names: list[str] | None = None) -> Obj:
        r: Obj = {"apiGroups": groups, "resources": resources, "verbs": verbs}
        if names:
            r["resourceNames"] = names
        return r

    def bind(kind: str, namespace: str | None) -> Obj:
        meta: Obj = {"name": name, "labels": labels, **({"namespace": namespace} if namespace else {})}
        return {"apiVersion": f"{rgroup}/v1", "kind": kind, "metadata": meta,
                "roleRef": {"apiGroup": rgroup, "kind": kind.replace("Binding", ""), "name": name},
                "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": ns}]}

    read = ["get", "list", "watch"]
    probe = {"httpGet": {"path": "/healthz", "port": 10254, "scheme": "HTTP"}, "successThreshold": 1,
             "timeoutSeconds": 1}
    return [
        ("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": base}}),
        (f"/api/v1/namespaces/{ns}/serviceaccounts", {"apiVersion": "v1", "kind": "ServiceAccount",
                                                      "metadata": {"name": name, "namespace": ns, "labels": comp}}),
        (f"{rbac}/clusterroles", {"apiVersion": f"{rgroup}/v1", "kind": "ClusterRole",
                                  "metadata": {"name": name, "labels": labels}, "rules": [
            rule([""], ["configmaps", "endpoints", "nodes", "pods", "secrets", "namespaces"], ["list", "watch"]),
            rule(["coordination.k8s.io"], ["leases"], ["list", "watch"]),
            rule([""], ["nodes"], ["get"]),
            rule([""], ["services"], read),
            rule(["networking.k8s.io"], ["ingresses"], read),
            rule([""], ["events"], ["create", "patch"]),
            rule(["networking.k8s.io"], ["ingresses/status"], ["update"]),
            rule(["networking.k8s.io"], ["ingressclasses"], read),
            rule(["discovery.k8s.io"], ["endpointslices"], ["list", "watch", "get"]),
            rule([GATEWAY_GROUP], ["gatewayclasses", "gateways", "httproutes"], read),
            rule([GATEWAY_GROUP], ["gatewayclasses/status", "gateways/status", "httproutes/status"], ["update"])]}),
        (f"{rbac}/clusterrolebindings", bind("ClusterRoleBinding", None)),
        (f"{rbac}/namespaces/{ns}/roles", {"apiVersion": f"{rgroup}/v1", "kind": "Role",
                                           "metadata": {"name": name, "namespace": ns, "labels": comp}, "rules": [
            rule([""], ["namespaces"], ["get"]),
            rule([""], ["configmaps", "pods", "secrets", "endpoints"], read),
            rule(["coordination.k8s.io"], ["leases"], ["get", "update"], ["ingress-nginx-leader"]),
            rule(["coordination.k8s.io"], ["leases"], ["create"]),
            rule([""], ["events"], ["create", "patch"])]}),
        (f"{rbac}/namespaces/{ns}/rolebindings", bind("RoleBinding", ns)),
        (f"/api/v1/namespaces/{ns}/configmaps", {"apiVersion": "v1", "kind": "ConfigMap",
                                                 "metadata": {"name": ctl, "namespace": ns, "labels": comp},
                                                 "data": {"allow-snippet-annotations": "false"}}),
        credentials_secret(name, ns, ident, server, comp),
        (f"/api/v1/namespaces/{ns}/services", {
            "apiVersion": "v1", "kind": "Service", "metadata": {"name": ctl, "namespace": ns, "labels": comp},
            "spec": {"type": "LoadBalancer", "externalTrafficPolicy": "Local", "ipFamilyPolicy": "SingleStack",
                     "ipFamilies": ["IPv4"], "selector": select,
                     "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": "http",
                                "appProtocol": "http"},
                               {"name": "https", "port": 443, "protocol": "TCP", "targetPort": "https",
                                "appProtocol": "https"}]}}),
        (f"/apis/apps/v1/namespaces/{ns}/deployments", {
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": ctl, "namespace": ns, "labels": comp},
            "spec": {
                "minReadySeconds": 0, "revisionHistoryLimit": 10, "selector": {"matchLabels": select},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
                "template": {
                    "metadata": {"labels": comp},
                    "spec": {
                        "containers": [{
                            "name": "controller", "image": INGRESS_NGINX_IMAGE, "imagePullPolicy": "IfNotPresent",
                            "args": ["/nginx-ingress-controller",
                                     f"--publish-service=$(POD_NAMESPACE)/{ctl}",
                                     "--election-id=ingress-nginx-leader",
                                     "--controller-class=k8s.io/ingress-nginx",
                                     "--ingress-class=nginx",
                                     f"--configmap=$(POD_NAMESPACE)/{ctl}",
                                     "--watch-ingress-without-class=true",
                                     f"--gateway-controller-name={GATEWAY_CONTROLLER}",
                                     "--enable-metrics=false"],
                            "env": [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                                    {"name": "POD_NAMESPACE",
                                     "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}],
                            "ports": [{"name": "http", "containerPort": 80, "protocol": "TCP"},
                                      {"name": "https", "containerPort": 443, "protocol": "TCP"}],
                            "livenessProbe": {**probe, "failureThreshold": 5, "initialDelaySeconds": 10,
                                              "periodSeconds": 10},
                            "readinessProbe": {**probe, "failureThreshold": 3, "periodSeconds": 1},
                            "resources": {"requests": {"cpu": "100m", "memory": "90Mi"}},
                            "volumeMounts": [{"name": "credentials", "mountPath": SA_DIR, "readOnly": True}],
                        }],
                        "dnsPolicy": "ClusterFirst",
                        "nodeSelector": {"kubernetes.io/os": "linux"},
                        "serviceAccountName": name,
                        "terminationGracePeriodSeconds": 300,
                        "volumes": [{"name": "credentials", "secret": {"secretName": f"{name}-credentials"}}],
                    },
                },
            },
        }),
        ("/apis/networking.k8s.io/v1/ingressclasses", {
            "apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
            "metadata": {"name": "nginx", "labels": comp,
                         "annotations": {"ingressclass.kubernetes.io/is-default-class": "true"}},
            "spec": {"controller": "k8s.io/ingress-nginx"}}),
    ]


def disabled(cfg: ClusterConfig) -> set[str]:
    """Packaged add-ons `kinns up --disable` left out (k3s's `--disable traefik`)."""
    return {x for x in cfg.extra.get("disable", "").split(",") if x}


def identity(cfg: ClusterConfig, file_stem: str, user: str) -> Identity:
    """The component's client certificate (made once, under the cluster's pki)."""
    pki = cfg.state_dir / "pki"
    crt, key = client_cert(pki, file_stem, user)
    return Identity(paths(pki).ca_cert.read_bytes(), Path(crt).read_bytes(), Path(key).read_bytes())


async def install(api: ApiServer, cfg: ClusterConfig, control_plane_ip: str, port: int = 6443) -> None:
    """Create the add-ons' objects that do not exist yet (a restart keeps what is there)."""
    server = f"https://{control_plane_ip}:{port}"
    # In-cluster clients that are ordinary pods reach the API as pods do:
    # through the `kubernetes` Service, which kube-proxy programs.
    in_cluster = f"https://{ipaddress.ip_network(cfg.service_cidr)[1]}:443"
    objects = (kube_proxy_objects(cfg, server, identity(cfg, "kube-proxy", "system:kube-proxy"))
               + coredns_objects(cfg, in_cluster, identity(cfg, "coredns",
                                                           "system:serviceaccount:kube-system:coredns"))
               + network_policy_objects(server, identity(
                   cfg, "kube-network-policies", "system:serviceaccount:kube-system:kube-network-policies"))
               + ([] if "ingress" in disabled(cfg) else gateway_api_objects() + ingress_nginx_objects(
                   in_cluster, identity(cfg, "ingress-nginx", "system:serviceaccount:ingress-nginx:ingress-nginx"))))
    for collection, obj in objects:
        resp = await api.dispatch(Request("POST", collection, obj=obj))
        if resp.status >= 400 and resp.obj.get("reason") != "AlreadyExists":
            raise RuntimeError(f"installing {obj['kind']} {obj['metadata']['name']}: {resp.obj.get('message')}")
