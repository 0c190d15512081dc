"""Strategic merge patch against a realistic Deployment, using the patches kubectl sends."""

import copy
import json

import pytest

from pocketkube.api import schema
from pocketkube.api.errors import StatusError
from pocketkube.api.patch.strategic import strategic_merge

DEPLOYMENT = schema.for_kind("apps", "v1", "Deployment")
POD = schema.for_kind("", "v1", "Pod")


def deployment() -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "web",
            "namespace": "default",
            "uid": "0b1c",
            "resourceVersion": "42",
            "labels": {"app": "web", "tier": "frontend"},
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{old}\n"},
            "finalizers": ["example.com/a", "example.com/b"],
        },
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"},
            },
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {
                            "name": "a",
                            "image": "nginx:1.25",
                            "env": [{"name": "X", "value": "1"}, {"name": "Y", "value": "2"}],
                            "ports": [
                                {"containerPort": 80, "protocol": "TCP"},
                                {"containerPort": 81, "protocol": "TCP"},
                            ],
                            "imagePullPolicy": "IfNotPresent",
                        },
                        {"name": "b", "image": "busybox", "command": ["sleep", "3600"]},
                    ],
                    "restartPolicy": "Always",
                    "dnsPolicy": "ClusterFirst",
                },
            },
        },
        "status": {"replicas": 2},
    }


# The patch kubectl 1.32 sent for `kubectl apply` after the manifest dropped finalizer b, label
# tier, env X, port 81 and container b, and switched the strategy to Recreate.
KUBECTL_APPLY_PATCH = {
    "metadata": {
        "$deleteFromPrimitiveList/finalizers": ["example.com/b"],
        "$setElementOrder/finalizers": ["example.com/a"],
        "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{new}\n"},
        "labels": {"tier": None},
    },
    "spec": {
        "strategy": {"$retainKeys": ["type"], "rollingUpdate": None, "type": "Recreate"},
        "template": {
            "spec": {
                "$setElementOrder/containers": [{"name": "a"}],
                "containers": [
                    {
                        "$setElementOrder/env": [{"name": "Y"}],
                        "$setElementOrder/ports": [{"containerPort": 80}],
                        "env": [{"$patch": "delete", "name": "X"}],
                        "name": "a",
                        "ports": [{"$patch": "delete", "containerPort": 81}],
                    },
                    {"$patch": "delete", "name": "b"},
                ],
            }
        },
    },
}


def test_kubectl_client_side_apply_patch():
    original = deployment()
    patch = copy.deepcopy(KUBECTL_APPLY_PATCH)
    result = strategic_merge(original, patch, DEPLOYMENT)

    expected = deployment()
    expected["metadata"]["finalizers"] = ["example.com/a"]
    expected["metadata"]["labels"] = {"app": "web"}
    expected["metadata"]["annotations"] = {
        "kubectl.kubernetes.io/last-applied-configuration": "{new}\n"
    }
    expected["spec"]["strategy"] = {"type": "Recreate"}
    expected["spec"]["template"]["spec"]["containers"] = [
        {
            "name": "a",
            "image": "nginx:1.25",
            "env": [{"name": "Y", "value": "2"}],
            "ports": [{"containerPort": 80, "protocol": "TCP"}],
            "imagePullPolicy": "IfNotPresent",
        }
    ]
    assert result == expected
    # Neither input was touched.
    assert original == deployment()
    assert patch == KUBECTL_APPLY_PATCH


def test_kubectl_image_change_patch():
    patch = {
        "spec": {
            "template": {
                "spec": {
                    "$setElementOrder/containers": [{"name": "a"}, {"name": "b"}],
                    "containers": [{"image": "nginx:1.26", "name": "a"}],
                }
            }
        }
    }
    result = strategic_merge(deployment(), patch, DEPLOYMENT)
    containers = result["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["a", "b"]
    assert containers[0]["image"] == "nginx:1.26"
    assert containers[0]["env"] == [{"name": "X", "value": "1"}, {"name": "Y", "value": "2"}]
    assert containers[1] == deployment()["spec"]["template"]["spec"]["containers"][1]


def test_set_element_order_reorders_and_adds():
    patch = {
        "spec": {
            "template": {
                "spec": {
                    "$setElementOrder/containers": [{"name": "c"}, {"name": "b"}, {"name": "a"}],
                    "containers": [{"name": "c", "image": "redis"}],
                }
            }
        }
    }
    result = strategic_merge(deployment(), patch, DEPLOYMENT)
    names = [c["name"] for c in result["spec"]["template"]["spec"]["containers"]]
    assert names == ["c", "b", "a"]


def test_new_list_item_without_order_goes_first_like_kube():
    # mergeSortedSlice puts patch items before server-only items it cannot place.
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "redis"}]}}}}
    result = strategic_merge(deployment(), patch, DEPLOYMENT)
    names = [c["name"] for c in result["spec"]["template"]["spec"]["containers"]]
    assert names == ["c", "a", "b"]


def test_primitive_merge_list_union():
    patch = {"metadata": {"finalizers": ["example.com/b", "example.com/c"]}}
    result = strategic_merge(deployment(), patch, DEPLOYMENT)
    assert result["metadata"]["finalizers"] == ["example.com/a", "example.com/b", "example.com/c"]
    # An item the live order cannot place goes before the server-only items (mergeSortedSlice).
    result = strategic_merge(deployment(), {"metadata": {"finalizers": ["example.com/c"]}}, DEPLOYMENT)
    assert result["metadata"]["finalizers"] == ["example.com/c", "example.com/a", "example.com/b"]

    ordered = {
        "metadata": {
            "$setElementOrder/finalizers": ["example.com/a", "example.com/b", "example.com/c"],
            "finalizers": ["example.com/c"],
        }
    }
    result = strategic_merge(deployment(), ordered, DEPLOYMENT)
    assert result["metadata"]["finalizers"] == ["example.com/a", "example.com/b", "example.com/c"]


def test_list_without_merge_strategy_is_replaced():
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "b", "command": ["true"]}]}}}}
    result = strategic_merge(deployment(), patch, DEPLOYMENT)
    b = result["spec"]["template"]["spec"]["containers"][1]
    assert b == {"name": "b", "image": "busybox", "command": ["true"]}


def test_list_replace_directive():
    patch = {
        "spec": {
            "template": {
                "spec": {"containers": [{"name": "z", "image": "z"}, {"$patch": "replace"}]}
            }
        }
    }
    result = strategic_merge(deployment(), patch, DEPLOYMENT)
    assert result["spec"]["template"]["spec"]["containers"] == [{"name": "z", "image": "z"}]


def test_map_directives_and_nulls():
    result = strategic_merge(
        deployment(), {"metadata": {"labels": {"$patch": "replace", "x": "y"}}}, DEPLOYMENT
    )
    assert result["metadata"]["labels"] == {"x": "y"}
    result = strategic_merge(deployment(), {"metadata": {"labels": {"$patch": "delete"}}}, DEPLOYMENT)
    assert result["metadata"]["labels"] == {}
    result = strategic_merge(deployment(), {"spec": {"replicas": None}, "x": None}, DEPLOYMENT)
    assert "replicas" not in result["spec"]
    result = strategic_merge(deployment(), {"metadata": {"labels": {"new": "1"}}}, DEPLOYMENT)
    assert result["metadata"]["labels"] == {"app": "web", "tier": "frontend", "new": "1"}


def test_new_values_are_stored_without_nulls_or_directives():
    patch = {"spec": {"paused": True, "minReadySeconds": 5, "revisionHistoryLimit": None,
                      "extra": {"a": None, "b": 1, "$retainKeys": ["b"]}}}
    result = strategic_merge(deployment(), patch, DEPLOYMENT)
    assert result["spec"]["paused"] is True
    assert "revisionHistoryLimit" not in result["spec"]
    assert result["spec"]["extra"] == {"b": 1}


def test_without_schema_maps_merge_and_lists_replace():
    original = {"spec": {"a": {"x": 1, "y": 2}, "l": [1, 2]}}
    result = strategic_merge(original, {"spec": {"a": {"y": None, "z": 3}, "l": [3]}}, None)
    assert result == {"spec": {"a": {"x": 1, "z": 3}, "l": [3]}}


def test_env_merge_by_name_with_pod_schema():
    pod = {"spec": {"containers": [{"name": "c", "env": [{"name": "A", "value": "1"}]}]}}
    patch = {"spec": {"containers": [{"name": "c", "env": [{"name": "A", "value": "2"},
                                                         {"name": "B", "value": "3"}]}]}}
    result = strategic_merge(pod, patch, POD)
    assert result["spec"]["containers"][0]["env"] == [
        {"name": "A", "value": "2"}, {"name": "B", "value": "3"},
    ]


def _error(patch: object) -> StatusError:
    with pytest.raises(StatusError) as info:
        strategic_merge(deployment(), patch, DEPLOYMENT)  # type: ignore[arg-type]
    return info.value


def test_missing_merge_key_is_bad_request():
    err = _error({"spec": {"template": {"spec": {"containers": [{"image": "x"}]}}}})
    assert err.code == 400 and err.reason == "BadRequest"
    assert err.message == "map: map[image:x] does not contain declared merge key: name"


def test_unknown_patch_directive():
    err = _error({"metadata": {"labels": {"$patch": "explode"}}})
    assert (err.code, err.message) == (400, "unknown patch type: explode in map: map[$patch:explode]")
    err = _error({"spec": {"template": {"spec": {"containers": [{"$patch": "merge", "name": "a"}]}}}})
    assert err.message == "merging lists cannot yet be specified in the patch"


def test_bad_directive_formats():
    assert _error({"spec": {"strategy": {"$retainKeys": "type"}}}).message == (
        "invalid patch format of retainKeys"
    )
    assert _error({"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": {}}}}).code == 400
    err = _error({"metadata": {"$setElementOrder/finalizers": "a"}})
    assert err.message == "expected a []interface {}, but received a string"
    err = _error({"metadata": {"$deleteFromPrimitiveListfinalizers": ["a"]}})
    assert err.message == "invalid patch format of primitive list"
    err = _error({"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "a"}],
        "containers": [{"name": "b", "image": "x"}, {"name": "a", "image": "y"}],
    }}}})
    assert err.code == 400 and err.message.startswith("The order in patch list:")


def test_mixed_element_types_and_lists_of_lists():
    err = _error({"metadata": {"finalizers": [1, "a"]}})
    assert err.code == 400
    assert err.message == "list element types are not identical: [[example.com/a example.com/b] [1 a]]"
    original = deployment()
    original["metadata"]["finalizers"] = []
    with pytest.raises(StatusError) as info:
        strategic_merge(original, {"metadata": {"finalizers": [["a"]]}}, DEPLOYMENT)
    assert (info.value.code, info.value.reason) == (422, "Invalid")


def test_non_object_patch():
    err = _error([1, 2])
    assert err.code == 400
    assert "cannot unmarshal array" in err.message


def test_result_does_not_alias_original():
    original = deployment()
    result = strategic_merge(original, {"spec": {"replicas": 3}}, DEPLOYMENT)
    result["spec"]["template"]["spec"]["containers"][0]["image"] = "changed"
    assert json.dumps(original) == json.dumps(deployment())


def test_retain_keys_on_merge_list_items():
    pod = {"spec": {"volumes": [{"name": "v", "emptyDir": {}}, {"name": "w", "emptyDir": {}}]}}
    patch = {"spec": {"volumes": [
        {"$retainKeys": ["configMap", "name"], "configMap": {"name": "cm"}, "name": "v"},
    ]}}
    result = strategic_merge(pod, patch, POD)
    assert result["spec"]["volumes"] == [
        {"name": "v", "configMap": {"name": "cm"}}, {"name": "w", "emptyDir": {}},
    ]
