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


def next_steps(name: str) -> str:
    ctx = f"kinns-{name}"
    return "\n".join([
        f"Try next (kubectl's current context is {ctx}):",
        "  kubectl get nodes -o wide",
        "  kubectl get deploy,rs,pods,svc -o wide",
        "  kubectl get svc hello -o yaml            # clusterIP, nodePort, targetPort defaulted",
        "  kubectl describe deploy hello",
        "  kubectl get ns,sa -A",
        "  kubectl get --raw /apis | head -c 300",
        f"  kinns status --name {name}",
        f"  kinns down --name {name}                 # removes everything",
    ])
