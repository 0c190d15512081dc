"""Server-side apply and managedFields tracking."""

import copy
import json

import pytest

from pocketkube.api import schema
from pocketkube.api.errors import StatusError
from pocketkube.api.patch.apply import server_side_apply, track_update
from pocketkube.api.patch.fieldpath import from_fields_v1, make_path, path_string, to_fields_v1
from pocketkube.api.patch.typed import fields_of

DEPLOY = schema.for_kind("apps", "v1", "Deployment")
POD = schema.for_kind("", "v1", "Pod")
T0, T1, T2 = "2024-05-01T10:00:00Z", "2024-05-01T10:01:00Z", "2024-05-01T10:02:00Z"


def config(replicas: int | None = 2, image: str = "nginx:1.25", tier: bool = True) -> dict:
    labels = {"app": "web", "tier": "fe"} if tier else {"app": "web"}
    spec: dict = {
        "selector": {"matchLabels": {"app": "web"}},
        "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{
                "name": "nginx", "image": image, "ports": [{"containerPort": 80}],
                "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
            }]},
        },
    }
    if replicas is not None:
        spec["replicas"] = replicas
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "labels": labels}, "spec": spec}


def apply(live, cfg, manager="kubectl", force=False, now=T0):
    return server_side_apply(live, cfg, manager, DEPLOY, force, "apps/v1", now)


def entries(obj) -> dict:
    return {(e["manager"], e["operation"]): e for e in obj["metadata"]["managedFields"]}


def owned(obj, manager, operation="Apply") -> set[str]:
    return {path_string(p) for p in from_fields_v1(entries(obj)[(manager, operation)]["fieldsV1"])}


def test_apply_creates_with_kube_shaped_managed_fields():
    obj = apply(None, config())
    assert obj["spec"]["replicas"] == 2
    assert obj["metadata"]["labels"] == {"app": "web", "tier": "fe"}
    [entry] = obj["metadata"]["managedFields"]
    assert {k: v for k, v in entry.items() if k != "fieldsV1"} == {
        "manager": "kubectl", "operation": "Apply", "apiVersion": "apps/v1", "time": T0,
        "fieldsType": "FieldsV1",
    }
    fields = entry["fieldsV1"]
    assert list(fields) == ["f:metadata", "f:spec"]
    assert fields["f:metadata"] == {"f:labels": {"f:app": {}, "f:tier": {}}}
    container = fields["f:spec"]["f:template"]["f:spec"]["f:containers"]['k:{"name":"nginx"}']
    assert container == {
        ".": {}, "f:env": {
            'k:{"name":"A"}': {".": {}, "f:name": {}, "f:value": {}},
            'k:{"name":"B"}': {".": {}, "f:name": {}, "f:value": {}},
        },
        "f:image": {}, "f:name": {},
        "f:ports": {'k:{"containerPort":80,"protocol":"TCP"}': {".": {}, "f:containerPort": {}}},
    }
    assert fields["f:spec"]["f:selector"] == {}


def test_reapply_without_fields_removes_them():
    live = apply(None, config())
    cfg = config(replicas=None, tier=False)
    cfg["spec"]["template"]["spec"]["containers"][0]["env"] = [{"name": "B", "value": "2"}]
    obj = apply(live, cfg, now=T1)
    assert "replicas" not in obj["spec"]
    assert obj["metadata"]["labels"] == {"app": "web"}
    assert obj["spec"]["template"]["spec"]["containers"][0]["env"] == [{"name": "B", "value": "2"}]
    assert ".spec.replicas" not in owned(obj, "kubectl")
    assert entries(obj)[("kubectl", "Apply")]["time"] == T1


def test_removed_field_survives_when_another_manager_owns_it():
    live = apply(None, config(), manager="a")
    live = apply(live, config(), manager="b")  # same values: shared ownership
    obj = apply(live, config(replicas=None), manager="a", now=T1)
    assert obj["spec"]["replicas"] == 2
    assert ".spec.replicas" in owned(obj, "b")
    assert ".spec.replicas" not in owned(obj, "a")


def test_two_appliers_conflict_and_force_takes_ownership():
    live = apply(None, config(replicas=2), manager="alice")
    with pytest.raises(StatusError) as info:
        apply(live, config(replicas=3), manager="bob")
    err = info.value
    assert (err.code, err.reason) == (409, "Conflict")
    assert err.message == 'Apply failed with 1 conflict: conflict with "alice": .spec.replicas'
    assert err.status()["details"] == {"causes": [{
        "reason": "FieldManagerConflict", "message": 'conflict with "alice"',
        "field": ".spec.replicas",
    }]}

    obj = apply(live, config(replicas=3), manager="bob", force=True, now=T1)
    assert obj["spec"]["replicas"] == 3
    assert ".spec.replicas" in owned(obj, "bob")
    assert ".spec.replicas" not in owned(obj, "alice")
    assert ".spec.template.spec.containers[name=\"nginx\"].image" in owned(obj, "alice")
    # Alice no longer owns replicas, so dropping it from her config leaves bob's value alone.
    after = apply(obj, config(replicas=None), manager="alice", now=T2)
    assert after["spec"]["replicas"] == 3


def test_client_side_apply_then_server_side_apply_conflicts():
    created = track_update(None, config(replicas=2), "kubectl-client-side-apply", "Update",
                           DEPLOY, "apps/v1", T0)
    assert [(e["manager"], e["operation"]) for e in created["metadata"]["managedFields"]] == [
        ("kubectl-client-side-apply", "Update")
    ]
    with pytest.raises(StatusError) as info:
        apply(created, config(replicas=3))
    assert info.value.message == (
        'Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" using apps/v1: '
        ".spec.replicas"
    )
    with pytest.raises(StatusError) as info:
        apply(created, config(replicas=3, image="nginx:1.26"))
    assert info.value.message == (
        "Apply failed with 2 conflicts: conflicts with \"kubectl-client-side-apply\" using "
        "apps/v1:\n- .spec.replicas\n- .spec.template.spec.containers[name=\"nginx\"].image"
    )
    assert [c["field"] for c in info.value.details["causes"]] == [
        ".spec.replicas", '.spec.template.spec.containers[name="nginx"].image',
    ]


def test_identical_values_are_shared_without_conflict():
    created = track_update(None, config(), "kubectl-client-side-apply", "Update", DEPLOY,
                           "apps/v1", T0)
    obj = apply(created, config(), now=T1)
    assert obj["spec"] == created["spec"]
    assert ".spec.replicas" in owned(obj, "kubectl")
    assert ".spec.replicas" in owned(obj, "kubectl-client-side-apply", "Update")
    # Nothing changed, so the applier's entry carries no time yet.
    assert "time" not in entries(obj)[("kubectl", "Apply")]


def test_update_takes_fields_from_appliers():
    live = apply(None, config(replicas=2))
    scaled = copy.deepcopy(live)
    scaled["spec"]["replicas"] = 5
    obj = track_update(live, scaled, "kube-controller-manager", "Update", DEPLOY, "apps/v1", T1)
    assert owned(obj, "kube-controller-manager", "Update") == {".spec.replicas"}
    assert ".spec.replicas" not in owned(obj, "kubectl")
    # The applier may now apply its old value again only by force.
    with pytest.raises(StatusError):
        apply(obj, config(replicas=2), now=T2)
    assert apply(obj, config(replicas=5), now=T2)["spec"]["replicas"] == 5


def test_update_entries_merge_per_manager_and_drop_unchanged_writes():
    live = track_update(None, config(), "kubectl-create", "Update", DEPLOY, "apps/v1", T0)
    same = track_update(live, copy.deepcopy(live), "kubectl-edit", "Update", DEPLOY, "apps/v1", T1)
    assert [e["manager"] for e in same["metadata"]["managedFields"]] == ["kubectl-create"]
    step = copy.deepcopy(live)
    step["spec"]["paused"] = True
    step = track_update(live, step, "kubectl-edit", "Update", DEPLOY, "apps/v1", T1)
    step2 = copy.deepcopy(step)
    step2["spec"]["minReadySeconds"] = 3
    step2 = track_update(step, step2, "kubectl-edit", "Update", DEPLOY, "apps/v1", T2)
    assert owned(step2, "kubectl-edit", "Update") == {".spec.paused", ".spec.minReadySeconds"}
    assert entries(step2)[("kubectl-edit", "Update")]["time"] == T2
    assert len(step2["metadata"]["managedFields"]) == 2


def test_status_subresource_is_tracked_separately():
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
           "spec": {"containers": [{"name": "c", "image": "x"}]}}
    live = track_update(None, pod, "kubectl-run", "Update", POD, "v1", T0)
    new = copy.deepcopy(live)
    new["status"] = {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
    new["metadata"]["managedFields"] = []  # ignored on a subresource
    obj = track_update(live, new, "kubelet", "Update", POD, "v1", T1, subresource="status")
    status_entry = [e for e in obj["metadata"]["managedFields"] if e["manager"] == "kubelet"][0]
    assert status_entry["subresource"] == "status"
    assert list(status_entry) == ["manager", "operation", "apiVersion", "time", "fieldsType",
                                  "fieldsV1", "subresource"]
    assert status_entry["fieldsV1"]["f:status"]["f:conditions"] == {
        ".": {}, 'k:{"type":"Ready"}': {".": {}, "f:status": {}, "f:type": {}},
    }
    with pytest.raises(StatusError) as info:
        server_side_apply(obj, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                                "status": {"phase": "Failed"}}, "other", POD, False, "v1", T2)
    assert info.value.message == (
        'Apply failed with 1 conflict: conflict with "kubelet" with subresource "status" '
        "using v1: .status.phase"
    )


def test_untracked_object_gets_before_first_apply():
    live = config()
    live["metadata"]["uid"] = "u1"
    obj = apply(live, config(replicas=4), force=True)
    managers = {(e["manager"], e["operation"]) for e in obj["metadata"]["managedFields"]}
    assert managers == {("before-first-apply", "Update"), ("kubectl", "Apply")}
    assert ".spec.replicas" not in owned(obj, "before-first-apply", "Update")
    # An existing object without managedFields stays untracked by plain updates.
    assert "managedFields" not in track_update(live, config(), "x", "Update", DEPLOY, "apps/v1",
                                               T0)["metadata"]


def test_list_map_merge_keeps_other_managers_items():
    live = apply(None, config(), manager="a")
    other = copy.deepcopy(config())
    other["spec"]["template"]["spec"]["containers"] = [{"name": "sidecar", "image": "envoy"}]
    obj = apply(live, other, manager="b", now=T1)
    names = [c["name"] for c in obj["spec"]["template"]["spec"]["containers"]]
    assert names == ["nginx", "sidecar"]
    assert obj["spec"]["template"]["spec"]["containers"][0]["env"][0] == {"name": "A", "value": "1"}


def test_bad_apply_configurations():
    cfg = config()
    cfg["apiVersion"] = "apps/v1beta1"
    with pytest.raises(StatusError) as info:
        apply(None, cfg)
    assert (info.value.code, info.value.message) == (
        400, "invalid object type: apps/v1beta1, Kind=Deployment")
    cfg = config()
    cfg["metadata"]["managedFields"] = []
    with pytest.raises(StatusError) as info:
        apply(None, cfg)
    assert info.value.message == "metadata.managedFields must be nil"
    cfg = config()
    cfg["spec"]["template"]["spec"]["containers"].append({"name": "nginx", "image": "x"})
    with pytest.raises(StatusError) as info:
        apply(None, cfg)
    assert info.value.code == 400
    assert info.value.message == (
        '.spec.template.spec.containers: duplicate entries for key [name="nginx"]'
    )


def test_inputs_untouched_and_kubectl_last_applied_kept_in_step():
    live = track_update(None, config(), "kubectl-client-side-apply", "Update", DEPLOY,
                        "apps/v1", T0)
    live["metadata"]["annotations"] = {
        "kubectl.kubernetes.io/last-applied-configuration": "{}\n"}
    before = copy.deepcopy(live)
    cfg = config()
    obj = apply(live, cfg, now=T1)
    assert live == before and cfg == config()
    annotation = obj["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
    assert json.loads(annotation) == config() and annotation.endswith("\n")


def test_fields_v1_round_trip_of_kube_output():
    stored = {
        "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
        "f:spec": {
            "f:ports": {'k:{"port":80,"protocol":"TCP"}': {".": {}, "f:port": {}}},
            "f:finalizers": {'v:"a"': {}},
            "f:type": {},
        },
    }
    fs = from_fields_v1(stored)
    assert make_path("metadata", "labels") in fs
    assert make_path("metadata") not in fs
    assert to_fields_v1(fs) == stored
    assert {path_string(p) for p in fs} == {
        ".metadata.labels", ".metadata.labels.app",
        '.spec.ports[port=80,protocol="TCP"]', '.spec.ports[port=80,protocol="TCP"].port',
        '.spec.finalizers[="a"]', ".spec.type",
    }


def test_fields_of_sets_and_atomic_values():
    obj = {"metadata": {"finalizers": ["a", "b"], "labels": {}},
           "spec": {"template": {"spec": {"containers": [{"name": "c", "args": ["x"]}],
                                          "nodeSelector": {"k": "v"}},
                                 "metadata": {"annotations": {"k": "v"}}}}}
    paths = {path_string(p) for p in fields_of(obj, DEPLOY)}
    assert paths == {
        '.metadata.finalizers[="a"]', '.metadata.finalizers[="b"]', ".metadata.labels",
        '.spec.template.spec.containers[name="c"]', '.spec.template.spec.containers[name="c"].name',
        '.spec.template.spec.containers[name="c"].args', ".spec.template.spec.nodeSelector",  # x-kubernetes-map-type: atomic
        ".spec.template.metadata.annotations.k",
    }


def test_update_managers_are_capped_at_ten():
    obj = track_update(None, config(), "creator", "Update", DEPLOY, "apps/v1", T0)
    for i in range(12):
        new = copy.deepcopy(obj)
        new["metadata"]["labels"][f"l{i}"] = "x"
        obj = track_update(obj, new, f"writer-{i:02d}", "Update", DEPLOY, "apps/v1",
                           f"2024-05-01T11:{i:02d}:00Z")
    managers = [e["manager"] for e in obj["metadata"]["managedFields"]]
    assert len(managers) == 10
    assert "ancient-changes" in managers and "creator" not in managers
    ancient = owned(obj, "ancient-changes", "Update")
    assert ".spec.replicas" in ancient and ".metadata.labels.l0" in ancient
