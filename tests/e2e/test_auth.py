"""Who you are and what you may do, through a real cluster with real kubectl.

Anonymous requests get upstream's 403 (and bad credentials 401); `kubectl
auth whoami` (1.32 and 1.27) and `auth can-i` answer; a ServiceAccount
gains access through a RoleBinding; `kubectl create token` makes a token
the API accepts until its bound pod is gone; escalation is refused; and a
pod reaches the API through the `kubernetes` Service with its mounted
token, both with the official Python client's in-cluster config and with
kubectl without a kubeconfig.
"""

from __future__ import annotations

import json
import ssl
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from typing import Any

from kinns.testing import ClusterHandle, kubectl_binary, wait_for

from .helpers import apply

PYTHON = sys.executable          # the venv's python: pods run host binaries
IN_CLUSTER = """
import kubernetes as k
k.config.load_incluster_config()
try:
    pods = k.client.CoreV1Api().list_namespaced_pod(open(
        '/var/run/secrets/kubernetes.io/serviceaccount/namespace').read())
    print('OK', sorted(p.metadata.name for p in pods.items))
except k.client.ApiException as e:
    print('ERR', e.status, e.reason)
    print(e.body)
"""


def anonymous(cluster: ClusterHandle, path: str, token: str | None = None) -> tuple[int, Any]:
    """A request with no client certificate (and optionally a bearer token)."""
    ctx = ssl.create_default_context(cafile=str(cluster.state_dir / "pki" / "ca.crt"))
    req = urllib.request.Request(cluster.server + path)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=30) as r:
            status, data = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, data = e.code, e.read()
    try:
        return status, json.loads(data)
    except ValueError:
        return status, data.decode()


def kubectl_with_token(cluster: ClusterHandle, token: str, *args: str,
                       version: str = "1.32") -> subprocess.CompletedProcess[str]:
    """kubectl with only a bearer token (no client certificate, which would win)."""
    with tempfile.NamedTemporaryFile("w", suffix=".kubeconfig") as f:
        json.dump({"apiVersion": "v1", "kind": "Config", "current-context": "t",
                   "clusters": [{"name": "c", "cluster": {
                       "server": cluster.server,
                       "certificate-authority": str(cluster.state_dir / "pki" / "ca.crt")}}],
                   "users": [{"name": "u", "user": {"token": token}}],
                   "contexts": [{"name": "t", "context": {"cluster": "c", "user": "u"}}]}, f)
        f.flush()
        return subprocess.run([kubectl_binary(version), "--kubeconfig", f.name, *args], text=True,
                              capture_output=True, timeout=60)


def run_pod(cluster: ClusterHandle, name: str, ns: str, command: list[str]) -> str:
    """Run a one-shot busybox pod and return its log once it finished."""
    apply(cluster, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns},
                    "spec": {"restartPolicy": "Never",
                             "containers": [{"name": "c", "image": "busybox", "command": command}]}})

    def done() -> bool:
        phase = cluster.kubectl("get", "pod", name, "-n", ns, "-o", "jsonpath={.status.phase}").stdout
        return phase in ("Succeeded", "Failed")
    wait_for(done, timeout=60)
    return cluster.kubectl("logs", name, "-n", ns).stdout


def test_anonymous_and_bad_credentials(cluster: ClusterHandle) -> None:
    st, body = anonymous(cluster, "/api/v1/namespaces/kube-system/secrets")
    assert st == 403 and body["reason"] == "Forbidden"
    assert body["message"] == ('secrets is forbidden: User "system:anonymous" cannot list resource "secrets" in API '
                               'group "" in the namespace "kube-system"')
    for path in ("/version", "/healthz", "/livez", "/readyz"):
        assert anonymous(cluster, path)[0] == 200, path
    assert anonymous(cluster, "/api")[1]["message"] == 'forbidden: User "system:anonymous" cannot get path "/api"'
    assert anonymous(cluster, "/version", token="not-a-token") == (401, {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": "Unauthorized",
        "reason": "Unauthorized", "code": 401})
    # Discovery fails first, so kubectl words it as client-go does for a 401 there (as against upstream).
    r = kubectl_with_token(cluster, "forged", "get", "pods")
    assert r.returncode == 1 and "error: You must be logged in to the server (the server has asked for the " \
                                 "client to provide credentials)" in r.stderr
    r = kubectl_with_token(cluster, "forged", "auth", "whoami")
    assert r.returncode == 1 and "error: You must be logged in to the server (Unauthorized)" in r.stderr, r.stderr
    # The admin (system:masters) still reads everything.
    assert cluster.http("GET", "/api/v1/namespaces/kube-system/secrets").status == 200


def test_whoami_with_both_kubectls(cluster: ClusterHandle) -> None:
    for version in ("1.32", "1.27"):
        out = cluster.kubectl("auth", "whoami", version=version).stdout
        assert "kubernetes-admin" in out and "[system:masters system:authenticated]" in out, (version, out)
    out = json.loads(cluster.kubectl("auth", "whoami", "-o", "json").stdout)
    assert out["kind"] == "SelfSubjectReview" and out["status"]["userInfo"]["username"] == "kubernetes-admin"
    out = cluster.kubectl("auth", "whoami", "--as=system:serviceaccount:default:default").stdout
    assert "system:serviceaccount:default:default" in out
    assert "[system:serviceaccounts system:serviceaccounts:default system:authenticated]" in out


def test_can_i_before_and_after_a_rolebinding(cluster: ClusterHandle) -> None:
    cluster.kubectl("create", "namespace", "cani")
    sa = "--as=system:serviceaccount:cani:default"
    wait_for(lambda: cluster.kubectl("get", "sa", "default", "-n", "cani", check=False).returncode == 0)
    r = cluster.kubectl("auth", "can-i", "list", "pods", "-n", "cani", sa, check=False)
    assert (r.returncode, r.stdout.strip()) == (1, "no")
    r = cluster.kubectl("get", "pods", "-n", "cani", sa, check=False)
    assert r.returncode == 1 and ('Error from server (Forbidden): pods is forbidden: User '
                                  '"system:serviceaccount:cani:default" cannot list resource "pods" in API group "" '
                                  'in the namespace "cani"') in r.stderr
    cluster.kubectl("create", "rolebinding", "sa-view", "--clusterrole=view", "--serviceaccount=cani:default",
                    "-n", "cani")
    assert cluster.kubectl("auth", "can-i", "list", "pods", "-n", "cani", sa).stdout.strip() == "yes"
    assert cluster.kubectl("auth", "can-i", "list", "pods", "-n", "cani", sa, version="1.27").stdout.strip() == "yes"
    assert cluster.kubectl("auth", "can-i", "delete", "pods", "-n", "cani", sa, check=False).returncode == 1
    assert cluster.kubectl("auth", "can-i", "list", "pods", "-n", "default", sa, check=False).returncode == 1
    listing = cluster.kubectl("auth", "can-i", "--list", "-n", "cani", sa).stdout
    assert "Resources" in listing.splitlines()[0] and "Non-Resource URLs" in listing.splitlines()[0]
    assert any(line.startswith("pods ") and "[get list watch]" in line for line in listing.splitlines())
    wide = cluster.kubectl("get", "rolebinding", "sa-view", "-n", "cani", "-o", "wide").stdout
    assert wide.split("\n")[0].split() == ["NAME", "ROLE", "AGE", "USERS", "GROUPS", "SERVICEACCOUNTS"]
    assert "ClusterRole/view" in wide and "cani/default" in wide
    # A binding to a ClusterRole that does not exist is accepted and grants nothing.
    cluster.kubectl("create", "rolebinding", "ghost", "--clusterrole=no-such-role",
                    "--serviceaccount=cani:default", "-n", "cani")
    r = cluster.kubectl("auth", "can-i", "create", "pods", "-n", "cani", sa, check=False)
    assert r.returncode == 1
    assert r.stdout.strip() == 'no - RBAC: clusterrole.rbac.authorization.k8s.io "no-such-role" not found'


def test_escalation_is_refused(cluster: ClusterHandle) -> None:
    cluster.kubectl("create", "namespace", "esc")
    cluster.kubectl("create", "rolebinding", "sa-admin", "--clusterrole=admin", "--serviceaccount=esc:default",
                    "-n", "esc")
    sa = "--as=system:serviceaccount:esc:default"
    cluster.kubectl("create", "role", "pod-reader", "--verb=get,list", "--resource=pods", "-n", "esc", sa)
    r = cluster.kubectl("create", "role", "node-reader", "--verb=get", "--resource=nodes", "-n", "esc", sa,
                        check=False)
    assert r.returncode == 1
    assert ('roles.rbac.authorization.k8s.io "node-reader" is forbidden: user "system:serviceaccount:esc:default" '
            '(groups=["system:serviceaccounts" "system:serviceaccounts:esc" "system:authenticated"]) is attempting '
            'to grant RBAC permissions not currently held:\n{APIGroups:[""], Resources:["nodes"], Verbs:["get"]}'
            ) in r.stderr
    r = cluster.kubectl("create", "rolebinding", "grab", "--clusterrole=cluster-admin", "--user=mallory", "-n", "esc",
                        sa, check=False)
    assert r.returncode == 1 and "is attempting to grant RBAC permissions not currently held" in r.stderr
    assert cluster.kubectl("get", "role,rolebinding", "-n", "esc", "-o", "name").stdout.split() == [
        "role.rbac.authorization.k8s.io/pod-reader", "rolebinding.rbac.authorization.k8s.io/sa-admin"]


def test_create_token_and_a_deleted_pods_token(cluster: ClusterHandle) -> None:
    token = cluster.kubectl("create", "token", "default").stdout.strip()
    assert token.count(".") == 2
    st, body = anonymous(cluster, "/api/v1/namespaces/default/pods", token=token)
    assert st == 403 and 'User "system:serviceaccount:default:default"' in body["message"]
    for version in ("1.32", "1.27"):
        out = kubectl_with_token(cluster, token, "auth", "whoami", version=version)
        assert "system:serviceaccount:default:default" in out.stdout, out.stderr
    r = cluster.kubectl("create", "token", "default", "--duration=1m", check=False)
    assert "may not specify a duration less than 10 minutes" in r.stderr
    apply(cluster, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "holder"},
                    "spec": {"containers": [{"name": "c", "image": "busybox", "command": ["sleep", "3600"]}]}})
    uid = cluster.kubectl("get", "pod", "holder", "-o", "jsonpath={.metadata.uid}").stdout
    bound = cluster.kubectl("create", "token", "default", "--bound-object-kind=Pod", "--bound-object-name=holder",
                            f"--bound-object-uid={uid}").stdout.strip()
    assert anonymous(cluster, "/version", token=bound)[0] == 200
    cluster.kubectl("delete", "pod", "holder", "--grace-period=0", "--force")
    assert anonymous(cluster, "/version", token=bound)[0] == 401


def test_every_namespace_gets_its_account_and_the_ca(cluster: ClusterHandle) -> None:
    cluster.kubectl("create", "namespace", "fresh")
    wait_for(lambda: cluster.kubectl("get", "sa,cm", "-n", "fresh", "-o", "name", check=False).stdout.split() == [
        "serviceaccount/default", "configmap/kube-root-ca.crt"])
    ca = json.loads(cluster.kubectl("get", "cm", "kube-root-ca.crt", "-n", "fresh", "-o", "json").stdout)
    assert ca["data"]["ca.crt"] == (cluster.state_dir / "pki" / "ca.crt").read_text()


def test_in_cluster_clients(cluster: ClusterHandle) -> None:
    cluster.kubectl("create", "namespace", "incluster")
    wait_for(lambda: cluster.kubectl("get", "cm", "kube-root-ca.crt", "-n", "incluster", check=False).returncode == 0)
    before = run_pod(cluster, "py-before", "incluster", [PYTHON, "-c", IN_CLUSTER])
    assert before.startswith("ERR 403"), before
    assert ('pods is forbidden: User \\"system:serviceaccount:incluster:default\\" cannot list resource \\"pods\\" '
            'in API group \\"\\" in the namespace \\"incluster\\"') in before
    cluster.kubectl("create", "rolebinding", "sa-view", "--clusterrole=view", "--serviceaccount=incluster:default",
                    "-n", "incluster")
    after = run_pod(cluster, "py-after", "incluster", [PYTHON, "-c", IN_CLUSTER])
    assert after.startswith("OK") and "py-after" in after and "py-before" in after, after
    # kubectl with no kubeconfig uses the mounted ServiceAccount through KUBERNETES_SERVICE_HOST.
    kubectl = "/usr/lib/google-cloud-sdk/bin/kubectl.1.32"
    out = run_pod(cluster, "kc", "incluster", ["sh", "-c", f"{kubectl} auth whoami; {kubectl} get pods -o name; "
                                                         "echo $KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT"])
    assert "system:serviceaccount:incluster:default" in out and "pod/py-after" in out
    assert "10.96.0.1:443" in out
    pod = json.loads(cluster.kubectl("get", "pod", "kc", "-n", "incluster", "-o", "json").stdout)
    vol = next(v for v in pod["spec"]["volumes"] if v["name"].startswith("kube-api-access-"))
    assert [list(s)[0] for s in vol["projected"]["sources"]] == ["serviceAccountToken", "configMap", "downwardAPI"]
    # automountServiceAccountToken: false leaves the directory out.
    apply(cluster, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "nomount", "namespace": "incluster"},
                    "spec": {"automountServiceAccountToken": False, "restartPolicy": "Never",
                             "containers": [{"name": "c", "image": "busybox",
                                             "command": ["ls", "/var/run/secrets/kubernetes.io/serviceaccount"]}]}})
    wait_for(lambda: cluster.kubectl("get", "pod", "nomount", "-n", "incluster", "-o",
                                     "jsonpath={.status.phase}").stdout in ("Succeeded", "Failed"), timeout=60)
    assert "No such file or directory" in cluster.kubectl("logs", "nomount", "-n", "incluster").stdout
