"""The kinns client library: one `Client`, several transports, informers, work queues.

Every component (controllers, kubelet, kube-proxy, DNS) reaches the API
through this package only; see transport.py for the seam that lets the same
code run in-process, over HTTPS, or against a test double.
"""

from .client import Client, ResourceRef, error_from, object_key, split_key
from .informer import Informer, InformerFactory, index_by_namespace, index_by_node_name, index_by_owner_uid
from .transport import HttpTransport, InProcessTransport, MockTransport, Transport, load_kubeconfig
from .workqueue import ShutDown, WorkQueue

__all__ = [
    "Client", "ResourceRef", "error_from", "object_key", "split_key",
    "Informer", "InformerFactory", "index_by_namespace", "index_by_node_name", "index_by_owner_uid",
    "HttpTransport", "InProcessTransport", "MockTransport", "Transport", "load_kubeconfig",
    "ShutDown", "WorkQueue",
]
