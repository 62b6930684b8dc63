"""Certificates: a cluster CA, the API server's serving cert, one client identity per component.

As kubeadm (and so kind) does: a self-signed CA per cluster; the serving
certificate names every address the API answers on; the admin client
certificate has CN `kubernetes-admin` in O `system:masters`; each
component has its own client certificate, the identity the API server
authenticates and RBAC binds (`component_identities`):
`system:kube-controller-manager`, `system:kube-scheduler`,
`system:kube-proxy`, and `system:node:<node>` in `system:nodes` per kubelet,
each with a kubeconfig beside it as kubeadm writes `controller-manager.conf`,
`scheduler.conf` and `kubelet.conf`.  `sa.key`/`sa.pub` sign and verify
ServiceAccount tokens (kube-apiserver's --service-account-signing-key-file
and --service-account-key-file).  Keys are EC P-256, which is quick to
generate, so `kinns up` stays fast.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class CertPaths:
    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    admin_cert: Path
    admin_key: Path


def paths(pki_dir: Path) -> CertPaths:
    return CertPaths(
        pki_dir / "ca.crt", pki_dir / "ca.key",
        pki_dir / "apiserver.crt", pki_dir / "apiserver.key",
        pki_dir / "admin.crt", pki_dir / "admin.key",
    )


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write(path: Path, data: bytes, private: bool = False) -> None:
    path.write_bytes(data)
    if private:
        path.chmod(0o600)


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _name(cn: str, org: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if org:
        attrs.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    return x509.Name(attrs)


def _leaf(ca_key: ec.EllipticCurvePrivateKey, ca_name: x509.Name, now: dt.datetime, cn: str, org: str | None,
          usage: x509.ObjectIdentifier, sans: list[x509.GeneralName]) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A key and a one-year certificate for `cn` (in `org`), signed by the CA."""
    key = _key()
    b = (
        x509.CertificateBuilder()
        .subject_name(_name(cn, org)).issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now).not_valid_after(now + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, True, False, False, False, False, False, False, False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
    )
    if sans:
        b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return b.sign(ca_key, hashes.SHA256()), key


def client_cert(pki_dir: Path, file_stem: str, cn: str, org: str | None = None) -> tuple[Path, Path]:
    """A client certificate for a component's own identity (e.g. CN
    `system:kube-proxy`), signed by the cluster CA; kept if it exists.
    Returns (cert, key) paths `<pki>/<file_stem>.crt|.key`."""
    return _signed(pki_dir, file_stem, cn, org, ExtendedKeyUsageOID.CLIENT_AUTH, [])


def _signed(pki_dir: Path, file_stem: str, cn: str, org: str | None, usage: x509.ObjectIdentifier,
            sans: list[x509.GeneralName]) -> tuple[Path, Path]:
    """A leaf signed by the cluster CA at `<pki>/<file_stem>.crt|.key`, kept if it exists."""
    crt, key_path = pki_dir / f"{file_stem}.crt", pki_dir / f"{file_stem}.key"
    if crt.exists() and key_path.exists():
        return crt, key_path
    p = paths(pki_dir)
    ca = x509.load_pem_x509_certificate(p.ca_cert.read_bytes())
    ca_key = serialization.load_pem_private_key(p.ca_key.read_bytes(), None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    now = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=5)
    cert, key = _leaf(ca_key, ca.subject, now, cn, org, usage, sans)
    _write(crt, cert.public_bytes(serialization.Encoding.PEM))
    _write(key_path, _pem_key(key), private=True)
    return crt, key_path


# The API server's identity towards kubelets (kube-apiserver's
# --kubelet-client-certificate), as kubeadm issues `apiserver-kubelet-client.crt`.
KUBELET_CLIENT_USER = "kube-apiserver-kubelet-client"
KUBELET_CLIENT_GROUP = "kubeadm:cluster-admins"


def kubelet_client_cert(pki_dir: Path) -> tuple[Path, Path]:
    """`apiserver-kubelet-client.crt|.key`: what the API server shows a kubelet's :10250."""
    return client_cert(pki_dir, "apiserver-kubelet-client", KUBELET_CLIENT_USER, KUBELET_CLIENT_GROUP)


def kubelet_serving_cert(pki_dir: Path, node: str, ip: str) -> tuple[Path, Path]:
    """A kubelet's serving certificate for :10250 (`kubelet-<node>-server.crt|.key`),
    for the node's name and IP, as a kubelet's approved serving CSR is (CN
    `system:node:<node>` in `system:nodes`); CA-signed, so the API server can
    verify the kubelet it proxies to (--kubelet-certificate-authority)."""
    sans: list[x509.GeneralName] = [x509.DNSName(node), x509.IPAddress(ipaddress.ip_address(ip))]
    return _signed(pki_dir, f"kubelet-{node}-server", f"system:node:{node}", "system:nodes",
                   ExtendedKeyUsageOID.SERVER_AUTH, sans)


def ensure_pki(pki_dir: Path, server_names: list[str], server_ips: list[str]) -> CertPaths:
    """Create the CA and certificates if missing; existing ones are kept."""
    pki_dir.mkdir(parents=True, exist_ok=True)
    p = paths(pki_dir)
    if p.ca_cert.exists() and p.server_cert.exists() and p.admin_cert.exists():
        return p
    now = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=5)
    ca_key = _key()
    ca_name = _name("kubernetes")
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name).issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now).not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    def leaf(cn: str, org: str | None, usage: x509.ObjectIdentifier,
             sans: list[x509.GeneralName]) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        return _leaf(ca_key, ca_name, now, cn, org, usage, sans)

    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in server_names]
    sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in server_ips]
    server, server_key = leaf("kube-apiserver", None, ExtendedKeyUsageOID.SERVER_AUTH, sans)
    admin, admin_key = leaf("kubernetes-admin", "system:masters", ExtendedKeyUsageOID.CLIENT_AUTH, [])
    pem = serialization.Encoding.PEM
    _write(p.ca_cert, ca.public_bytes(pem))
    _write(p.ca_key, _pem_key(ca_key), private=True)
    _write(p.server_cert, server.public_bytes(pem))
    _write(p.server_key, _pem_key(server_key), private=True)
    _write(p.admin_cert, admin.public_bytes(pem))
    _write(p.admin_key, _pem_key(admin_key), private=True)
    return p


def ensure_sa_keypair(pki_dir: Path) -> tuple[Path, Path]:
    """The ServiceAccount token signing key and its public half (kept if present)."""
    key_path, pub_path = pki_dir / "sa.key", pki_dir / "sa.pub"
    if key_path.exists() and pub_path.exists():
        return key_path, pub_path
    pki_dir.mkdir(parents=True, exist_ok=True)
    key = _key()
    _write(key_path, _pem_key(key), private=True)
    _write(pub_path, key.public_key().public_bytes(serialization.Encoding.PEM,
                                                   serialization.PublicFormat.SubjectPublicKeyInfo))
    return key_path, pub_path


@dataclass(frozen=True)
class Component:
    """One component identity: its file stem, the user (CN) and group (O) it authenticates as."""

    stem: str
    user: str
    group: str | None = None


def components(node_names: list[str]) -> list[Component]:
    """The identities of a cluster's components, as kubeadm issues them."""
    out = [Component("controller-manager", "system:kube-controller-manager"),
           Component("scheduler", "system:kube-scheduler"),
           Component("kube-proxy", "system:kube-proxy")]
    return out + [Component(f"kubelet-{n}", f"system:node:{n}", "system:nodes") for n in node_names]


def write_kubeconfig(path: Path, server: str, ca: Path, crt: Path, key: Path, user: str) -> None:
    """A kubeconfig with embedded credentials for one component (private: it holds a key)."""
    import base64

    import yaml

    def b64(p: Path) -> str:
        return base64.b64encode(p.read_bytes()).decode()

    doc = {"apiVersion": "v1", "kind": "Config",
           "clusters": [{"name": "kubernetes", "cluster": {"certificate-authority-data": b64(ca), "server": server}}],
           "contexts": [{"name": f"{user}@kubernetes", "context": {"cluster": "kubernetes", "user": user}}],
           "current-context": f"{user}@kubernetes",
           "users": [{"name": user, "user": {"client-certificate-data": b64(crt), "client-key-data": b64(key)}}]}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def component_identities(pki_dir: Path, node_names: list[str], server: str,
                         kubeconfig_dir: Path | None = None) -> dict[str, tuple[Path, Path]]:
    """Client certificates (and, given a directory, kubeconfigs `<stem>.conf`) for every
    component; existing ones are kept.  Returns {stem: (cert, key)}."""
    out: dict[str, tuple[Path, Path]] = {}
    for c in components(node_names):
        crt, key = client_cert(pki_dir, c.stem, c.user, c.group)
        out[c.stem] = (crt, key)
        if kubeconfig_dir is not None:
            conf = kubeconfig_dir / f"{c.stem}.conf"
            if not conf.exists():
                write_kubeconfig(conf, server, paths(pki_dir).ca_cert, crt, key, c.user)
    out["apiserver-kubelet-client"] = kubelet_client_cert(pki_dir)     # no kubeconfig: it only talks to kubelets
    return out
