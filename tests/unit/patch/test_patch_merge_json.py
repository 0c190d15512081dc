"""JSON merge patch (RFC 7386) and JSON patch (RFC 6902) with kube's error mapping."""

import pytest

from pocketkube.api.errors import StatusError
from pocketkube.api.patch.jsonpatch import json_patch
from pocketkube.api.patch.merge import merge_patch


def obj() -> dict:
    return {
        "metadata": {"name": "web", "labels": {"app": "web", "tier": "fe"}},
        "spec": {"replicas": 1, "template": {"spec": {"containers": [{"name": "a", "image": "x"}]}}},
    }


def test_merge_patch_label_and_scale():
    original = obj()
    result = merge_patch(original, {"metadata": {"labels": {"tier": None, "env": "prod"}}})
    assert result["metadata"]["labels"] == {"app": "web", "env": "prod"}
    assert original == obj()
    assert merge_patch(obj(), {"spec": {"replicas": 5}})["spec"]["replicas"] == 5


def test_merge_patch_replaces_lists_and_prunes_nulls():
    result = merge_patch(obj(), {"spec": {"template": {"spec": {"containers": [
        {"name": "b", "image": None}, None]}}}, "new": {"a": None, "b": [1, None]}})
    assert result["spec"]["template"]["spec"]["containers"] == [{"name": "b"}]
    assert result["new"] == {"b": [1]}
    # A scalar replaced by a map keeps only non-null keys; a map replaced by a list keeps it as is.
    assert merge_patch({"a": 1}, {"a": {"x": None, "y": 2}}) == {"a": {"y": 2}}
    assert merge_patch({"a": {"k": 1}}, {"a": [None, 1]}) == {"a": [None, 1]}


def test_merge_patch_rejects_non_objects():
    with pytest.raises(StatusError) as info:
        merge_patch(obj(), [1])
    assert info.value.code == 400
    assert info.value.message == (
        "error decoding patch: json: cannot unmarshal array into Go value of type "
        "map[string]interface {}"
    )
    with pytest.raises(StatusError) as info:
        merge_patch(obj(), None)
    assert (info.value.code, info.value.message) == (400, "Invalid JSON Patch")


def test_json_patch_rollout_undo_style():
    original = obj()
    ops = [
        {"op": "test", "path": "/spec/replicas", "value": 1},
        {"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "y"},
        {"op": "add", "path": "/metadata/labels/new", "value": "1"},
        {"op": "remove", "path": "/metadata/labels/tier"},
    ]
    result = json_patch(original, ops)
    assert result["spec"]["template"]["spec"]["containers"][0]["image"] == "y"
    assert result["metadata"]["labels"] == {"app": "web", "new": "1"}
    assert original == obj()


@pytest.mark.parametrize("ops", [
    [{"op": "test", "path": "/spec/replicas", "value": 2}],
    [{"op": "remove", "path": "/spec/missing"}],
    [{"op": "explode", "path": "/spec"}],
    [{"op": "add", "path": "/no/such/parent", "value": 1}],
    [{"op": "replace", "path": "", "value": [1]}],
])
def test_json_patch_failures_are_generic_invalid(ops):
    with pytest.raises(StatusError) as info:
        json_patch(obj(), ops)
    err = info.value
    assert (err.code, err.reason) == (422, "Invalid")
    assert err.message == "the server rejected our request due to an error in our request"
    assert err.status()["details"] == {}


def test_json_patch_malformed_body():
    with pytest.raises(StatusError) as info:
        json_patch(obj(), {"op": "add"})
    assert info.value.code == 400
    assert "cannot unmarshal object into Go value of type []handlers.jsonPatchOp" in info.value.message
    with pytest.raises(StatusError) as info:
        json_patch(obj(), ["add"])
    assert info.value.code == 400
    with pytest.raises(StatusError) as info:
        json_patch(obj(), [{"op": "test", "path": "/a", "value": 1}] * 10001)
    assert info.value.code == 413
