"""The node agent: the kubelet process (`python -m kinns.node`) and a container runtime without images.

The kubelet (`kubelet.Kubelet`, run by `__main__`) runs static pods
(`staticpods`) and the API's pods, records them (`checkpoint`), and serves
:10250 (`server`).  What it calls in the runtime (synchronous, thread-safe):

- `sandbox.create_sandbox(state_dir, pod, netns=..., pod_ip=...)` → `Sandbox`:
  the pod's shared /etc/hosts, /etc/resolv.conf, hostname and log directory;
- `runtime.Runtime(state_dir, cgroup_parent="kinns/<cluster>/<node>")`:
  `start_container`, `status`, `wait`, `stop_container`, `stop_pod`,
  `remove_pod`, `log_path`, `exec`/`exec_sync`, `detach` (containers keep
  running for the next kubelet), `close` (containers die);
- `runtime.cleanup(state_dir)` after a crash;
- `logs.read_log(path, timestamps=, tail=, follow=)` for `kubectl logs`;
- pure helpers: `dnsconfig.resolv_conf`, `envvars.service_env`,
  `envvars.container_env`, `images.resolve`.
"""
