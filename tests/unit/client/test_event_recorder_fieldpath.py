"""EventRecorder with field paths: the reference names the part of the object, and the same
event about two parts (two containers of one pod) stays two events."""

from pocketkube.client.events import EventRecorder, object_reference
from tests.unit.scheduler.fakeapi import FakeApi

POD = {"apiVersion": "v1", "kind": "Pod",
       "metadata": {"name": "web-1", "namespace": "default", "uid": "u1",
                    "resourceVersion": "7"}}


def test_object_reference_carries_the_field_path_only_when_given():
    assert object_reference(POD, "spec.containers{app}") == {
        "kind": "Pod", "apiVersion": "v1", "name": "web-1", "namespace": "default",
        "uid": "u1", "resourceVersion": "7", "fieldPath": "spec.containers{app}"}
    assert "fieldPath" not in object_reference(POD)
    assert "fieldPath" not in object_reference(POD, "")


async def test_field_path_is_written_in_the_involved_object():
    api = FakeApi()
    rec = EventRecorder(api, "kubelet", host="node-1")
    rec.record(POD, "Normal", "Pulled", 'Container image "busybox" already present on machine',
               field_path="spec.initContainers{init}")
    await rec.flush()
    [ev] = api.objects.values()
    assert ev["involvedObject"]["fieldPath"] == "spec.initContainers{init}"
    assert ev["involvedObject"]["name"] == "web-1"
    assert ev["source"] == {"component": "kubelet", "host": "node-1"}
    await rec.close()


async def test_same_event_of_two_containers_stays_two_events():
    api = FakeApi()
    rec = EventRecorder(api, "kubelet")
    for _ in range(2):
        for name in ("a", "b"):
            rec.record(POD, "Warning", "BackOff", "Back-off restarting failed container",
                       field_path=f"spec.containers{{{name}}}")
        await rec.flush()
    # The pod-level event with the same words is a third one.
    rec.record(POD, "Warning", "BackOff", "Back-off restarting failed container")
    await rec.flush()
    got = sorted((e["involvedObject"].get("fieldPath", ""), e["count"])
                 for e in api.objects.values())
    assert got == [("", 1), ("spec.containers{a}", 2), ("spec.containers{b}", 2)]
    assert [c[0] for c in api.calls].count("create") == 3
    await rec.close()


async def test_calls_without_a_field_path_aggregate_as_before():
    api = FakeApi()
    rec = EventRecorder(api, "deployment-controller")
    for _ in range(3):
        rec.record(POD, "Normal", "ScalingReplicaSet", "Scaled up", None, None)
        await rec.flush()
    [ev] = api.objects.values()
    assert ev["count"] == 3
    assert "fieldPath" not in ev["involvedObject"]
    await rec.close()
