"""The agent's events name the container they are about (involvedObject.fieldPath, kube's
GenerateContainerRef) and pod-level events name none: pulls, creates, starts, crash-loop and
image back-offs, kills, hook failures, against the in-memory fakes."""

from __future__ import annotations

from typing import Any

from pocketkube.kubelet.containers import container_field_path
from pocketkube.kubelet.lifecycle import Lifecycle
from pocketkube.kubelet.runtime.interface import ContainerStatus, ExecResult, ImageError
from tests.unit.kubelet.fakes import Harness, pod

Event = tuple[str, str, str | None]  # reason, message, fieldPath


def capture(recorder: Any) -> list[Event]:
    """Keep the field path of every event the agent records through `recorder`."""
    events: list[Event] = []

    def record(obj: dict, type_: str, reason: str, message: str, action: str | None = None,
               related: dict | None = None, *, field_path: str | None = None) -> None:
        assert obj["kind"] == "Pod" and "spec" not in obj
        events.append((reason, message, field_path))

    recorder.record = record
    return events


def paths(events: list[Event], reason: str) -> list[str | None]:
    return [e[2] for e in events if e[0] == reason]


def test_container_field_path_as_kube_generates_it():
    p = pod(containers=[{"name": "web"}, {"name": "side"}], init=[{"name": "init"}],
            ephemeralContainers=[{"name": "debug"}])
    assert container_field_path(p, "side") == "spec.containers{side}"
    assert container_field_path(p, "init") == "spec.initContainers{init}"
    assert container_field_path(p, "debug") == "spec.ephemeralContainers{debug}"
    assert container_field_path(p, "gone") == "implicitly required container gone"
    assert container_field_path({"metadata": {}}, "c") == "implicitly required container c"
    assert container_field_path({"spec": {"containers": [{"image": "x"}]}}, "") == \
        "spec.containers[0]"


async def test_start_events_name_each_container(h: Harness) -> None:
    events = capture(h.recorder)
    await h.add(pod(containers=[{"name": "web", "image": "busybox"},
                                {"name": "side", "image": "busybox"}],
                    init=[{"name": "init", "image": "busybox"}]))
    h.runtime.exit("init", 0)
    await h.relist()
    assert sorted(h.runtime.running()) == ["side", "web"]
    for reason in ("Pulled", "Created", "Started"):
        assert paths(events, reason) == ["spec.initContainers{init}", "spec.containers{web}",
                                         "spec.containers{side}"], reason
    assert [e for e in events if e[2] is None] == []


async def test_crash_loop_back_off_names_the_container(h: Harness) -> None:
    events = capture(h.recorder)
    h.runtime.exit_on_start["c"] = 1
    await h.add(pod())
    await h.relist()
    await h.relist()
    assert paths(events, "BackOff")
    assert set(paths(events, "BackOff")) == {"spec.containers{c}"}


async def test_pull_events_name_the_container(h: Harness) -> None:
    events = capture(h.recorder)
    h.images.failures["nope"] = ImageError("ErrImagePull", "manifest unknown")
    await h.add(pod(containers=[{"name": "ok", "image": "busybox"},
                                {"name": "bad", "image": "nope", "imagePullPolicy": "Always"}]))
    await h.tick(1)
    assert paths(events, "Pulled") == ["spec.containers{ok}"]
    assert paths(events, "Pulling") == ["spec.containers{bad}"]
    assert [(m, p) for r, m, p in events if r in ("Failed", "BackOff")] == [
        ('Failed to pull image "nope": manifest unknown', "spec.containers{bad}"),
        ("Error: ErrImagePull", "spec.containers{bad}"),
        ('Back-off pulling image "nope"', "spec.containers{bad}"),
        ("Error: ImagePullBackOff", "spec.containers{bad}")]


async def test_kill_and_hook_failures_name_the_container(h: Harness) -> None:
    events = capture(h.recorder)
    hook = {"postStart": {"exec": {"command": ["false"]}}}
    h.runtime.exec_handler = lambda c, argv: ExecResult(1, b"nope")
    await h.add(pod(containers=[{"name": "c", "image": "busybox", "lifecycle": hook}]))
    assert paths(events, "FailedPostStartHook") == ["spec.containers{c}"]
    assert paths(events, "Killing") == ["spec.containers{c}"]


async def test_pre_stop_failure_and_killing_on_delete(h: Harness) -> None:
    events = capture(h.recorder)
    hook = {"preStop": {"exec": {"command": ["false"]}}}
    h.runtime.exec_handler = lambda c, argv: ExecResult(1, b"nope")
    await h.add(pod(containers=[{"name": "a", "image": "busybox"},
                                {"name": "b", "image": "busybox", "lifecycle": hook}]))
    await h.delete("default", "p", grace=30)
    assert sorted(paths(events, "Killing")) == ["spec.containers{a}", "spec.containers{b}"]
    assert paths(events, "FailedPreStopHook") == ["spec.containers{b}"]


async def test_pod_level_events_carry_no_field_path(h: Harness) -> None:
    events = capture(h.recorder)
    h.volumes.failure = 'MountVolume.SetUp failed for volume "cfg" : configmap "x" not found'
    await h.add(pod())
    assert paths(events, "FailedMount") == [None]


async def test_killing_a_container_whose_spec_is_gone(h: Harness) -> None:
    """Without the pod's spec (restored from the runtime's labels), kube's reference is the
    implicit container's."""
    events = capture(h.recorder)
    lifecycle = Lifecycle(h.runtime, h.recorder, h.clock)
    status = ContainerStatus(id="x", sandbox_id="s", name="c", attempt=0, state="exited")
    await lifecycle.kill({"metadata": {"name": "p", "namespace": "default", "uid": "u"}},
                         None, status)
    assert events == [("Killing", "Stopping container c", "implicitly required container c")]
