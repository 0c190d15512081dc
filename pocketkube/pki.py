"""The cluster's certificates and keys: a CA, the API server's serving certificate, the admin
client certificate, the API server's client certificate for node agents and the
service-account signing key pair.

Kubernetes leaves this to kubeadm or to the operator; pocketkube creates it on first start so a
cluster works with one command. `ensure_pki` is idempotent: it keeps what is on disk and only
creates what is missing or no longer fits (a serving certificate that lacks a requested name,
was signed by another CA, or is about to expire). It is written against `cryptography` directly
because no small library issues a Kubernetes-shaped set (SANs, system:masters group, SA keys).
"""

from __future__ import annotations

import datetime as dt
import fcntl
import ipaddress
import json
import logging
import os
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

log = logging.getLogger("pocketkube.pki")

CA_VALIDITY = dt.timedelta(days=3650)
LEAF_VALIDITY = dt.timedelta(days=365)
# A leaf certificate this close to expiry is reissued on the next start.
RENEW_BEFORE = dt.timedelta(days=30)
ADMIN_CN = "kubernetes-admin"
ADMIN_ORGS = ("system:masters",)
# What the API server presents to node agents (kubeadm's apiserver-kubelet-client).
KUBELET_CLIENT_CN = "kube-apiserver-kubelet-client"
KUBELET_CLIENT_ORGS = ("system:masters",)
SERVICE_NAMES = (
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
)

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


@dataclass(frozen=True)
class PkiPaths:
    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    admin_cert: Path
    admin_key: Path
    sa_key: Path
    sa_pub: Path
    kubelet_client_cert: Path
    kubelet_client_key: Path

    @classmethod
    def under(cls, pki_dir: Path) -> PkiPaths:
        return cls(
            ca_cert=pki_dir / "ca.crt",
            ca_key=pki_dir / "ca.key",
            server_cert=pki_dir / "apiserver.crt",
            server_key=pki_dir / "apiserver.key",
            admin_cert=pki_dir / "admin.crt",
            admin_key=pki_dir / "admin.key",
            sa_key=pki_dir / "sa.key",
            sa_pub=pki_dir / "sa.pub",
            kubelet_client_cert=pki_dir / "apiserver-kubelet-client.crt",
            kubelet_client_key=pki_dir / "apiserver-kubelet-client.key",
        )


def serving_names(hosts: list[str], service_ip: str) -> list[str]:
    """Every DNS name and IP the API server's certificate must cover, without duplicates."""
    names = ["localhost", "127.0.0.1", "::1", *SERVICE_NAMES, service_ip, *hosts]
    return list(dict.fromkeys(n for n in names if n))


def default_hosts(bind_address: str = "127.0.0.1") -> list[str]:
    """The host name, its non-loopback addresses and the bind address (when it is specific)."""
    hosts = [socket.gethostname(), *local_addresses()]
    if bind_address not in ("", "0.0.0.0", "::"):
        hosts.append(bind_address)
    return list(dict.fromkeys(hosts))


def local_addresses() -> list[str]:
    """Non-loopback, non-link-local addresses of this host, read locally (no DNS lookups)."""
    found: list[str] = []
    try:
        out = subprocess.run(
            ["ip", "-j", "addr", "show"], capture_output=True, check=True, timeout=5
        ).stdout
        for link in json.loads(out):
            found.extend(a.get("local", "") for a in link.get("addr_info", []))
    except (OSError, subprocess.SubprocessError, ValueError):
        found = _proc_addresses()
    result = []
    for text in found:
        try:
            ip = ipaddress.ip_address(text)
        except ValueError:
            continue
        if not (ip.is_loopback or ip.is_link_local or ip.is_unspecified):
            result.append(str(ip))
    return list(dict.fromkeys(result))


def _proc_addresses() -> list[str]:
    # Minimal systems lack iproute2; the kernel lists local addresses under /proc as well.
    found: list[str] = []
    try:
        lines = Path("/proc/net/fib_trie").read_text().splitlines()
        for prev, line in zip(lines, lines[1:], strict=False):
            if "/32 host LOCAL" in line:
                found.append(prev.split()[-1])
    except OSError:
        pass
    try:
        for line in Path("/proc/net/if_inet6").read_text().splitlines():
            raw = line.split()[0]
            found.append(str(ipaddress.IPv6Address(bytes.fromhex(raw))))
    except (OSError, ValueError, IndexError):
        pass
    return found


def write_private(path: Path, data: bytes) -> None:
    """Write a secret atomically, readable by its owner only (mode 0600 from the first byte)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def ensure_pki(pki_dir: Path, hosts: list[str], service_ip: str = "10.96.0.1") -> PkiPaths:
    """Create whatever part of the cluster PKI is missing under `pki_dir` and return its paths."""
    pki_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    paths = PkiPaths.under(pki_dir)
    with _locked(pki_dir / ".lock"):
        ca_cert, ca_key, ca_new = _ensure_ca(paths)
        sans = serving_names(hosts, service_ip)
        if ca_new or not _leaf_fits(paths.server_cert, paths.server_key, ca_cert, sans):
            cert, key = _issue(ca_cert, ca_key, "kube-apiserver", (), sans, server=True)
            _store(paths.server_cert, paths.server_key, cert, key)
            log.info("issued API server certificate for %s", ", ".join(sans))
        if ca_new or not _leaf_fits(paths.admin_cert, paths.admin_key, ca_cert, []):
            cert, key = _issue(ca_cert, ca_key, ADMIN_CN, ADMIN_ORGS, [], server=False)
            _store(paths.admin_cert, paths.admin_key, cert, key)
            log.info("issued admin client certificate")
        if ca_new or not _leaf_fits(paths.kubelet_client_cert, paths.kubelet_client_key, ca_cert,
                                    []):
            cert, key = _issue(ca_cert, ca_key, KUBELET_CLIENT_CN, KUBELET_CLIENT_ORGS, [],
                               server=False)
            _store(paths.kubelet_client_cert, paths.kubelet_client_key, cert, key)
            log.info("issued the API server's client certificate for node agents")
        if not (paths.sa_key.exists() and paths.sa_pub.exists()):
            sa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            write_private(paths.sa_key, _key_pem(sa))
            paths.sa_pub.write_bytes(
                sa.public_key().public_bytes(
                    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
                )
            )
            log.info("generated service-account signing key")
        for key_path in (paths.ca_key, paths.server_key, paths.admin_key, paths.sa_key,
                         paths.kubelet_client_key):
            key_path.chmod(0o600)
    return paths


def issue_client_cert(paths: PkiPaths, cn: str, orgs: list[str]) -> tuple[bytes, bytes]:
    """A client certificate signed by the cluster CA: (certificate PEM, private key PEM)."""
    ca_cert, ca_key = _load_ca(paths)
    cert, key = _issue(ca_cert, ca_key, cn, tuple(orgs), [], server=False)
    return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)


def issue_serving_cert(paths: PkiPaths, cn: str, hosts: list[str]) -> tuple[bytes, bytes]:
    """A serving certificate for `hosts` signed by the cluster CA (e.g. a node's own server)."""
    ca_cert, ca_key = _load_ca(paths)
    cert, key = _issue(ca_cert, ca_key, cn, (), hosts, server=True)
    return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)


@contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    # `start` and the server it launches may both run ensure_pki; never let them interleave.
    with open(lock_path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _load_ca(paths: PkiPaths) -> tuple[x509.Certificate, PrivateKey]:
    cert = x509.load_pem_x509_certificate(paths.ca_cert.read_bytes())
    key = serialization.load_pem_private_key(paths.ca_key.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise TypeError(f"{paths.ca_key}: unsupported CA key type {type(key).__name__}")
    return cert, key


def _ensure_ca(paths: PkiPaths) -> tuple[x509.Certificate, PrivateKey, bool]:
    if paths.ca_cert.exists() and paths.ca_key.exists():
        cert, key = _load_ca(paths)
        return cert, key, False
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pocketkube-ca")])
    now = _now()
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(ski, critical=False)
        .sign(key, hashes.SHA256())
    )
    _store(paths.ca_cert, paths.ca_key, cert, key)
    log.info("generated cluster CA")
    return cert, key, True


def _issue(
    ca_cert: x509.Certificate,
    ca_key: PrivateKey,
    cn: str,
    orgs: tuple[str, ...],
    sans: list[str],
    *,
    server: bool,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs]
    subject.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    now = _now()
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name(subject))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(min(now + LEAF_VALIDITY, ca_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    if sans:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([_general_name(n) for n in sans]), critical=False
        )
    return builder.sign(ca_key, hashes.SHA256()), key


def _leaf_fits(cert_path: Path, key_path: Path, ca_cert: x509.Certificate, sans: list[str]) -> bool:
    """Whether an existing leaf certificate can be kept as it is."""
    if not (cert_path.exists() and key_path.exists()):
        return False
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        cert.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, x509.InvalidSignature):
        return False
    if cert.not_valid_after_utc - _now() < RENEW_BEFORE:
        return False
    if not sans:
        return True
    try:
        present = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    return all(_general_name(n) in present for n in sans)


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _key_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _store(cert_path: Path, key_path: Path, cert: x509.Certificate, key: PrivateKey) -> None:
    # Key first: a certificate on disk without its key would be kept by the next run.
    write_private(key_path, _key_pem(key))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
