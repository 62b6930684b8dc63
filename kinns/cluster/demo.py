"""The demo app `kinns demo` deploys, and the commands it suggests next.

Applied with the real kubectl, as a user would, so the demo doubles as a
check that the cluster answers kubectl.
"""

from __future__ import annotations

DEMO_MANIFEST = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: hello
  labels: {app: hello}
spec:
  replicas: 3
  selector:
    matchLabels: {app: hello}
  template:
    metadata:
      labels: {app: hello}
    spec:
      containers:
      - name: web
        image: nginx:1.27
        ports:
        - containerPort: 80
---
apiVersion: v1
kind: Service
metadata:
  name: hello
spec:
  type: NodePort
  selector: {app: hello}
  ports:
  - port: 80
"""


def next_steps(name: str, pod: str, pod_ip: str) -> str:
    ctx = f"kinns-{name}"
    flag = "" if name == "kinns" else f" --name {name}"
    return "\n".join([
        f"Try next (kubectl's current context is {ctx}):",
        "  kubectl get nodes -o wide                      # nodes are network namespaces on a fabric bridge",
        "  kubectl get nodes -o jsonpath='{..podCIDR}'    # a /24 of 10.244.0.0/16 per node",
        "  kubectl get deploy,rs,pods -o wide             # each pod's IP is in its node's range",
        f"  kinns exec{flag} node/{name}-control-plane -- curl -s {pod_ip}   # node to pod, across the VXLAN overlay",
        f"  kinns exec{flag} node/{name}-worker -- ip route                   # routes to the other nodes' ranges",
        f"  kinns exec{flag} node/{name}-worker -- bridge fdb show dev flannel.1",
        f"  kinns exec{flag} pod/{pod} -- cat /etc/resolv.conf",
        f"  kinns exec{flag} node/{name}-control-plane -- grep cluster-cidr /etc/kubernetes/manifests/kube-controller-manager.yaml",
        "  kubectl delete pod " + pod + "                # the Deployment replaces it, with a new IP",
        "  kubectl logs deploy/hello; kubectl describe pod " + pod,
        f"  kinns down{flag}                                # removes everything",
    ])
