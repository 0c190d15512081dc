"""The protobuf decoder against the real kubectl 1.32.

Each case runs a kubectl command whose typed client sends a protobuf body, captures that body on a
loopback server, decodes it, and compares the result with what the same command prints with
`--dry-run=client -o json` (the Go object as JSON), so the descriptor tables are checked field by
field against the real client.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pb_kubectl_harness import FakeAPIServer, versioned_kubectl

from pocketkube.api.protobuf import MEDIA_TYPE, decode


@pytest.fixture(scope="module")
def server() -> Iterator[FakeAPIServer]:
    srv = FakeAPIServer()
    srv.start()
    yield srv
    srv.stop()


def _tls_files(tmp: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "example.com")])
    now = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=3650))
        .sign(key, hashes.SHA256())
    )
    crt, pem = tmp / "tls.crt", tmp / "tls.key"
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return crt, pem


def _binary_file(tmp: Path) -> Path:
    path = tmp / "blob.bin"
    path.write_bytes(bytes(range(256)))
    return path


Args = Callable[[Path], list[str]]


def _tls(tmp: Path) -> list[str]:
    crt, key = _tls_files(tmp)
    return ["create", "secret", "tls", "tls1", f"--cert={crt}", f"--key={key}"]


CASES: dict[str, Args] = {
    "deployment": lambda t: [
        "create",
        "deployment",
        "web",
        "--image=nginx:1.25",
        "--replicas=3",
        "--port=80",
    ],
    "deployment-zero-replicas": lambda t: [
        "create",
        "deployment",
        "idle",
        "--image=nginx",
        "--image=busybox",
        "--replicas=0",
        "-n",
        "team",
    ],
    "configmap": lambda t: [
        "create",
        "configmap",
        "cfg",
        "--from-literal=a=1",
        "--from-literal=empty=",
        f"--from-file=blob={_binary_file(t)}",
    ],
    "secret-generic": lambda t: [
        "create",
        "secret",
        "generic",
        "s1",
        "--from-literal=user=admin",
        "--from-literal=empty=",
        "--type=Opaque",
        f"--from-file=blob={_binary_file(t)}",
    ],
    "secret-tls": _tls,
    "secret-docker-registry": lambda t: [
        "create",
        "secret",
        "docker-registry",
        "reg",
        "--docker-server=reg.example.com",
        "--docker-username=u",
        "--docker-password=p",
        "--docker-email=u@example.com",
    ],
    "service-clusterip": lambda t: [
        "create",
        "service",
        "clusterip",
        "svc",
        "--tcp=80:8080",
        "--tcp=443:https",
    ],
    "service-headless": lambda t: [
        "create",
        "service",
        "clusterip",
        "headless",
        "--clusterip=None",
        "--tcp=53:53",
    ],
    "service-nodeport": lambda t: [
        "create",
        "service",
        "nodeport",
        "np",
        "--tcp=80:8080",
        "--node-port=30080",
    ],
    "service-loadbalancer": lambda t: ["create", "service", "loadbalancer", "lb", "--tcp=80:8080"],
    "service-externalname": lambda t: [
        "create",
        "service",
        "externalname",
        "ext",
        "--external-name=example.com",
        "--tcp=80",
    ],
    "namespace": lambda t: ["create", "namespace", "ns1"],
    "serviceaccount": lambda t: ["create", "serviceaccount", "sa1"],
    "job": lambda t: ["create", "job", "j1", "--image=busybox", "--", "echo", "hi"],
    "cronjob": lambda t: [
        "create",
        "cronjob",
        "cj",
        "--image=busybox",
        "--schedule=*/5 * * * *",
        "--restart=OnFailure",
        "--",
        "date",
    ],
    "role": lambda t: [
        "create",
        "role",
        "r1",
        "--verb=get,list",
        "--resource=pods,deployments.apps",
        "--resource-name=a",
    ],
    "clusterrole": lambda t: [
        "create",
        "clusterrole",
        "cr1",
        "--verb=get",
        "--non-resource-url=/logs/*",
    ],
    "clusterrole-aggregated": lambda t: [
        "create",
        "clusterrole",
        "agg",
        "--aggregation-rule=rbac.example.com/aggregate=true",
    ],
    "rolebinding": lambda t: [
        "create",
        "rolebinding",
        "rb",
        "--role=r1",
        "--user=alice",
        "--group=devs",
        "--serviceaccount=default:sa1",
    ],
    "clusterrolebinding": lambda t: [
        "create",
        "clusterrolebinding",
        "crb",
        "--clusterrole=cr1",
        "--user=bob",
    ],
    "quota": lambda t: [
        "create",
        "quota",
        "q",
        "--hard=cpu=1500m,memory=1Gi,pods=10",
        "--scopes=NotTerminating",
    ],
    "priorityclass": lambda t: [
        "create",
        "priorityclass",
        "high",
        "--value=1000",
        "--description=important",
        "--preemption-policy=Never",
    ],
    "priorityclass-zero": lambda t: ["create", "priorityclass", "low", "--value=0"],
    "pdb-percent": lambda t: [
        "create",
        "poddisruptionbudget",
        "pdb",
        "--selector=app=web",
        "--min-available=50%",
    ],
    "pdb-int": lambda t: [
        "create",
        "poddisruptionbudget",
        "pdb2",
        "--selector=app in (web,api)",
        "--max-unavailable=1",
    ],
    "ingress": lambda t: [
        "create",
        "ingress",
        "ing",
        "--class=nginx",
        "--rule=foo.com/bar*=svc:8080,tls=secret",
        "--rule=/path=svc2:http",
        "--default-backend=def:80",
        "--annotation=a=b",
    ],
    "autoscale": lambda t: [
        "autoscale",
        "deployment",
        "web",
        "--min=2",
        "--max=5",
        "--cpu-percent=80",
    ],
}


def _run(
    server: FakeAPIServer, tmp: Path, args: list[str], binary: str = "kubectl"
) -> tuple[str, dict[str, Any]]:
    before = len(server.recorded)
    result = server.kubectl(tmp, *args, binary=binary)
    assert result.returncode == 0, result.stderr
    posts = server.recorded[before:]
    assert len(posts) == 1, posts
    assert posts[0].content_type == MEDIA_TYPE
    return posts[0].path, decode(posts[0].body)


@pytest.mark.parametrize("case", sorted(CASES))
def test_generator_body_matches_dry_run_json(
    server: FakeAPIServer, tmp_path: Path, case: str
) -> None:
    args = CASES[case](tmp_path)
    # Output flags go before a `--` that starts the container command.
    cut = args.index("--") if "--" in args else len(args)
    dry_args = [*args[:cut], "--dry-run=client", "-o", "json", *args[cut:]]
    dry = server.kubectl(tmp_path, *dry_args)
    assert dry.returncode == 0, dry.stderr
    expected = json.loads(dry.stdout)

    _, decoded = _run(server, tmp_path, args)

    assert decoded == expected


def test_create_token(server: FakeAPIServer, tmp_path: Path) -> None:
    path, decoded = _run(
        server,
        tmp_path,
        [
            "create",
            "token",
            "sa1",
            "--audience=api",
            "--audience=vault",
            "--duration=10m",
            "--bound-object-kind=Pod",
            "--bound-object-name=p1",
            "--bound-object-uid=0b6c7a4e-0000-4000-8000-000000000002",
        ],
    )
    assert path == "/api/v1/namespaces/default/serviceaccounts/sa1/token"
    assert decoded == {
        "kind": "TokenRequest",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"creationTimestamp": None},
        "spec": {
            "audiences": ["api", "vault"],
            "expirationSeconds": 600,
            "boundObjectRef": {
                "kind": "Pod",
                "apiVersion": "v1",
                "name": "p1",
                "uid": "0b6c7a4e-0000-4000-8000-000000000002",
            },
        },
        "status": {"token": "", "expirationTimestamp": None},
    }


def test_create_token_without_options_keeps_null_fields(
    server: FakeAPIServer, tmp_path: Path
) -> None:
    _, decoded = _run(server, tmp_path, ["create", "token", "sa1"])
    assert decoded["spec"] == {"audiences": None, "boundObjectRef": None, "expirationSeconds": None}


def test_auth_can_i_resource(server: FakeAPIServer, tmp_path: Path) -> None:
    path, decoded = _run(
        server,
        tmp_path,
        ["auth", "can-i", "create", "deployments.apps", "--subresource=scale", "-n", "team"],
    )
    assert path == "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
    assert decoded == {
        "kind": "SelfSubjectAccessReview",
        "apiVersion": "authorization.k8s.io/v1",
        "metadata": {"creationTimestamp": None},
        "spec": {
            "resourceAttributes": {
                "namespace": "team",
                "verb": "create",
                "group": "apps",
                "resource": "deployments",
                "subresource": "scale",
            }
        },
        "status": {"allowed": False},
    }


def test_auth_can_i_non_resource(server: FakeAPIServer, tmp_path: Path) -> None:
    _, decoded = _run(server, tmp_path, ["auth", "can-i", "get", "/logs"])
    assert decoded["spec"] == {"nonResourceAttributes": {"path": "/logs", "verb": "get"}}


def test_auth_whoami(server: FakeAPIServer, tmp_path: Path) -> None:
    path, decoded = _run(server, tmp_path, ["auth", "whoami"])
    assert path == "/apis/authentication.k8s.io/v1/selfsubjectreviews"
    assert decoded == {
        "kind": "SelfSubjectReview",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"creationTimestamp": None},
        "status": {"userInfo": {}},
    }


def test_autoscale_v2_from_kubectl_133(server: FakeAPIServer, tmp_path: Path) -> None:
    # kubectl 1.32 sends autoscaling/v1; 1.33 (installed beside it) sends autoscaling/v2.
    kubectl_133 = versioned_kubectl(33)
    args = ["autoscale", "deployment", "web", "--min=1", "--max=4", "--cpu-percent=70"]
    dry = server.kubectl(tmp_path, *args, "--dry-run=client", "-o", "json", binary=kubectl_133)
    assert dry.returncode == 0, dry.stderr
    expected = json.loads(dry.stdout)

    path, decoded = _run(server, tmp_path, args, binary=kubectl_133)

    assert path == "/apis/autoscaling/v2/namespaces/default/horizontalpodautoscalers"
    assert decoded == expected
    assert decoded["spec"]["metrics"] == [
        {
            "type": "Resource",
            "resource": {
                "name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": 70},
            },
        }
    ]
