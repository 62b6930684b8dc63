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


RULES_COMMAND = {
    "nftables": "nft list table ip kube-proxy",
    "iptables": "iptables-save -t nat",
    "userspace": "iptables-save -t nat",
}


def ask(url: str, tries: int = 40, timeout: float = 1.0) -> str | None:
    """GET `url` from the host, retrying while kube-proxy writes its first rules."""
    import time
    import urllib.request
    for _ in range(tries):
        try:
            with urllib.request.urlopen(url, timeout=timeout) as r:
                return str(r.read().decode().strip())
        except OSError:
            time.sleep(0.25)
    return None


def next_steps(name: str, pod: str, pod_ip: str, *, proxy_mode: str = "nftables", cluster_ip: str = "<cluster IP>",
               node_port: str = "<node port>", worker_ip: str = "<node IP>", kube_proxy_pod: str = "<kube-proxy pod>") -> str:
    ctx = f"kinns-{name}"
    flag = "" if name == "kinns" else f" --name {name}"
    rules = RULES_COMMAND.get(proxy_mode, "iptables-save")
    return "\n".join([
        f"Try next (kubectl's current context is {ctx}):",
        "  kubectl get nodes -o wide                      # nodes are network namespaces on a fabric bridge",
        "  kubectl get svc,endpointslices,pods -o wide    # the Service, the pod IPs behind it",
        f"  curl http://{worker_ip}:{node_port}/          # the NodePort answers on every node, from the host",
        f"  kinns exec{flag} pod/{pod} -- wget -qO- http://{cluster_ip}/   # the ClusterIP, from a pod",
        f"  kinns exec{flag} pod/{pod} -- curl -s http://hello/           # by name: cluster DNS at 10.96.0.10",
        f"  kinns exec{flag} pod/{pod} -- dig +search hello               # the A record CoreDNS answers",
        "  kubectl get ds,pods -n kube-system -o wide     # kube-proxy: one pod per node",
        f"  kubectl logs -n kube-system {kube_proxy_pod}   # says which proxier it uses ({proxy_mode})",
        f"  kinns exec{flag} node/{name}-worker -- {rules}   # the rules kube-proxy wrote",
        f"  kinns exec{flag} node/{name}-worker -- conntrack -L   # connections and their NAT",
        f"  kinns control-plane stop{flag}; curl http://{worker_ip}:{node_port}/; kinns control-plane start{flag}",
        f"  kinns exec{flag} node/{name}-control-plane -- curl -s {pod_ip}   # node to pod, across the VXLAN overlay",
        f"  kinns exec{flag} node/{name}-worker -- ip route                   # routes to the other nodes' ranges",
        f"  kinns exec{flag} pod/{pod} -- cat /etc/resolv.conf",
        f"  kinns trace{flag} pod/{pod} svc/hello          # one real SYN, hop by hop from the kernels' own trace",
        f"  kinns ui{flag}                                  # a live diagram at http://127.0.0.1:8080/",
        "  kubectl scale deploy hello --replicas=5; kubectl get endpointslices -l kubernetes.io/service-name=hello",
        f"  kinns down{flag}                                # removes everything",
    ])
