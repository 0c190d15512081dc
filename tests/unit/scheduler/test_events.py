"""EventRecorder: the Event it writes, and aggregation of repeats into a count."""

from pocketkube.client.events import EventRecorder
from tests.unit.scheduler.fakeapi import FakeApi

POD = {"apiVersion": "v1", "kind": "Pod",
       "metadata": {"name": "web-1", "namespace": "default", "uid": "u1",
                    "resourceVersion": "7"}}


async def test_record_writes_a_core_v1_event():
    api = FakeApi()
    rec = EventRecorder(api, "default-scheduler")
    rec.record(POD, "Normal", "Scheduled", "Successfully assigned default/web-1 to node-a",
               action="Binding")
    await rec.flush()
    [ev] = api.objects.values()
    assert ev["metadata"]["namespace"] == "default"
    assert ev["metadata"]["name"].startswith("web-1.")
    assert ev["involvedObject"] == {"kind": "Pod", "apiVersion": "v1", "name": "web-1",
                                    "uid": "u1", "resourceVersion": "7",
                                    "namespace": "default"}
    assert ev["source"] == {"component": "default-scheduler"}
    assert ev["reportingComponent"] == "default-scheduler"
    assert (ev["type"], ev["reason"], ev["count"], ev["action"]) == (
        "Normal", "Scheduled", 1, "Binding")
    assert ev["firstTimestamp"] == ev["lastTimestamp"]
    await rec.close()


async def test_repeats_increment_count_and_different_messages_do_not():
    api = FakeApi()
    rec = EventRecorder(api, "default-scheduler")
    for _ in range(3):
        rec.record(POD, "Warning", "FailedScheduling", "0/1 nodes are available")
        await rec.flush()
    rec.record(POD, "Warning", "FailedScheduling", "0/2 nodes are available")
    await rec.flush()
    evs = sorted(api.objects.values(), key=lambda e: e["message"])
    assert [(e["message"], e["count"]) for e in evs] == [
        ("0/1 nodes are available", 3), ("0/2 nodes are available", 1)]
    assert [c[0] for c in api.calls].count("create") == 2
    await rec.close()


async def test_bursts_coalesce_into_one_write_of_the_latest_count():
    api = FakeApi()
    rec = EventRecorder(api, "c")
    for _ in range(10):
        rec.record(POD, "Warning", "X", "same")
    await rec.flush()
    [ev] = api.objects.values()
    assert ev["count"] == 10
    assert len(api.calls) <= 2
    await rec.close()
