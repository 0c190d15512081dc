"""Changing objects with kubectl: describe, label, annotate, scale, set image, the three patch
types and replace (with optimistic concurrency)."""

from __future__ import annotations

import json
import re

from tests.e2e.conftest import Kubectl
from tests.e2e.manifests import deployment, pod


def field(text: str, name: str) -> str:
    """The value of a `Name:   value` line in describe output."""
    m = re.search(rf"^{re.escape(name)}:[ \t]*(.*)$", text, re.M)
    assert m, f"no {name!r} line in:\n{text}"
    return m.group(1).strip()


def test_describe(k: Kubectl) -> None:
    k.apply(deployment("web", labels={"tier": "fe"}))
    out = k("describe", "deployment", "web").stdout
    assert field(out, "Name") == "web"
    assert field(out, "Namespace") == k.ns
    assert field(out, "Labels") == "app=web"
    assert "tier=fe" in out
    assert field(out, "Selector") == "app=web"
    assert field(out, "Replicas").startswith("1 desired")
    assert field(out, "StrategyType") == "RollingUpdate"
    assert field(out, "RollingUpdateStrategy") == "25% max unavailable, 25% max surge"
    assert re.search(r"^\s+Image:\s+nginx:1.25$", out, re.M)

    k.apply(pod("p1", {"app": "web"}))
    out = k("describe", "pod", "p1").stdout
    assert field(out, "Name") == "p1"
    assert field(out, "Namespace") == k.ns
    assert field(out, "Labels") == "app=web"
    assert field(out, "Status") == "Pending"
    assert re.search(r"^\s+Image:\s+busybox$", out, re.M)

    k("expose", "deployment", "web", "--port=80", "--target-port=8080")
    out = k("describe", "service", "web").stdout
    assert field(out, "Name") == "web"
    assert field(out, "Namespace") == k.ns
    assert field(out, "Selector") == "app=web"
    assert field(out, "Type") == "ClusterIP"
    assert re.fullmatch(r"10\.\d+\.\d+\.\d+", field(out, "IP"))
    assert field(out, "Port") == "<unset>  80/TCP"
    assert field(out, "TargetPort") == "8080/TCP"

    out = k.cluster.kubectl("describe", "namespace", k.ns).stdout
    assert field(out, "Name") == k.ns
    assert field(out, "Labels") == f"kubernetes.io/metadata.name={k.ns}"
    assert field(out, "Status") == "Active"
    assert "No resource quota." in out
    assert "No LimitRange resource." in out


def test_label(k: Kubectl) -> None:
    k.apply(pod("p1"))
    assert k("label", "pod", "p1", "env=prod").stdout == "pod/p1 labeled\n"
    proc = k.fails("label", "pod", "p1", "env=dev")
    assert proc.stderr == "error: 'env' already has a value (prod), and --overwrite is false\n"
    assert k("label", "pod", "p1", "env=dev", "--overwrite").stdout == "pod/p1 labeled\n"
    assert k.json("pod", "p1")["metadata"]["labels"] == {"env": "dev"}
    assert k("label", "pod", "p1", "env-").stdout == "pod/p1 unlabeled\n"
    assert k.json("pod", "p1")["metadata"].get("labels", {}) == {}
    assert k("label", "pod", "p1", "env-").stdout == 'label "env" not found.\npod/p1 not labeled\n'


def test_annotate(k: Kubectl) -> None:
    k.apply(pod("p1"))
    assert k("annotate", "pod", "p1", "note=a").stdout == "pod/p1 annotated\n"
    proc = k.fails("annotate", "pod", "p1", "note=b")
    assert proc.stderr == ("error: --overwrite is false but found the following declared "
                           "annotation(s): 'note' already has a value (a)\n")
    k("annotate", "pod", "p1", "note=b", "--overwrite")
    assert k.json("pod", "p1")["metadata"]["annotations"]["note"] == "b"
    assert k("annotate", "pod", "p1", "note-").stdout == "pod/p1 annotated\n"
    assert "note" not in (k.json("pod", "p1")["metadata"].get("annotations") or {})


def test_scale(k: Kubectl) -> None:
    k.apply(deployment("web"))
    assert k("scale", "deployment", "web", "--replicas=3").stdout == \
        "deployment.apps/web scaled\n"
    assert k.json("deployment", "web")["spec"]["replicas"] == 3
    proc = k.fails("scale", "deployment", "web", "--current-replicas=2", "--replicas=4")
    assert proc.stderr == "error: Expected replicas to be 2, was 3\n"
    assert k("scale", "deployment", "web", "--current-replicas=3", "--replicas=4").stdout == \
        "deployment.apps/web scaled\n"
    assert k.json("deployment", "web")["spec"]["replicas"] == 4
    scale = json.loads(k.cluster.kubectl(
        "get", "--raw", f"/apis/apps/v1/namespaces/{k.ns}/deployments/web/scale").stdout)
    assert scale["kind"] == "Scale"
    assert scale["apiVersion"] == "autoscaling/v1"
    assert scale["spec"] == {"replicas": 4}
    assert scale["status"]["selector"] == "app=web"


def test_set_image(k: Kubectl) -> None:
    k.apply(deployment("web"))
    assert k("set", "image", "deployment/web", "app=nginx:1.26").stdout == \
        "deployment.apps/web image updated\n"
    d = k.json("deployment", "web")
    assert d["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.26"
    assert d["metadata"]["generation"] == 2


def test_patch_types(k: Kubectl) -> None:
    k.apply(deployment("web"))
    strategic = {"spec": {"template": {"spec": {"containers": [
        {"name": "app", "env": [{"name": "A", "value": "1"}]}]}}}}
    assert k("patch", "deployment", "web", "-p", json.dumps(strategic)).stdout == \
        "deployment.apps/web patched\n"
    c = k.json("deployment", "web")["spec"]["template"]["spec"]["containers"]
    assert len(c) == 1 and c[0]["image"] == "nginx:1.25"
    assert c[0]["env"] == [{"name": "A", "value": "1"}]

    # A merge patch replaces lists wholesale.
    merge = {"metadata": {"labels": {"merged": "yes"}},
             "spec": {"template": {"spec": {"containers": [{"name": "other",
                                                             "image": "busybox"}]}}}}
    assert k("patch", "deployment", "web", "--type=merge", "-p", json.dumps(merge)).stdout == \
        "deployment.apps/web patched\n"
    d = k.json("deployment", "web")
    assert d["metadata"]["labels"] == {"app": "web", "merged": "yes"}
    assert [c["name"] for c in d["spec"]["template"]["spec"]["containers"]] == ["other"]

    ops = [{"op": "replace", "path": "/spec/replicas", "value": 2},
           {"op": "add", "path": "/metadata/annotations", "value": {"j": "1"}}]
    assert k("patch", "deployment", "web", "--type=json", "-p", json.dumps(ops)).stdout == \
        "deployment.apps/web patched\n"
    d = k.json("deployment", "web")
    assert d["spec"]["replicas"] == 2
    # The op replaced every annotation (last-applied is gone); the Deployment controller may
    # have written its revision annotation back since.
    annotations = d["metadata"]["annotations"]
    assert annotations["j"] == "1"
    assert set(annotations) <= {"j", "deployment.kubernetes.io/revision"}

    assert k("patch", "deployment", "web", "--type=merge", "-p",
             '{"spec":{"replicas":2}}').stdout == "deployment.apps/web patched (no change)\n"
    proc = k.fails("patch", "deployment", "web", "--type=json", "-p",
                   '[{"op":"test","path":"/spec/replicas","value":9}]')
    # kube answers a failed operation with the generic 422 (NewGenericServerResponse).
    assert proc.stderr == ("The request is invalid: the server rejected our request due to an "
                           "error in our request\n")


def test_replace_and_stale_resource_version(k: Kubectl) -> None:
    # A ConfigMap: no controller writes it, so only this test moves its resourceVersion.
    k.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "web"},
             "data": {"replicas": "1"}})
    d = k.json("configmap", "web")
    d["data"]["replicas"] = "2"
    assert k("replace", "-f", "-", input=json.dumps(d)).stdout == "configmap/web replaced\n"
    assert k.json("configmap", "web")["data"]["replicas"] == "2"

    # `d` still carries the resourceVersion from before the replace: now stale.
    d["data"]["replicas"] = "5"
    proc = k.fails("replace", "-f", "-", input=json.dumps(d))
    assert proc.stderr == (
        'Error from server (Conflict): error when replacing "STDIN": Operation cannot be '
        'fulfilled on configmaps "web": the object has been modified; please apply your '
        'changes to the latest version and try again\n')
    assert k.json("configmap", "web")["data"]["replicas"] == "2"
