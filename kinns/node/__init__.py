"""The node agent's pieces: a container runtime without images.

What the kubelet calls (all synchronous and thread-safe):

- `sandbox.create_sandbox(state_dir, pod, netns=..., pod_ip=...)` → `Sandbox`:
  the pod's shared /etc/hosts, /etc/resolv.conf, hostname and log directory;
- `runtime.Runtime(state_dir, cgroup_parent="kinns/<cluster>/<node>")`:
  `start_container`, `status`, `wait`, `stop_container`, `stop_pod`,
  `remove_pod`, `log_path`, `exec`/`exec_sync`, `close`;
- `runtime.cleanup(state_dir)` after a crash;
- `logs.read_log(path, timestamps=, tail=, follow=)` for `kubectl logs`;
- pure helpers: `dnsconfig.resolv_conf`, `envvars.service_env`,
  `envvars.container_env`, `images.resolve`.
"""
