#!/usr/bin/env bash
# Set up a fresh Debian machine for kinns (run as root): system packages,
# a venv with kinns and its test dependencies, and `kinns` on the PATH.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(python3 python3-venv python3-pip nftables iptables iproute2 conntrack dnsutils curl
          busybox containernetworking-plugins procps psmisc kmod util-linux ca-certificates iputils-ping
          tcpdump iperf3 dnsperf dnsmasq-base etcd-server etcd-client nginx wrk
          gcc libc6-dev  # gcc: builds kinns-ipip-encap, the user-space IP-in-IP data plane
          chromium)  # chromium: the browser tests/e2e/test_ui.py drives (Playwright, system binary)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
  # kinns runs nginx only inside the ingress controller's pods; the package's
  # own service would listen on the host's port 80.
  if [[ " ${missing[*]} " == *" nginx "* ]] && command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
    systemctl disable --now nginx.service >/dev/null 2>&1 || true
  fi
fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/pip install -q --disable-pip-version-check -e '.[test]'
# --overlay ipip on a kernel without ipip: the compiled encapsulator (else a slower Python one runs)
gcc -O2 -Wall -o .venv/bin/kinns-ipip-encap kinns/net/ipip_encap.c -lpthread
ln -sf "$PWD/.venv/bin/kinns" /usr/local/bin/kinns
ln -sf "$PWD/.venv/bin/kinns-cni" /usr/local/bin/kinns-cni
command -v kubectl >/dev/null || echo "setup: note: kubectl is not on the PATH; install it to drive the cluster" >&2
echo "setup: done (kinns -> $PWD/.venv/bin/kinns)"
