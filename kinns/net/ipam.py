"""Pod IP allocation from a node's range, persisted in host-local's format.

The store is a directory `<data_dir>/<network>/` laid out as the reference
host-local IPAM plugin lays out `/var/lib/cni/networks/<network>/`: one file
per allocated IP, named by the IP and containing `<containerID>\\r\\n<ifname>`;
`last_reserved_ip.0` with the last IP handed out; and a `lock` file taken
with flock(2) around every change.  So allocations survive a daemon restart
(no duplicates), several processes (the in-process kubelet and `kinns-cni`
invocations) can share one store, and the files can be read by anyone who
knows host-local.

Allocation is round robin from just after the last reserved IP, skipping the
network address, the gateway and the broadcast address, as host-local does.
"""

from __future__ import annotations

import ipaddress
import os
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

from ..filelock import file_lock

DEFAULT_DATA_DIR = "/var/lib/cni/networks"
LAST_RESERVED = "last_reserved_ip.0"


def _overwrite(path: Path, text: str) -> None:
    """Replace a small file's content without truncating it to zero first:
    ext4 flushes a file that is truncated to zero and rewritten
    (auto_da_alloc), which made this one write cost more than a veth."""
    data = text.encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        os.pwrite(fd, data, 0)
        os.ftruncate(fd, len(data))
    finally:
        os.close(fd)


class IpamError(Exception):
    """Allocation failed; `code` is the CNI error code to report."""

    def __init__(self, msg: str, code: int = 11) -> None:
        super().__init__(msg)
        self.code = code


@dataclass(frozen=True)
class Range:
    """One host-local range: a subnet, optional start/end, and the gateway."""
    subnet: str
    gateway: str | None = None
    range_start: str | None = None
    range_end: str | None = None

    @property
    def network(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(self.subnet, strict=False)

    @property
    def gw(self) -> ipaddress.IPv4Address:
        return ipaddress.IPv4Address(self.gateway) if self.gateway else self.network[1]

    def bounds(self) -> tuple[int, int]:
        net = self.network
        lo = int(ipaddress.IPv4Address(self.range_start)) if self.range_start else int(net[1])
        hi = int(ipaddress.IPv4Address(self.range_end)) if self.range_end else int(net[-2])
        return lo, hi


@dataclass(frozen=True)
class Allocation:
    ip: ipaddress.IPv4Interface     # address with the range's prefix length
    gateway: ipaddress.IPv4Address


class HostLocalStore:
    """The persisted allocations of one network on one node."""

    def __init__(self, data_dir: str | Path, network: str) -> None:
        if "/" in network or network in ("", ".", ".."):
            raise IpamError(f"invalid network name {network!r}", code=7)
        self.dir = Path(data_dir) / network
        self._cache: dict[tuple[str, int], tuple[str, str]] = {}

    def locked(self) -> AbstractContextManager[None]:
        """The network's lock: one allocation at a time across CNI processes."""
        return file_lock(self.dir / "lock")

    def _scan(self) -> dict[str, tuple[str, str]]:
        """ip -> (container id, ifname) for every allocation file.

        Reading hundreds of small files per ADD would dominate the cost of a
        pod, so contents are cached by (name, inode): a file another process
        released and re-created gets a new inode and is read again."""
        try:
            entries = [(e.name, e.inode()) for e in os.scandir(self.dir)
                       if e.name[:1].isdigit() and e.name.count(".") == 3]
        except FileNotFoundError:
            return {}
        cache = self._cache
        fresh: dict[tuple[str, int], tuple[str, str]] = {}
        for key in entries:
            owner = cache.get(key)
            if owner is None:
                try:
                    text = (self.dir / key[0]).read_bytes().decode(errors="replace")
                except FileNotFoundError:
                    continue
                # host-local writes "<id>\r\n<ifname>"; very old versions only "<id>"
                parts = text.split("\r\n") if "\r\n" in text else text.strip().splitlines() or [""]
                owner = (parts[0].strip(), parts[1].strip() if len(parts) > 1 else "")
            fresh[key] = owner
        self._cache = fresh
        return {name: owner for (name, _), owner in fresh.items()}

    def find(self, container_id: str, ifname: str) -> list[str]:
        want = (container_id, ifname)
        return sorted(ip for ip, owner in self._scan().items() if owner == want)

    def allocations(self) -> dict[str, tuple[str, str]]:
        """ip -> (container id, ifname)."""
        return self._scan()

    def allocate(self, container_id: str, ifname: str, rng: Range, prefer: str | None = None) -> Allocation:
        """Reserve the next free IP of `rng` for (container, ifname), or `prefer` if it is free
        (host-local's requested IP, used to give a pod back its address after a reboot).

        A second allocation for the same pair is refused, like host-local,
        because it means ADD ran twice without DEL."""
        net = rng.network
        lo, hi = rng.bounds()
        skip = {int(net.network_address), int(net.broadcast_address), int(rng.gw)}
        with self.locked():
            if self.find(container_id, ifname):
                raise IpamError(f"{container_id}/{ifname} already has an IP in {self.dir.name}; "
                                "duplicate allocation is not allowed", code=100)
            last_path = self.dir / LAST_RESERVED
            try:
                last = int(ipaddress.IPv4Address(last_path.read_text().strip()))
                if not lo <= last <= hi:
                    last = hi
            except (FileNotFoundError, ValueError):
                last = hi
            size = hi - lo + 1
            first = int(ipaddress.IPv4Address(prefer)) if prefer else None
            order = ([first] if first is not None and lo <= first <= hi else []) + \
                [lo + (last - lo + k) % size for k in range(1, size + 1)]
            for cand in order:
                if cand in skip:
                    continue
                ip = str(ipaddress.IPv4Address(cand))
                try:
                    fd = os.open(self.dir / ip, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                except FileExistsError:
                    continue
                try:
                    os.write(fd, f"{container_id}\r\n{ifname}".encode())
                finally:
                    os.close(fd)
                _overwrite(last_path, ip)
                return Allocation(ipaddress.IPv4Interface(f"{ip}/{net.prefixlen}"), rng.gw)
        raise IpamError(f"no IP addresses available in range {rng.subnet}", code=11)

    def release(self, container_id: str, ifname: str) -> list[str]:
        """Free every IP of (container, ifname); releasing nothing is fine."""
        with self.locked():
            freed = self.find(container_id, ifname)
            for ip in freed:
                try:
                    os.unlink(self.dir / ip)
                except FileNotFoundError:
                    pass
            return freed
