"""Static pods: pods a kubelet runs from files, and the mirror pods that show them.

The kubelet's file source (`--pod-manifest-path`, /etc/kubernetes/manifests
on kubeadm nodes) turns each manifest into a pod of this node: its name
gets `-<node>` appended, its UID is the hash of what was read (so an edit is
a new pod and the old one is stopped), and it is annotated
`kubernetes.io/config.source: file`, `config.hash`, `config.seen`.  The
kubelet runs it without asking the API server, which is how the API server
itself can be one.  Once the API answers, the kubelet creates a *mirror
pod* with the same spec, the annotation `kubernetes.io/config.mirror:
<hash>` and the Node as owner, so `kubectl get pods -n kube-system` lists
it; deleting the mirror pod only makes the kubelet create it again.

A manifest that does not parse is skipped, with the reason in the
kubelet's log, as upstream logs "Could not process manifest file".
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

log = logging.getLogger(__name__)

Obj = dict[str, Any]

SOURCE = "kubernetes.io/config.source"
HASH = "kubernetes.io/config.hash"
SEEN = "kubernetes.io/config.seen"
MIRROR = "kubernetes.io/config.mirror"


class ManifestError(ValueError):
    pass


def is_mirror(pod: Obj | None) -> bool:
    return bool(pod and MIRROR in ((pod.get("metadata") or {}).get("annotations") or {}))


def pod_hash(pod: Obj) -> str:
    """The config hash of a pod read from a file: also its UID, as upstream uses one for the other."""
    return hashlib.md5(json.dumps(pod, sort_keys=True).encode()).hexdigest()


def from_manifest(raw: Any, node: str, path: Path) -> Obj:
    """The static pod a parsed manifest describes, named and annotated for `node`."""
    if not isinstance(raw, dict) or raw.get("kind") != "Pod":
        raise ManifestError(f"{path}: couldn't parse as pod(kind is {raw.get('kind') if isinstance(raw, dict) else type(raw).__name__!r}, "
                            "want Pod)")
    if str(raw.get("apiVersion", "")) != "v1":
        raise ManifestError(f"{path}: couldn't parse as pod(apiVersion {raw.get('apiVersion')!r}, want v1)")
    meta = raw.get("metadata") or {}
    if not meta.get("name"):
        raise ManifestError(f"{path}: invalid pod: metadata.name: Required value: name or generateName is required")
    containers = (raw.get("spec") or {}).get("containers")
    if not containers or not all(isinstance(c, dict) and c.get("name") for c in containers):
        raise ManifestError(f"{path}: invalid pod: spec.containers: Required value")
    pod = copy.deepcopy(raw)
    uid = pod_hash(raw)
    meta = pod.setdefault("metadata", {})
    meta["name"] = f"{meta['name']}-{node}"
    meta.setdefault("namespace", "default")
    meta["uid"] = uid
    ann = meta.setdefault("annotations", {})
    ann.update({SOURCE: "file", HASH: uid,
                SEEN: datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")})
    spec = pod.setdefault("spec", {})
    spec["nodeName"] = node
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    # Upstream: a static pod tolerates every NoExecute taint (it runs where its file is).
    spec.setdefault("tolerations", []).append({"operator": "Exists", "effect": "NoExecute"})
    pod["status"] = {}
    return pod


def read_dir(directory: Path, node: str) -> tuple[dict[str, Obj], dict[str, str]]:
    """Static pods by key `ns/name`, and an error per file that could not be used.

    Hidden files (editors' and our own temporaries) are ignored, as upstream ignores
    names starting with a dot."""
    pods: dict[str, Obj] = {}
    errors: dict[str, str] = {}
    try:
        files = sorted(p for p in directory.iterdir() if p.is_file() and not p.name.startswith("."))
    except FileNotFoundError:
        return pods, errors
    for path in files:
        try:
            raw = yaml.safe_load(path.read_text())
            pod = from_manifest(raw, node, path)
        except (OSError, yaml.YAMLError, ManifestError) as exc:
            errors[str(path)] = str(exc) if isinstance(exc, ManifestError) else f"{path}: {exc}"
            continue
        key = f"{pod['metadata']['namespace']}/{pod['metadata']['name']}"
        pods[key] = pod
    return pods, errors


def mirror_pod(static: Obj, node_name: str, node_uid: str) -> Obj:
    """The mirror pod to create in the API for a static pod."""
    pod = copy.deepcopy(static)
    meta = pod["metadata"]
    meta.pop("uid", None)
    meta.pop("resourceVersion", None)
    meta["annotations"][MIRROR] = meta["annotations"][HASH]
    if node_uid:
        meta["ownerReferences"] = [{"apiVersion": "v1", "kind": "Node", "name": node_name, "uid": node_uid,
                                    "controller": True}]
    pod.pop("status", None)
    return pod


def mirror_matches(mirror: Obj | None, static: Obj) -> bool:
    """Whether the API's mirror pod is the one for this version of the static pod."""
    if mirror is None:
        return False
    ann = (mirror.get("metadata") or {}).get("annotations") or {}
    return bool(ann.get(MIRROR) == static["metadata"]["uid"] and not mirror["metadata"].get("deletionTimestamp"))
