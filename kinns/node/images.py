"""Image names to behaviours: what a container runs when there are no images.

kinns has no registry and no image store.  A container runs as a host
process, so its `image` only selects what that process is:

- web-server images (`nginx`, `*/nginx*`, `httpd`, the e2e `nginx`/`httpd`
  images) → busybox `httpd` serving a page that names the pod and its IP,
  from the image's usual document root, on the first containerPort (else
  80).  busybox httpd is a few hundred kB of memory, which is what lets a
  node hold thousands of such pods;
- `agnhost` (the upstream e2e Swiss-army image) → its `netexec`,
  `serve-hostname` and `pause` subcommands, built in
  (`builtin_servers.py`);
- `pause` images → a process that waits for a signal;
- Kubernetes' component images (`kube-proxy`, `kube-apiserver`,
  `kube-controller-manager`, `kube-scheduler`, `coredns`) → kinns' own
  component (`python -m kinns.proxy` etc. with the container's flags, see
  COMPONENT_IMAGES); `etcd` with its `etcd` command → the host's etcd;
- shell-style images (busybox, alpine, debian, curl, ...) → the container's
  `command`/`args` run with the host's binaries, the image's default
  command when none is given;
- any other image with a `command` → that command with host binaries;
  without one there is nothing honest to run, so `resolve` raises
  `ImageError` with a waiting reason and a message saying what to do.

- images whose users expect a command the host names otherwise get it as a
  small script in the container's own layer (`python`, `pip` in python
  images, IMAGE_COMMANDS); images that need a runtime the host lacks
  (`node`) are refused with the package to install (HOST_RUNTIMES).

`resolve` returns a `Behaviour` the runtime carries out; it reads nothing
but whether the host has such a runtime.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass, field
from typing import Any

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# last path component of the repository → (document root, default port)
WEB_SERVERS: dict[str, tuple[str, int]] = {
    "nginx": ("/usr/share/nginx/html", 80),
    "nginx-unprivileged": ("/usr/share/nginx/html", 8080),
    "openresty": ("/usr/local/openresty/nginx/html", 80),
    "httpd": ("/usr/local/apache2/htdocs", 80),
    "apache": ("/var/www/html", 80),
    "caddy": ("/usr/share/caddy", 80),
}

# shell-style images and the command their image config would run
SHELL_IMAGES: dict[str, list[str]] = {
    "busybox": ["sh"], "alpine": ["/bin/sh"], "debian": ["bash"], "ubuntu": ["bash"],
    "centos": ["bash"], "fedora": ["bash"], "rockylinux": ["bash"], "almalinux": ["bash"],
    "amazonlinux": ["bash"], "archlinux": ["bash"], "curl": ["curl"], "netshoot": ["sh"],
    "dnsutils": ["sh"], "jessie-dnsutils": ["sh"], "toolbox": ["sh"], "python": ["python3"],
    "bash": ["bash"], "bats": ["sh"], "alpine-curl": ["sh"],
}

# Commands an image's users expect on its PATH that the host names otherwise:
# small scripts written into the container's root (its own overlay layer).
IMAGE_COMMANDS: dict[str, dict[str, str]] = {
    "python": {"/usr/local/bin/python": '#!/bin/sh\nexec python3 "$@"\n',
               "/usr/local/bin/pip": '#!/bin/sh\nexec python3 -m pip "$@"\n'},
}
# Images whose command is a runtime the host may not have: refused with the fix,
# as a pull of a missing image is, rather than "executable file not found".
HOST_RUNTIMES: dict[str, tuple[str, str]] = {"node": ("node", "nodejs")}

# Kubernetes' own component images → the kinns module that is that component
# (run as `python -m <module>` with the container's flags, see builtin_servers).
COMPONENT_IMAGES: dict[str, str] = {
    "kube-proxy": "kinns.proxy",
    "coredns": "kinns.dns",
    "kube-apiserver": "kinns.api",
    "kube-controller-manager": "kinns.controllers",
    "kube-scheduler": "kinns.controllers.scheduler_main",
    "kube-network-policies": "kinns.netpol",
    # registry.k8s.io/ingress-nginx/controller: the controller, nginx in its container.  Keyed by
    # the last two path parts: a bare "controller" would also catch MetalLB's and others'.
    "ingress-nginx/controller": "kinns.ingress",
}


def component_of(image: str) -> str | None:
    """The COMPONENT_IMAGES key `image` names, if any (`.../kube-proxy:v1.32` → `kube-proxy`)."""
    parts = image.split("@", 1)[0].lower().split("/")
    parts[-1] = parts[-1].split(":", 1)[0]       # the tag (a registry's :port is in parts[0])
    for key in ("/".join(parts[-2:]), parts[-1]):
        if key in COMPONENT_IMAGES:
            return key
    return None

WEB_ENTRYPOINTS = {"nginx", "httpd", "httpd-foreground", "docker-entrypoint.sh", "caddy", "openresty", "apache2"}
AGNHOST_SUBCOMMANDS = {"netexec", "serve-hostname", "pause"}


class ImageError(Exception):
    """The container cannot start; `reason` is the waiting reason to show."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass
class Behaviour:
    """What to run: `argv` executed with host binaries, or a built-in server
    (`builtin` with `args`).  `files` are written into the container's
    private root before it starts (e.g. a web server's index page)."""

    image: str
    argv: list[str] = field(default_factory=list)
    builtin: str = ""
    args: list[str] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)
    ports: list[int] = field(default_factory=list)


def repository(image: str) -> str:
    """`registry.k8s.io/e2e-test-images/agnhost:2.47@sha256:…` → `agnhost`."""
    ref = image.split("@", 1)[0]
    last = ref.rsplit("/", 1)[-1]
    return last.split(":", 1)[0].lower()


def _container_ports(container: dict[str, Any]) -> list[int]:
    return [int(p["containerPort"]) for p in container.get("ports") or [] if p.get("containerPort")]


def web_page(pod_name: str, pod_ip: str) -> str:
    """What the web-server behaviour answers: the pod's name and IP, so a
    learner curling a Service sees which pod answered."""
    return f"{pod_name} {pod_ip}\n"


def _web_kind(repo: str) -> str | None:
    if repo in WEB_SERVERS:
        return repo
    if repo.startswith("nginx"):
        return "nginx"
    if repo.startswith("httpd"):
        return "httpd"
    return None


def _agnhost(image: str, words: list[str]) -> Behaviour:
    if not words:
        raise ImageError("ErrImagePull", f"kinns runs agnhost subcommands {sorted(AGNHOST_SUBCOMMANDS)}; "
                         f"image {image!r} needs one in args (e.g. args: [netexec, --http-port=8080])")
    sub, rest = words[0], words[1:]
    if sub not in AGNHOST_SUBCOMMANDS:
        raise ImageError("ErrImagePull", f"kinns has no built-in agnhost {sub!r} (it has "
                         f"{', '.join(sorted(AGNHOST_SUBCOMMANDS))}); give a command to run instead")
    return Behaviour(image, builtin=sub, args=rest)


def resolve(container: dict[str, Any], pod_name: str = "", pod_ip: str = "") -> Behaviour:
    """The behaviour for `container` (command/args already expanded)."""
    image = container.get("image") or ""
    repo = repository(image)
    command = list(container.get("command") or [])
    args = list(container.get("args") or [])
    entry = os.path.basename(command[0]) if command else ""

    if repo == "agnhost" and (not command or entry == "agnhost"):
        return _agnhost(image, command[1:] + args if command else args)
    if repo in ("serve-hostname", "serve_hostname") and not command:
        return Behaviour(image, builtin="serve-hostname", args=args)
    component = component_of(image)
    if component is not None and (not command or entry == component.rsplit("/", 1)[-1]):
        return Behaviour(image, builtin=component, args=command[1:] + args if command else args)
    if repo == "pause" and not command:
        return Behaviour(image, builtin="pause")
    if repo == "hello-app" and not command:
        port = (_container_ports(container) or [8080])[0]
        return Behaviour(image, builtin="hello-app", args=[f"--port={port}", f"--version={_tag(image)}"],
                         ports=[port])
    web = _web_kind(repo)
    if web and (not command or entry in WEB_ENTRYPOINTS):
        root, default_port = WEB_SERVERS[web]
        port = (_container_ports(container) or [default_port])[0]
        return Behaviour(image, argv=["busybox", "httpd", "-f", "-v", "-p", str(port), "-h", root],
                         files={f"{root}/index.html": web_page(pod_name, pod_ip)}, ports=[port])
    if repo in HOST_RUNTIMES:
        binary, package = HOST_RUNTIMES[repo]
        if shutil.which(binary) is None:
            raise ImageError("ErrImagePull", f"image {image!r} runs {binary!r} with the host's binaries and this "
                             f"host has none: install it on the host (apt install {package}) or use another image")
        if not command:
            command = [binary]
    files = dict(IMAGE_COMMANDS.get(repo, {}))
    if command:
        return Behaviour(image, argv=command + args, files=files)
    if repo in SHELL_IMAGES:
        return Behaviour(image, argv=SHELL_IMAGES[repo] + args if not args else _shell_args(repo, args), files=files)
    raise ImageError("ErrImagePull", f"kinns has no built-in behaviour for image {image!r}; give the container a "
                     "command (it runs with the host's binaries) or use an image kinns knows "
                     "(nginx, httpd, agnhost, pause, busybox, alpine, curl, ...)")


def _shell_args(repo: str, args: list[str]) -> list[str]:
    """Args with no command replace the image's CMD; images whose entrypoint
    is the tool itself (curl) keep it in front."""
    if repo == "curl":
        return ["curl"] + args
    return args


def _tag(image: str) -> str:
    m = re.search(r":([^/@]+)(@|$)", image)
    return m.group(1) if m else "latest"
