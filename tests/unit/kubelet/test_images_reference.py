"""Image references as the kubelet and containerd spell them."""

from __future__ import annotations

import base64
import json

import pytest

from pocketkube.kubelet.images import pull, reference
from pocketkube.kubelet.runtime.interface import ImageError

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("busybox", "docker.io/library/busybox:latest"),
        ("nginx:1.27", "docker.io/library/nginx:1.27"),
        ("bitnami/redis", "docker.io/bitnami/redis:latest"),
        ("index.docker.io/library/busybox:1", "docker.io/library/busybox:1"),
        ("ghcr.io/owner/app", "ghcr.io/owner/app:latest"),
        ("localhost/app:v1", "localhost/app:v1"),
        ("localhost:5000/a/b:c", "localhost:5000/a/b:c"),
        ("127.0.0.1:1/nothing:1", "127.0.0.1:1/nothing:1"),
        (f"busybox@{DIGEST}", f"docker.io/library/busybox@{DIGEST}"),
        # containerd drops the tag of a reference that also has a digest
        (f"busybox:1.36@{DIGEST}", f"docker.io/library/busybox@{DIGEST}"),
    ],
)
def test_normalize(ref: str, expected: str) -> None:
    assert reference.normalize(ref) == expected


@pytest.mark.parametrize(
    ("ref", "reason"),
    [
        (
            "busyBOX",
            "invalid reference format: repository name (library/busyBOX) must be lowercase",
        ),
        ("x//y", "invalid reference format"),
        ("", "repository name must have at least one component"),
        (
            "a" * 64,
            f"invalid repository name ({'a' * 64}), cannot specify 64-byte hexadecimal strings",
        ),
        ("busybox@sha256:abc", "invalid reference format"),
        ("busybox@sha256:" + "A" * 64, "invalid checksum digest format"),
        ("busybox:-tag", "invalid reference format"),
    ],
)
def test_invalid_names_carry_the_kubelet_message(ref: str, reason: str) -> None:
    with pytest.raises(ImageError) as caught:
        reference.normalize(ref)
    assert caught.value.reason == "InvalidImageName"
    assert caught.value.message == (
        f'Failed to apply default image tag "{ref}": couldn\'t parse image name "{ref}": {reason}'
    )


def test_default_tag_in_the_kubelets_spelling() -> None:
    assert reference.with_default_tag("busybox") == "busybox:latest"
    assert reference.with_default_tag("busybox:1") == "busybox:1"
    assert reference.with_default_tag(f"busybox@{DIGEST}") == f"busybox@{DIGEST}"


def test_familiar_and_ids() -> None:
    assert reference.familiar("docker.io/library/busybox:latest") == (
        "docker.io/library/busybox",
        "latest",
    )
    assert reference.familiar(f"ghcr.io/a/b@{DIGEST}") == ("ghcr.io/a/b", "<none>")
    assert reference.is_image_id(DIGEST)
    assert reference.is_image_id("ab" * 32)
    assert not reference.is_image_id("busybox")


def _secret(auths: dict) -> dict:
    raw = base64.b64encode(json.dumps({"auths": auths}).encode()).decode()
    return {"type": "kubernetes.io/dockerconfigjson", "data": {".dockerconfigjson": raw}}


def _auth(user: str, password: str) -> dict:
    return {"auth": base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_pull_secret_matching() -> None:
    secrets = [
        _secret(
            {
                "https://index.docker.io/v1/": _auth("hub", "p1"),
                "registry.example.com": {"username": "plain", "password": "p2"},
                "registry.example.com/team": _auth("team", "p3"),
                "*.corp.example": _auth("glob", "p4"),
                "localhost:5000": _auth("local", "p5"),
            }
        )
    ]
    assert pull.credentials("docker.io/library/busybox:latest", secrets) == [("hub", "p1")]
    assert pull.credentials("registry.example.com/team/app:1", secrets) == [
        ("team", "p3"),
        ("plain", "p2"),
    ]
    assert pull.credentials("registry.example.com/other/app:1", secrets) == [("plain", "p2")]
    assert pull.credentials("eu.corp.example/app:1", secrets) == [("glob", "p4")]
    assert pull.credentials("a.eu.corp.example/app:1", secrets) == []
    assert pull.credentials("localhost:5000/app:1", secrets) == [("local", "p5")]
    assert pull.credentials("localhost/app:1", secrets) == []
    opaque = {"type": "Opaque", "data": {".dockerconfigjson": "e30="}}
    assert pull.credentials("docker.io/library/busybox:latest", [opaque]) == []


def test_skopeo_error_line() -> None:
    stderr = (
        b'time="2026-01-01T00:00:00Z" level=fatal msg="initializing source '
        b"docker://127.0.0.1:1/nothing:1: pinging container registry 127.0.0.1:1: "
        b'Get \\"http://127.0.0.1:1/v2/\\": dial tcp 127.0.0.1:1: connect: connection refused"\n'
    )
    assert pull.last_error(stderr, "127.0.0.1:1/nothing:1") == (
        'pinging container registry 127.0.0.1:1: Get "http://127.0.0.1:1/v2/": '
        "dial tcp 127.0.0.1:1: connect: connection refused"
    )
