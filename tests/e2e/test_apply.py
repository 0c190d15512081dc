"""kubectl apply: client-side (three-way strategic merge patch), server-side (field managers and
conflicts) and server dry-run."""

from __future__ import annotations

import json

from tests.e2e.conftest import Kubectl
from tests.e2e.manifests import deployment

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def rich_deployment(name: str) -> dict:
    """The manifest behind the patch captured in kubectl-wire.md §4."""
    d = deployment(name, labels={"tier": "web"})
    d["metadata"]["finalizers"] = ["example.com/a", "example.com/b"]
    d["spec"]["strategy"] = {"type": "RollingUpdate",
                             "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    d["spec"]["template"]["spec"]["containers"] = [
        {"name": "a", "image": "nginx:1.25",
         "env": [{"name": "X", "value": "1"}, {"name": "Y", "value": "2"}],
         "ports": [{"containerPort": 80}, {"containerPort": 81}]},
        {"name": "b", "image": "busybox:1.36", "command": ["sleep", "3600"]},
    ]
    return d


def test_apply_create_change_unchanged(k: Kubectl) -> None:
    d = rich_deployment("web")
    assert k.apply(d).stdout == "deployment.apps/web created\n"
    live = k.json("deployment", "web")
    applied = json.loads(live["metadata"]["annotations"][LAST_APPLIED])
    assert applied["metadata"]["finalizers"] == ["example.com/a", "example.com/b"]
    assert applied["metadata"]["namespace"] == k.ns

    # Remove a container, an env entry, a port, a finalizer and a label; switch to Recreate.
    d["metadata"]["finalizers"] = ["example.com/a"]
    del d["metadata"]["labels"]["tier"]
    d["spec"]["strategy"] = {"type": "Recreate"}
    a = d["spec"]["template"]["spec"]["containers"][0]
    a["env"] = [{"name": "Y", "value": "2"}]
    a["ports"] = [{"containerPort": 80}]
    d["spec"]["template"]["spec"]["containers"] = [a]
    assert k.apply(d).stdout == "deployment.apps/web configured\n"

    live = k.json("deployment", "web")
    assert live["metadata"]["finalizers"] == ["example.com/a"]
    assert live["metadata"]["labels"] == {"app": "web"}
    assert live["spec"]["strategy"] == {"type": "Recreate"}
    containers = live["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["a"]
    assert containers[0]["env"] == [{"name": "Y", "value": "2"}]
    assert containers[0]["ports"] == [{"containerPort": 80, "protocol": "TCP"}]
    assert json.loads(live["metadata"]["annotations"][LAST_APPLIED])["spec"]["strategy"] == {
        "type": "Recreate"}
    assert live["metadata"]["generation"] == 2

    assert k.apply(d).stdout == "deployment.apps/web unchanged\n"
    assert k.json("deployment", "web")["metadata"]["generation"] == 2

    # Let the namespace's objects go away normally later.
    k("patch", "deployment", "web", "--type=merge", "-p", '{"metadata":{"finalizers":null}}')


def test_apply_keeps_fields_set_by_others(k: Kubectl) -> None:
    d = deployment("keep")
    k.apply(d)
    k("annotate", "deployment", "keep", "note=set-by-hand")
    d["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:1.26"
    assert k.apply(d).stdout == "deployment.apps/keep configured\n"
    live = k.json("deployment", "keep")
    assert live["metadata"]["annotations"]["note"] == "set-by-hand"
    assert live["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.26"


def test_server_side_apply_and_conflicts(k: Kubectl) -> None:
    d = deployment("ssa", replicas=1)
    assert k.apply(d, "--server-side").stdout == "deployment.apps/ssa serverside-applied\n"
    live = k.json("deployment", "ssa")
    managers = {m["manager"]: m for m in live["metadata"]["managedFields"]}
    assert managers["kubectl"]["operation"] == "Apply"
    assert LAST_APPLIED not in (live["metadata"].get("annotations") or {})
    # Applying the same manifest again writes nothing (a ConfigMap: no controller touches it).
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa"}, "data": {"a": "1"}}
    k.apply(cm, "--server-side")
    rv = k.json("configmap", "ssa")["metadata"]["resourceVersion"]
    assert k.apply(cm, "--server-side").stdout == "configmap/ssa serverside-applied\n"
    assert k.json("configmap", "ssa")["metadata"]["resourceVersion"] == rv

    # A client-side-apply object: its manager owns spec.replicas.
    c = deployment("csa", replicas=1)
    k.apply(c)
    c["spec"]["replicas"] = 3
    proc = k.fails("apply", "--server-side", "-f", "-", input=_yaml(c))
    first = proc.stderr.splitlines()[0]
    assert first == ('error: Apply failed with 1 conflict: conflict with '
                     '"kubectl-client-side-apply" using apps/v1: .spec.replicas')
    assert "--force-conflicts" in proc.stderr
    assert k.json("deployment", "csa")["spec"]["replicas"] == 1

    out = k.apply(c, "--server-side", "--force-conflicts").stdout
    assert out == "deployment.apps/csa serverside-applied\n"
    live = k.json("deployment", "csa")
    assert live["spec"]["replicas"] == 3
    owners = {m["manager"]: json.dumps(m.get("fieldsV1", {})) for m in
              live["metadata"]["managedFields"]}
    assert '"f:replicas"' in owners["kubectl"]
    assert '"f:replicas"' not in owners.get("kubectl-client-side-apply", "")


def test_apply_dry_run_server_stores_nothing(k: Kubectl) -> None:
    d = deployment("dry")
    assert k.apply(d, "--dry-run=server").stdout == \
        "deployment.apps/dry created (server dry run)\n"
    assert k.apply(d, "--server-side", "--dry-run=server").stdout == \
        "deployment.apps/dry serverside-applied (server dry run)\n"
    proc = k.fails("get", "deployment", "dry")
    assert proc.stderr.strip() == 'Error from server (NotFound): deployments.apps "dry" not found'
    # On an existing object a dry-run change is reported but not stored.
    k.apply(d)
    d["spec"]["replicas"] = 5
    assert k.apply(d, "--dry-run=server").stdout == \
        "deployment.apps/dry configured (server dry run)\n"
    assert k.json("deployment", "dry")["spec"]["replicas"] == 1


def _yaml(doc: dict) -> str:
    from tests.e2e.conftest import to_yaml

    return to_yaml(doc)


def test_apply_v1_list(k: Kubectl) -> None:
    # kubectl validates a `kind: List` client-side against the server's OpenAPI v2 document.
    doc = {"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "l1"}, "data": {"a": "1"}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "l2"}, "data": {"b": "2"}},
    ]}
    assert k.apply(doc).stdout == "configmap/l1 created\nconfigmap/l2 created\n"
    assert k("get", "configmaps", "l1", "l2", "-o", "name").stdout == \
        "configmap/l1\nconfigmap/l2\n"
