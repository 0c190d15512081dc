"""ServiceAccount admission seen through kubectl: new pods run as `default`, mount the
kube-api-access projected volume unless they opt out, and may not name a missing account."""

from __future__ import annotations

import re

import yaml

from tests.e2e.conftest import Kubectl

MOUNT_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
NAME = re.compile(r"kube-api-access-[bcdfghjklmnpqrstvwxz2456789]{5}")

# `kubectl get -o yaml` of the volume kube-apiserver adds (kubectl prints keys sorted).
VOLUME_YAML = """\
  - name: {name}
    projected:
      defaultMode: 420
      sources:
      - serviceAccountToken:
          expirationSeconds: 3607
          path: token
      - configMap:
          items:
          - key: ca.crt
            path: ca.crt
          name: kube-root-ca.crt
      - downwardAPI:
          items:
          - fieldRef:
              apiVersion: v1
              fieldPath: metadata.namespace
            path: namespace
"""


def pod(name: str, **spec: object) -> dict:
    spec.setdefault("containers", [{"name": "c", "image": "busybox"}])
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


def token_volumes(p: dict) -> list[dict]:
    return [v for v in p["spec"].get("volumes") or [] if NAME.fullmatch(v["name"])]


def test_run_gets_default_account_and_api_access_volume(k: Kubectl) -> None:
    # The namespace was created a moment ago: its `default` account may still be on its way.
    assert k("run", "web", "--image=busybox").stdout == "pod/web created\n"
    text = k("get", "pod", "web", "-o", "yaml").stdout
    p = yaml.safe_load(text)
    spec = p["spec"]
    assert spec["serviceAccountName"] == "default"
    assert spec["serviceAccount"] == "default"
    [volume] = spec["volumes"]
    name = volume["name"]
    assert NAME.fullmatch(name)
    assert VOLUME_YAML.format(name=name) in text
    assert spec["containers"][0]["volumeMounts"] == [
        {"mountPath": MOUNT_PATH, "name": name, "readOnly": True}]
    described = k("describe", "pod", "web").stdout
    assert f"{MOUNT_PATH} from {name} (ro)" in described


def test_every_container_mounts_the_same_volume(k: Kubectl) -> None:
    k.create(pod("multi",
                 initContainers=[{"name": "init", "image": "busybox"}],
                 containers=[{"name": "a", "image": "busybox"},
                             {"name": "b", "image": "busybox",
                              "volumeMounts": [{"name": "own", "mountPath": MOUNT_PATH}]}],
                 volumes=[{"name": "own", "emptyDir": {}}]))
    p = k.json("pod", "multi")
    [volume] = token_volumes(p)
    mount = {"mountPath": MOUNT_PATH, "name": volume["name"], "readOnly": True}
    assert p["spec"]["initContainers"][0]["volumeMounts"] == [mount]
    assert p["spec"]["containers"][0]["volumeMounts"] == [mount]
    assert p["spec"]["containers"][1]["volumeMounts"] == [
        {"mountPath": MOUNT_PATH, "name": "own"}]
    assert [v["name"] for v in p["spec"]["volumes"]] == ["own", volume["name"]]


def test_automount_false_on_the_pod_or_its_account(k: Kubectl) -> None:
    k.create(pod("optout", automountServiceAccountToken=False))
    p = k.json("pod", "optout")
    assert p["spec"]["serviceAccountName"] == "default"
    assert "volumes" not in p["spec"]
    assert "volumeMounts" not in p["spec"]["containers"][0]

    k.create({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "quiet"},
              "automountServiceAccountToken": False})
    k.create(pod("quiet-pod", serviceAccountName="quiet"))
    p = k.json("pod", "quiet-pod")
    assert (p["spec"]["serviceAccountName"], p["spec"]["serviceAccount"]) == ("quiet", "quiet")
    assert "volumes" not in p["spec"]
    # The pod's own preference wins over its account's.
    k.create(pod("loud-pod", serviceAccountName="quiet", automountServiceAccountToken=True))
    assert len(token_volumes(k.json("pod", "loud-pod"))) == 1


def test_pod_naming_a_missing_account_is_forbidden(k: Kubectl) -> None:
    proc = k.fails("run", "orphan", "--image=busybox",
                   '--overrides={"spec": {"serviceAccountName": "nope"}}')
    assert proc.stderr == (
        'Error from server (Forbidden): pods "orphan" is forbidden: error looking up service '
        f'account {k.ns}/nope: serviceaccount "nope" not found\n')
    assert k.fails("get", "pod", "orphan").stderr == \
        'Error from server (NotFound): pods "orphan" not found\n'

    generated = pod("", serviceAccountName="nope")
    generated["metadata"] = {"generateName": "gen-"}
    proc = k.fails("create", "-f", "-", input=yaml.safe_dump(generated))
    assert proc.stderr == (
        'Error from server (Forbidden): error when creating "STDIN": pods "gen-" is forbidden: '
        f'error looking up service account {k.ns}/nope: serviceaccount "nope" not found\n')

    k("create", "serviceaccount", "nope")
    k("run", "orphan", "--image=busybox", '--overrides={"spec": {"serviceAccountName": "nope"}}')
    assert k.json("pod", "orphan")["spec"]["serviceAccountName"] == "nope"


def test_pull_secrets_are_inherited_from_the_account(k: Kubectl) -> None:
    k.create({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "puller"},
              "imagePullSecrets": [{"name": "registry-a"}]})
    k.create(pod("pulls", serviceAccountName="puller"))
    assert k.json("pod", "pulls")["spec"]["imagePullSecrets"] == [{"name": "registry-a"}]


def test_server_dry_run_shows_the_volume_and_stores_nothing(k: Kubectl) -> None:
    p = yaml.safe_load(k("run", "dry", "--image=busybox", "--dry-run=server", "-o", "yaml").stdout)
    assert len(token_volumes(p)) == 1
    assert k.fails("get", "pod", "dry").returncode == 1


def test_mirror_pods_are_left_alone(k: Kubectl) -> None:
    mirror = pod("static-node1")
    mirror["metadata"]["annotations"] = {"kubernetes.io/config.mirror": "abc"}
    k.create(mirror)
    p = k.json("pod", "static-node1")
    assert "serviceAccountName" not in p["spec"] and "serviceAccount" not in p["spec"]
    assert "volumes" not in p["spec"]

    named = pod("static-node2", serviceAccountName="default")
    named["metadata"]["annotations"] = {"kubernetes.io/config.mirror": "abc"}
    assert k.fails("create", "-f", "-", input=yaml.safe_dump(named)).stderr == (
        'Error from server (Forbidden): error when creating "STDIN": pods "static-node2" is '
        "forbidden: a mirror pod may not reference service accounts\n")
