"""The pod status as the kubelet generates it: phase by kube's getPhase, the conditions'
reasons and messages, container states from runtime records and start failures, transition
times, and termination messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from pocketkube.kubelet import podconditions
from pocketkube.kubelet.containers import (
    LABEL_TERMINATION_HOST_PATH,
    LABEL_TERMINATION_POLICY,
)
from pocketkube.kubelet.pleg import PodRuntimeStatus
from pocketkube.kubelet.podstatus import StatusInputs, generate, get_phase
from pocketkube.kubelet.runtime.interface import ContainerStatus, SandboxStatus
from pocketkube.kubelet.termination import log_tail, termination_message
from tests.unit.kubelet.fakes import pod

T0 = 1_700_000_000.0


def running(name: str = "c") -> dict:
    return {"name": name, "state": {"running": {"startedAt": "x"}}, "started": True}


def terminated(name: str = "c", code: int = 0) -> dict:
    return {"name": name, "state": {"terminated": {"exitCode": code}}}


def waiting(name: str = "c", last_code: int | None = None) -> dict:
    st = {"name": name, "state": {"waiting": {"reason": "ContainerCreating"}}}
    if last_code is not None:
        st["lastState"] = {"terminated": {"exitCode": last_code}}
    return st


@pytest.mark.parametrize(("restart", "statuses", "terminal", "phase"), [
    ("Always", [running()], False, "Running"),
    ("Always", [waiting()], False, "Pending"),
    ("Always", [terminated(code=1)], False, "Running"),  # about to restart
    ("Always", [terminated(code=0)], True, "Succeeded"),  # deleted, all exited 0
    ("Always", [terminated(code=143)], True, "Failed"),
    ("Never", [terminated(code=0)], False, "Succeeded"),
    ("Never", [terminated(code=2)], False, "Failed"),
    ("OnFailure", [terminated(code=2)], False, "Running"),
    ("OnFailure", [terminated(code=0)], False, "Succeeded"),
    ("Always", [waiting(last_code=1)], False, "Running"),  # crash loop
    ("Always", [], False, "Pending"),
])
def test_phase(restart: str, statuses: list, terminal: bool, phase: str) -> None:
    assert get_phase(pod(restart=restart), statuses, terminal) == phase


def test_phase_with_init_containers() -> None:
    p = pod(restart="Never", init=[{"name": "i", "image": "busybox"}])
    assert get_phase(p, [running("i"), waiting()], False) == "Pending"
    assert get_phase(p, [terminated("i", 1), waiting()], False) == "Failed"
    assert get_phase(p, [terminated("i", 0), running()], False) == "Running"
    p = pod(restart="Always", init=[{"name": "i", "image": "busybox"}])
    assert get_phase(p, [waiting("i", last_code=1), waiting()], False) == "Pending"


def test_phase_with_a_sidecar() -> None:
    p = pod(init=[{"name": "s", "image": "busybox", "restartPolicy": "Always"}])
    not_started = {**running("s"), "started": False}
    assert get_phase(p, [not_started, waiting()], False) == "Pending"
    assert get_phase(p, [running("s"), running()], False) == "Running"


def test_conditions_messages() -> None:
    spec = pod(containers=[{"name": "a"}, {"name": "b"}],
               init=[{"name": "i"}])["spec"]
    statuses = [{"name": "a", "ready": True}, {"name": "i", "state": {"running": {}}}]
    cr = podconditions.containers_ready(spec, statuses, "Pending")
    assert cr == {"type": "ContainersReady", "status": "False", "reason": "ContainersNotReady",
                  "message": "containers with unknown status: [b]"}
    init = podconditions.initialized(spec, statuses, "Pending")
    assert init["message"] == "containers with incomplete status: [i]"
    assert podconditions.containers_ready(spec, statuses, "Failed")["reason"] == "PodFailed"
    spec["readinessGates"] = [{"conditionType": "example.com/gate"}]
    ready = podconditions.pod_ready(spec, [], [{"name": "a", "ready": True},
                                               {"name": "b", "ready": True}], "Running")
    assert ready == {"type": "Ready", "status": "False", "reason": "ReadinessGatesNotReady",
                     "message": 'corresponding condition of pod readiness gate '
                                '"example.com/gate" does not exist.'}


def test_transition_times_move_only_on_change() -> None:
    old = {"conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": "t1"},
                          {"type": "Initialized", "status": "True",
                           "lastTransitionTime": "t1"}]}
    new = {"conditions": [{"type": "Ready", "status": "True"},
                          {"type": "Initialized", "status": "True"}]}
    podconditions.set_transition_times(new, old, "t2")
    assert [c["lastTransitionTime"] for c in new["conditions"]] == ["t2", "t1"]


def _container(cid: str, state: str, attempt: int, **kw: object) -> ContainerStatus:
    return ContainerStatus(cid, "sb", "c", attempt, state, created_at=T0 + attempt,
                           started_at=T0 + attempt, image_id="sha256:abc",
                           image_ref="busybox", **kw)  # type: ignore[arg-type]


def _runtime(*containers: ContainerStatus) -> PodRuntimeStatus:
    sandbox = SandboxStatus("sb", "uid-p", "p", "default", "ready", "10.0.0.5", ["10.0.0.5"])
    return PodRuntimeStatus("uid-p", [sandbox], sorted(containers, key=lambda c: -c.attempt))


def test_restart_and_start_failure_shown_as_waiting() -> None:
    dead = _container("a1", "exited", 1, finished_at=T0 + 5, exit_code=1, reason="Error")
    older = _container("a0", "exited", 0, finished_at=T0 + 1, exit_code=1, reason="Error")
    inputs = StatusInputs(node_ip="192.168.1.10",
                          reason=lambda uid, name: ("CrashLoopBackOff", "back-off 10s ..."))
    st = generate(pod(), _runtime(dead, older), {}, inputs, terminal=False)
    c = st["containerStatuses"][0]
    assert c["state"] == {"waiting": {"reason": "CrashLoopBackOff",
                                      "message": "back-off 10s ..."}}
    assert c["lastState"]["terminated"]["containerID"] == "runc://a1"
    assert c["lastState"]["terminated"]["finishedAt"] == "2023-11-14T22:13:25Z"
    assert c["restartCount"] == 1 and c["ready"] is False and c["started"] is False
    assert st["phase"] == "Running"
    assert st["podIP"] == "10.0.0.5" and st["hostIP"] == "192.168.1.10"


def test_running_container_status_and_previous_instance() -> None:
    now = _container("a1", "running", 1)
    before = _container("a0", "exited", 0, finished_at=T0 + 1, exit_code=137,
                        reason="OOMKilled")
    inputs = StatusInputs(ready=lambda u, n: True, started=lambda u, n: True,
                          messages={"a0": "out of memory"})
    p = pod(containers=[{"name": "c", "image": "busybox",
                         "volumeMounts": [{"name": "v", "mountPath": "/v", "readOnly": True}]}])
    c = generate(p, _runtime(now, before), {}, inputs, terminal=False)["containerStatuses"][0]
    assert c["state"] == {"running": {"startedAt": "2023-11-14T22:13:21Z"}}
    assert c["lastState"]["terminated"]["reason"] == "OOMKilled"
    assert c["lastState"]["terminated"]["message"] == "out of memory"
    assert c["ready"] is True and c["started"] is True
    assert c["volumeMounts"] == [{"name": "v", "mountPath": "/v", "readOnly": True,
                                  "recursiveReadOnly": "Disabled"}]


def test_terminal_phase_never_goes_back() -> None:
    old = {"phase": "Succeeded", "reason": "", "conditions": []}
    st = generate(pod(), _runtime(_container("a", "running", 0)), old, StatusInputs(),
                  terminal=False)
    assert st["phase"] == "Succeeded"


def test_termination_message_from_file_and_logs(tmp_path: Path) -> None:
    msg = tmp_path / "msg"
    msg.write_text("done: 42")
    c = _container("x", "exited", 0, exit_code=0,
                   labels={LABEL_TERMINATION_HOST_PATH: str(msg)})
    assert termination_message(c) == "done: 42"
    log = tmp_path / "0.log"
    log.write_text("".join(f"2024-01-01T00:00:00.0Z stdout F line {i}\n" for i in range(100))
                   + "2024-01-01T00:00:00.0Z stderr P par\n2024-01-01T00:00:00.0Z stderr F "
                     "tial\n")
    empty = tmp_path / "empty"
    empty.touch()
    c = _container("y", "exited", 0, exit_code=1, log_path=str(log), labels={
        LABEL_TERMINATION_HOST_PATH: str(empty),
        LABEL_TERMINATION_POLICY: "FallbackToLogsOnError"})
    text = termination_message(c)
    assert text.endswith("line 99\npartial\n")
    assert text.startswith("line 21\n")  # the last 80 lines
    c.exit_code = 0  # only failures fall back to the log
    assert termination_message(c) == ""
    assert len(log_tail(log, 80, 20)) == 20


def test_reported_termination_message_is_kept_when_the_file_is_gone() -> None:
    dead = _container("a0", "exited", 0, finished_at=T0 + 1, exit_code=0, reason="Completed")
    old = {"containerStatuses": [{"name": "c", "state": {"terminated": {
        "exitCode": 0, "containerID": "runc://a0", "message": "done"}}}]}
    st = generate(pod(restart="Never"), _runtime(dead), old, StatusInputs(), terminal=True)
    assert st["containerStatuses"][0]["state"]["terminated"]["message"] == "done"
