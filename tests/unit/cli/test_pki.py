"""The cluster PKI: names, key modes, idempotence, chain of trust, groups."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import PolicyBuilder, Store

from pocketkube import pki


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _sans(cert: x509.Certificate) -> tuple[list[str], list[str]]:
    ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return ext.get_values_for_type(x509.DNSName), [
        str(ip) for ip in ext.get_values_for_type(x509.IPAddress)
    ]


def _files(paths: pki.PkiPaths) -> dict[str, bytes]:
    return {name: getattr(paths, name).read_bytes() for name in pki.PkiPaths.__dataclass_fields__}


@pytest.fixture
def paths(tmp_path: Path) -> pki.PkiPaths:
    return pki.ensure_pki(tmp_path / "pki", ["devbox", "192.0.2.10", "2001:db8::7"])


def test_serving_cert_covers_local_service_and_host_names(paths: pki.PkiPaths) -> None:
    dns, ips = _sans(_cert(paths.server_cert))
    assert set(dns) >= {
        "localhost",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
        "devbox",
    }
    assert set(ips) >= {"127.0.0.1", "::1", "10.96.0.1", "192.0.2.10", "2001:db8::7"}


def test_service_ip_is_configurable(tmp_path: Path) -> None:
    paths = pki.ensure_pki(tmp_path / "pki", [], service_ip="10.0.0.1")
    assert "10.0.0.1" in _sans(_cert(paths.server_cert))[1]


def test_private_keys_are_owner_only(paths: pki.PkiPaths) -> None:
    for key in (paths.ca_key, paths.server_key, paths.admin_key, paths.sa_key):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key
    assert stat.S_IMODE(paths.ca_cert.parent.stat().st_mode) == 0o700


def test_ensure_pki_is_idempotent(tmp_path: Path, paths: pki.PkiPaths) -> None:
    before = _files(paths)
    again = pki.ensure_pki(tmp_path / "pki", ["devbox", "192.0.2.10", "2001:db8::7"])
    assert again == paths
    assert _files(again) == before


def test_new_host_reissues_only_the_serving_cert(tmp_path: Path, paths: pki.PkiPaths) -> None:
    before = _files(paths)
    pki.ensure_pki(tmp_path / "pki", ["devbox", "192.0.2.10", "2001:db8::7", "198.51.100.4"])
    after = _files(paths)
    assert "198.51.100.4" in _sans(_cert(paths.server_cert))[1]
    changed = {name for name in before if before[name] != after[name]}
    assert changed == {"server_cert", "server_key"}


def test_missing_pieces_are_recreated(tmp_path: Path, paths: pki.PkiPaths) -> None:
    before = _files(paths)
    paths.admin_key.unlink()
    paths.sa_pub.unlink()
    pki.ensure_pki(tmp_path / "pki", ["devbox", "192.0.2.10", "2001:db8::7"])
    after = _files(paths)
    assert after["ca_cert"] == before["ca_cert"]
    assert after["server_cert"] == before["server_cert"]
    assert after["admin_key"] != before["admin_key"]
    assert after["sa_key"] != before["sa_key"]  # a lone private key is replaced as a pair


def test_new_ca_reissues_every_leaf(tmp_path: Path, paths: pki.PkiPaths) -> None:
    paths.ca_key.unlink()
    pki.ensure_pki(tmp_path / "pki", ["devbox"])
    ca = _cert(paths.ca_cert)
    _cert(paths.server_cert).verify_directly_issued_by(ca)
    _cert(paths.admin_cert).verify_directly_issued_by(ca)


def test_leaf_close_to_expiry_is_renewed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pki, "LEAF_VALIDITY", dt.timedelta(days=10))
    paths = pki.ensure_pki(tmp_path / "pki", [])
    short = _cert(paths.server_cert)
    monkeypatch.setattr(pki, "LEAF_VALIDITY", dt.timedelta(days=365))
    pki.ensure_pki(tmp_path / "pki", [])
    renewed = _cert(paths.server_cert)
    assert renewed.not_valid_after_utc - short.not_valid_after_utc > dt.timedelta(days=300)


def test_chain_verifies_for_server_names(paths: pki.PkiPaths) -> None:
    store = Store([_cert(paths.ca_cert)])
    for name in (
        x509.DNSName("kubernetes.default.svc"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
    ):
        verifier = PolicyBuilder().store(store).build_server_verifier(name)
        chain = verifier.verify(_cert(paths.server_cert), [])
        assert chain[-1] == _cert(paths.ca_cert)


def _handshake(client: ssl.SSLContext, server: ssl.SSLContext, hostname: str) -> ssl.SSLObject:
    """A TLS handshake through memory buffers; returns the server side once it completes."""
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    c = client.wrap_bio(c_in, c_out, server_hostname=hostname)
    s = server.wrap_bio(s_in, s_out, server_side=True)
    done = {"c": False, "s": False}
    for _ in range(10):
        for side, obj in (("c", c), ("s", s)):
            if not done[side]:
                try:
                    obj.do_handshake()
                    done[side] = True
                except ssl.SSLWantReadError:
                    pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if all(done.values()):
            return s
    raise AssertionError("handshake did not complete")


def test_mutual_tls_with_admin_credentials(paths: pki.PkiPaths) -> None:
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(paths.ca_cert))
    server.load_cert_chain(str(paths.server_cert), str(paths.server_key))
    server.verify_mode = ssl.CERT_REQUIRED
    client = ssl.create_default_context(cafile=str(paths.ca_cert))
    client.load_cert_chain(str(paths.admin_cert), str(paths.admin_key))
    for host in ("127.0.0.1", "kubernetes.default.svc.cluster.local", "devbox"):
        peer = _handshake(client, server, host).getpeercert()
        assert peer is not None
        assert ((("organizationName", "system:masters"),)) in peer["subject"]


def test_tls_rejects_a_name_not_in_the_certificate(paths: pki.PkiPaths) -> None:
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(str(paths.server_cert), str(paths.server_key))
    client = ssl.create_default_context(cafile=str(paths.ca_cert))
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(client, server, "example.com")


def test_server_verifier_rejects_unknown_name(paths: pki.PkiPaths) -> None:
    verifier = (
        PolicyBuilder()
        .store(Store([_cert(paths.ca_cert)]))
        .build_server_verifier(x509.DNSName("example.com"))
    )
    with pytest.raises(x509.verification.VerificationError):
        verifier.verify(_cert(paths.server_cert), [])


def test_admin_cert_is_in_system_masters(paths: pki.PkiPaths) -> None:
    cert = _cert(paths.admin_cert)
    subject = cert.subject
    assert [a.value for a in subject.get_attributes_for_oid(NameOID.COMMON_NAME)] == [
        "kubernetes-admin"
    ]
    assert [a.value for a in subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)] == [
        "system:masters"
    ]
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.CLIENT_AUTH]


def test_service_account_key_pair_matches(paths: pki.PkiPaths) -> None:
    key = serialization.load_pem_private_key(paths.sa_key.read_bytes(), password=None)
    pub = serialization.load_pem_public_key(paths.sa_pub.read_bytes())
    assert isinstance(key, rsa.RSAPrivateKey) and key.key_size == 2048
    signature = key.sign(b"token", padding.PKCS1v15(), SHA256())
    assert isinstance(pub, rsa.RSAPublicKey)
    pub.verify(signature, b"token", padding.PKCS1v15(), SHA256())


def test_issue_client_cert_for_a_node(paths: pki.PkiPaths) -> None:
    cert_pem, key_pem = pki.issue_client_cert(paths, "system:node:worker-1", ["system:nodes"])
    cert = x509.load_pem_x509_certificate(cert_pem)
    cert.verify_directly_issued_by(_cert(paths.ca_cert))
    assert cert.subject.rfc4514_string() == "CN=system:node:worker-1,O=system:nodes"
    key = serialization.load_pem_private_key(key_pem, password=None)
    assert key.public_key() == cert.public_key()


def test_issue_serving_cert_for_a_node(paths: pki.PkiPaths) -> None:
    cert_pem, _ = pki.issue_serving_cert(paths, "worker-1", ["worker-1", "192.0.2.20"])
    cert = x509.load_pem_x509_certificate(cert_pem)
    assert _sans(cert) == (["worker-1"], ["192.0.2.20"])


def test_default_hosts_excludes_loopback_and_keeps_hostname() -> None:
    hosts = pki.default_hosts("0.0.0.0")
    assert hosts[0]  # the host name comes first
    for host in hosts[1:]:
        ip = ipaddress.ip_address(host)
        assert not ip.is_loopback and not ip.is_link_local
    assert "192.0.2.99" in pki.default_hosts("192.0.2.99")
