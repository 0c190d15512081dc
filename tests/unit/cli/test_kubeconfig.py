"""Standalone kubeconfig, and merging into / removing from the user's kubeconfig."""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
from pathlib import Path

import pytest
import yaml

from pocketkube import kubeconfig as kc
from pocketkube.pki import PkiPaths, ensure_pki

OTHER = {
    "apiVersion": "v1",
    "kind": "Config",
    "preferences": {"colors": True},
    "clusters": [{"name": "prod", "cluster": {"server": "https://prod.example:6443"}}],
    "users": [{"name": "alice", "user": {"token": "secret-token"}}],
    "contexts": [
        {"name": "prod", "context": {"cluster": "prod", "user": "alice", "namespace": "web"}}
    ],
    "current-context": "prod",
    "extensions": [{"name": "tool", "extension": {"k": "v"}}],
}


@pytest.fixture(scope="module")
def paths(tmp_path_factory: pytest.TempPathFactory) -> PkiPaths:
    return ensure_pki(tmp_path_factory.mktemp("pki"), ["devbox"])


def _read(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def _named(doc: dict, section: str, name: str) -> dict:
    (entry,) = [e for e in doc[section] if e["name"] == name]
    return entry


def test_standalone_kubeconfig_embeds_credentials(tmp_path: Path, paths: PkiPaths) -> None:
    path = kc.write_kubeconfig(tmp_path / "kubeconfig", "https://127.0.0.1:6443", paths)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    doc = _read(path)
    assert doc["current-context"] == "pocketkube"
    cluster = _named(doc, "clusters", "pocketkube")["cluster"]
    assert cluster["server"] == "https://127.0.0.1:6443"
    assert base64.b64decode(cluster["certificate-authority-data"]) == paths.ca_cert.read_bytes()
    user = _named(doc, "users", "pocketkube")["user"]
    assert base64.b64decode(user["client-certificate-data"]) == paths.admin_cert.read_bytes()
    assert base64.b64decode(user["client-key-data"]) == paths.admin_key.read_bytes()
    assert _named(doc, "contexts", "pocketkube")["context"] == {
        "cluster": "pocketkube",
        "user": "pocketkube",
    }


def test_kubectl_reads_the_standalone_kubeconfig(tmp_path: Path, paths: PkiPaths) -> None:
    path = kc.write_kubeconfig(tmp_path / "kc", "https://127.0.0.1:7443", paths, context="dev")
    out = subprocess.run(
        ["kubectl", "config", "view", "--kubeconfig", str(path), "--minify", "-o", "json"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    view = json.loads(out)
    assert view["current-context"] == "dev"
    assert view["clusters"][0]["cluster"]["server"] == "https://127.0.0.1:7443"


def test_merge_preserves_other_entries(tmp_path: Path, paths: PkiPaths) -> None:
    target = tmp_path / "config"
    target.write_text(yaml.safe_dump(OTHER))
    kc.merge_into_user_kubeconfig("https://127.0.0.1:6443", paths, kubeconfig=target)
    doc = _read(target)
    assert doc["current-context"] == "pocketkube"
    for section in ("clusters", "users", "contexts"):
        assert OTHER[section][0] in doc[section]
        assert [e["name"] for e in doc[section]] == [OTHER[section][0]["name"], "pocketkube"]
    assert doc["preferences"] == {"colors": True}
    assert doc["extensions"] == OTHER["extensions"]
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_merge_again_replaces_instead_of_duplicating(tmp_path: Path, paths: PkiPaths) -> None:
    target = tmp_path / "config"
    kc.merge_into_user_kubeconfig("https://127.0.0.1:6443", paths, kubeconfig=target)
    kc.merge_into_user_kubeconfig("https://127.0.0.1:7443", paths, kubeconfig=target)
    doc = _read(target)
    assert [c["name"] for c in doc["clusters"]] == ["pocketkube"]
    assert doc["clusters"][0]["cluster"]["server"] == "https://127.0.0.1:7443"


def test_merge_uses_first_kubeconfig_path(
    tmp_path: Path, paths: PkiPaths, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = tmp_path / "a" / "config", tmp_path / "b" / "config"
    monkeypatch.setenv("KUBECONFIG", os.pathsep.join(["", str(first), str(second)]))
    assert kc.merge_into_user_kubeconfig("https://127.0.0.1:6443", paths) == first
    assert first.exists() and not second.exists()


def test_default_user_kubeconfig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert kc.user_kubeconfig_path() == tmp_path / ".kube" / "config"


def test_merge_writes_through_a_symlink(tmp_path: Path, paths: PkiPaths) -> None:
    real = tmp_path / "real-config"
    real.write_text(yaml.safe_dump(OTHER))
    link = tmp_path / "config"
    link.symlink_to(real)
    kc.merge_into_user_kubeconfig("https://127.0.0.1:6443", paths, kubeconfig=link)
    assert link.is_symlink()
    assert _read(real)["current-context"] == "pocketkube"


def test_remove_keeps_other_entries(tmp_path: Path, paths: PkiPaths) -> None:
    target = tmp_path / "config"
    target.write_text(yaml.safe_dump(OTHER))
    kc.merge_into_user_kubeconfig("https://127.0.0.1:6443", paths, "pocketkube-a", target)
    kc.merge_into_user_kubeconfig("https://127.0.0.1:7443", paths, "pocketkube-b", target)
    assert kc.remove_from_user_kubeconfig("pocketkube-b", target) is True
    doc = _read(target)
    for section in ("clusters", "users", "contexts"):
        assert [e["name"] for e in doc[section]] == [OTHER[section][0]["name"], "pocketkube-a"]
    assert doc["current-context"] == ""
    assert doc["extensions"] == OTHER["extensions"]
    assert kc.remove_from_user_kubeconfig("pocketkube-b", target) is False


def test_remove_keeps_current_context_of_another_cluster(tmp_path: Path, paths: PkiPaths) -> None:
    target = tmp_path / "config"
    kc.merge_into_user_kubeconfig("https://127.0.0.1:6443", paths, "pocketkube", target)
    doc = _read(target)
    doc["current-context"] = "elsewhere"
    target.write_text(yaml.safe_dump(doc))
    assert kc.remove_from_user_kubeconfig("pocketkube", target) is True
    assert _read(target)["current-context"] == "elsewhere"


def test_remove_from_missing_file(tmp_path: Path) -> None:
    assert kc.remove_from_user_kubeconfig("pocketkube", tmp_path / "absent") is False
    assert not (tmp_path / "absent").exists()


def test_context_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POCKETKUBE_HOME", str(tmp_path / "default"))
    assert kc.context_name(tmp_path / "default") == "pocketkube"
    one = kc.context_name(tmp_path / "x" / "Dev Cluster")
    two = kc.context_name(tmp_path / "y" / "Dev Cluster")
    assert one.startswith("pocketkube-dev-cluster-") and two.startswith("pocketkube-dev-cluster-")
    assert one != two
    assert kc.context_name(tmp_path / "x" / "Dev Cluster") == one


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("127.0.0.1", "https://127.0.0.1:6443"),
        ("0.0.0.0", "https://127.0.0.1:6443"),
        ("::", "https://[::1]:6443"),
        ("192.0.2.5", "https://192.0.2.5:6443"),
        ("fd00::2", "https://[fd00::2]:6443"),
    ],
)
def test_server_url(host: str, url: str) -> None:
    assert kc.server_url(host, 6443) == url


def test_rejects_a_file_that_is_not_a_kubeconfig(tmp_path: Path, paths: PkiPaths) -> None:
    target = tmp_path / "config"
    target.write_text("- just\n- a list\n")
    with pytest.raises(ValueError, match="not a kubeconfig"):
        kc.merge_into_user_kubeconfig("https://127.0.0.1:6443", paths, kubeconfig=target)
    assert target.read_text() == "- just\n- a list\n"
