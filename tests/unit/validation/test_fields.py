"""fieldValidation problems and decode errors, worded as kube-apiserver reports them."""

from __future__ import annotations

from pocketkube.api import schema as S
from pocketkube.api.validation import fields

DEPLOYMENT = S.for_kind("apps", "v1", "Deployment")
POD = S.for_kind("", "v1", "Pod")


def test_unknown_fields_in_document_order() -> None:
    obj = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x", "labelz": {}},
           "spec": {"replica": 3, "template": {"spec": {"containers": [{"name": "c", "imagee": "x"}]}}}}
    assert fields.unknown_fields(obj, DEPLOYMENT) == [
        "metadata.labelz", "spec.replica", "spec.template.spec.containers[0].imagee"]


def test_free_form_and_map_fields_accept_any_key() -> None:
    cr = S.for_kind("apps", "v1", "ControllerRevision")
    obj = {"metadata": {"labels": {"anything": "x"}, "annotations": {"a/b": "c"}},
           "data": {"whatever": {"nested": True}}}
    assert fields.unknown_fields(obj, cr) == []


def test_duplicate_fields() -> None:
    body = b'{"kind":"Deployment","spec":{"replicas":1,"replicas":2,"template":{"metadata":{"labels":{"a":"1","a":"2"}}}}}'
    assert fields.find_duplicate_fields(body) == ["spec.replicas", "spec.template.metadata.labels.a"]


def test_strict_problems_interleave_in_document_order() -> None:
    body = b'{"spec":{"replica":1,"replicas":2,"replicas":3},"foo":1}'
    assert fields.strict_problems(body, DEPLOYMENT) == [
        'unknown field "spec.replica"', 'duplicate field "spec.replicas"', 'unknown field "foo"']


def test_strict_error_and_warnings() -> None:
    err = fields.strict_error("Deployment", "v1", ['unknown field "spec.replica"', "spec.foo"])
    assert err.code == 400 and err.reason == "BadRequest"
    assert err.message == ('Deployment in version "v1" cannot be handled as a Deployment: strict '
                           'decoding error: unknown field "spec.replica", unknown field "spec.foo"')
    assert fields.warnings(['unknown field "spec.replica"']) == ['299 - "unknown field \\"spec.replica\\""']
    patch = fields.patch_strict_error(['unknown field "spec.z"', 'unknown field "spec.a"'])
    assert patch.message == 'strict decoding error: unknown field "spec.a", unknown field "spec.z"'


def test_type_errors_use_go_wording() -> None:
    assert fields.type_error({"spec": {"replicas": "3"}}, DEPLOYMENT) == (
        "json: cannot unmarshal string into Go struct field DeploymentSpec.spec.replicas of type int32")
    pod = {"spec": {"containers": [{"name": "c", "ports": [{"containerPort": "80"}]}]}}
    assert fields.type_error(pod, POD) == (
        "json: cannot unmarshal string into Go struct field ContainerPort.spec.containers.ports."
        "containerPort of type int32")
    assert fields.type_error({"spec": {"containers": {}}}, POD) == (
        "json: cannot unmarshal object into Go struct field PodSpec.spec.containers of type []v1.Container")
    assert fields.type_error({"metadata": {"labels": {"a": 1}}}, POD) == (
        "json: cannot unmarshal number into Go struct field ObjectMeta.metadata.labels of type string")
    assert fields.type_error({"spec": {"replicas": 1.5}}, DEPLOYMENT) == (
        "json: cannot unmarshal number 1.5 into Go struct field DeploymentSpec.spec.replicas of type int32")
    bad_quantity = {"spec": {"containers": [{"resources": {"limits": {"cpu": "1x"}}}]}}
    assert fields.type_error(bad_quantity, POD) == (
        "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")
    secret = S.for_kind("", "v1", "Secret")
    assert fields.type_error({"data": {"a": "no!"}}, secret) == "illegal base64 data at input byte 2"
    assert fields.type_error({"spec": {"replicas": 2, "paused": None}}, DEPLOYMENT) is None


def test_cannot_handle_wraps_decode_errors() -> None:
    err = fields.cannot_handle("Deployment", "v1", "json: cannot unmarshal ...")
    assert err.message == 'Deployment in version "v1" cannot be handled as a Deployment: json: cannot unmarshal ...'
