import pytest

from pocketkube.api.errors import StatusError
from pocketkube.api.selectors import (
    parse_field_selector,
    parse_label_selector,
    selector_from_label_selector,
)

LABELS = {"app": "web", "tier": "front", "n": "5"}


@pytest.mark.parametrize("sel,want", [
    ("app=web", True), ("app==web", True), ("app!=web", False), ("app=db", False),
    ("app in (web,db)", True), ("app notin (web)", False), ("tier", True), ("!tier", False),
    ("missing", False), ("!missing", True), ("missing!=x", True), ("n>4", True), ("n<5", False),
    ("app=web,tier in (front)", True), ("app=web,tier=back", False), ("", True),
])
def test_label_selector(sel, want):
    assert parse_label_selector(sel).matches(LABELS) is want


@pytest.mark.parametrize("bad", ["app=we b", "-x=y", "n>abc"])
def test_label_selector_rejects_bad_input(bad):
    with pytest.raises(StatusError) as e:
        parse_label_selector(bad)
    assert e.value.code == 400


def test_metav1_label_selector():
    sel = selector_from_label_selector({
        "matchLabels": {"app": "web"},
        "matchExpressions": [{"key": "tier", "operator": "In", "values": ["front"]},
                             {"key": "gone", "operator": "DoesNotExist"}]})
    assert sel.matches(LABELS)
    assert not sel.matches({"app": "web"})


POD = {"metadata": {"name": "p1", "namespace": "default"},
       "spec": {"nodeName": "n1"}, "status": {"phase": "Running"}}


@pytest.mark.parametrize("sel,want", [
    ("metadata.name=p1", True), ("metadata.name==p2", False),
    ("spec.nodeName=n1,status.phase!=Succeeded,status.phase!=Failed", True),
    ("status.phase=Pending", False), ("metadata.namespace!=default", False),
])
def test_field_selector(sel, want):
    assert parse_field_selector(sel, "Pod").matches(POD) is want


def test_field_selector_unsupported_label():
    with pytest.raises(StatusError) as e:
        parse_field_selector("spec.foo=bar", "Pod")
    assert e.value.code == 400
    assert "field label not supported: spec.foo" in e.value.message


def test_event_involved_object_selector():
    ev = {"metadata": {"name": "e"}, "involvedObject": {"kind": "Pod", "name": "p1", "uid": "u"}}
    sel = parse_field_selector("involvedObject.kind=Pod,involvedObject.uid=u", "Event")
    assert sel.matches(ev)
    assert sel.exact_name() is None
