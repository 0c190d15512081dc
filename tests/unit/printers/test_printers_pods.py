"""Pod and PodTemplate rows: READY, the STATUS reason logic, RESTARTS and the wide columns,
as kubernetes printers.go `printPod` computes them."""

from datetime import UTC, datetime, timedelta
from typing import Any

from pocketkube.api.printers import row_cells, row_conditions

NOW = datetime(2024, 6, 1, 12, 0, 0, tzinfo=UTC)


def ago(**kw: float) -> str:
    return (NOW - timedelta(**kw)).strftime("%Y-%m-%dT%H:%M:%SZ")


RUNNING = {"running": {"startedAt": ago(minutes=10)}}


def cs(name: str, ready: bool = True, state: Any = None, restarts: int = 0, **extra: Any) -> dict:
    return {
        "name": name,
        "ready": ready,
        "restartCount": restarts,
        "state": RUNNING if state is None else state,
        "image": "busybox",
        **extra,
    }


def pod(
    containers: int = 1,
    statuses: list | None = None,
    phase: str = "Running",
    init: list | None = None,
    init_statuses: list | None = None,
    conditions: list | None = None,
    **meta: Any,
) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "web-1",
            "namespace": "default",
            "creationTimestamp": ago(minutes=5, seconds=10),
            **meta,
        },
        "spec": {
            "containers": [{"name": f"c{i}", "image": "busybox"} for i in range(containers)],
            "initContainers": init or [],
            "nodeName": "node-a",
        },
        "status": {
            "phase": phase,
            "conditions": conditions or [],
            "podIP": "10.244.0.7",
            "podIPs": [{"ip": "10.244.0.7"}],
            "containerStatuses": statuses or [],
            "initContainerStatuses": init_statuses or [],
        },
    }


def cells(obj: dict) -> list:
    return row_cells("", "Pod", obj, NOW)


def test_running_pod_full_row() -> None:
    assert cells(pod(statuses=[cs("c0")])) == [
        "web-1",
        "1/1",
        "Running",
        "0",
        "5m10s",
        "10.244.0.7",
        "node-a",
        "<none>",
        "<none>",
    ]


def test_crash_loop_container_with_last_restart_time() -> None:
    crashing = cs(
        "c1",
        ready=False,
        state={"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s"}},
        restarts=4,
        lastState={"terminated": {"exitCode": 1, "reason": "Error", "finishedAt": ago(seconds=20)}},
    )
    assert cells(pod(2, [cs("c0"), crashing]))[1:4] == ["1/2", "CrashLoopBackOff", "4 (20s ago)"]


def test_pending_pod_without_statuses() -> None:
    p = pod(phase="Pending")
    p["spec"]["nodeName"] = ""
    p["status"] = {"phase": "Pending"}
    assert cells(p)[1:] == ["0/1", "Pending", "0", "5m10s", "<none>", "<none>", "<none>", "<none>"]


def test_container_creating() -> None:
    waiting = cs("c0", ready=False, state={"waiting": {"reason": "ContainerCreating"}})
    assert cells(pod(statuses=[waiting], phase="Pending"))[1:3] == ["0/1", "ContainerCreating"]


def test_init_container_running_shows_progress() -> None:
    init = [{"name": "i0", "image": "x"}, {"name": "i1", "image": "x"}]
    waiting_main = cs("c0", ready=False, state={"waiting": {"reason": "PodInitializing"}})
    p = pod(
        statuses=[waiting_main],
        phase="Pending",
        init=init,
        init_statuses=[
            cs("i0", ready=False),
            cs("i1", ready=False, state={"waiting": {"reason": "PodInitializing"}}),
        ],
    )
    assert cells(p)[1:4] == ["0/1", "Init:0/2", "0"]


def test_second_init_container_progress_after_first_completed() -> None:
    init = [{"name": "i0", "image": "x"}, {"name": "i1", "image": "x"}]
    done = {"terminated": {"exitCode": 0, "reason": "Completed"}}
    p = pod(
        phase="Pending",
        init=init,
        init_statuses=[cs("i0", ready=False, state=done), cs("i1", ready=False)],
    )
    assert cells(p)[2] == "Init:1/2"


def test_init_container_crash_loop_counts_init_restarts() -> None:
    init = [{"name": "i0", "image": "x"}]
    crashing = cs(
        "i0",
        ready=False,
        state={"waiting": {"reason": "CrashLoopBackOff"}},
        restarts=3,
        lastState={"terminated": {"exitCode": 1, "finishedAt": ago(minutes=2)}},
    )
    p = pod(phase="Pending", init=init, init_statuses=[crashing])
    assert cells(p)[1:4] == ["0/1", "Init:CrashLoopBackOff", "3 (2m ago)"]


def test_init_container_failure_reasons() -> None:
    init = [{"name": "i0", "image": "x"}]

    def status_for(term: dict) -> str:
        st = cs("i0", ready=False, state={"terminated": term})
        return cells(pod(phase="Pending", init=init, init_statuses=[st]))[2]

    assert status_for({"exitCode": 1, "reason": "Error"}) == "Init:Error"
    assert status_for({"exitCode": 137, "signal": 9}) == "Init:Signal:9"
    assert status_for({"exitCode": 2}) == "Init:ExitCode:2"


def test_completed_pod() -> None:
    done = cs("c0", ready=False, state={"terminated": {"exitCode": 0, "reason": "Completed"}})
    assert cells(pod(statuses=[done], phase="Succeeded"))[1:3] == ["0/1", "Completed"]


def test_terminated_without_reason_prints_exit_code_or_signal() -> None:
    by_code = cs("c0", ready=False, state={"terminated": {"exitCode": 3}})
    by_signal = cs("c0", ready=False, state={"terminated": {"exitCode": 143, "signal": 15}})
    assert cells(pod(statuses=[by_code], phase="Failed"))[2] == "ExitCode:3"
    assert cells(pod(statuses=[by_signal], phase="Failed"))[2] == "Signal:15"


def test_completed_container_beside_running_one() -> None:
    done = cs("c0", ready=False, state={"terminated": {"exitCode": 0, "reason": "Completed"}})
    ready_cond = [{"type": "Ready", "status": "True"}]
    assert cells(pod(2, [done, cs("c1")], conditions=ready_cond))[1:3] == ["1/2", "Running"]
    assert cells(pod(2, [done, cs("c1")]))[1:3] == ["1/2", "NotReady"]


def test_sidecar_init_containers_count_towards_ready_and_restarts() -> None:
    init = [{"name": "proxy", "image": "envoy", "restartPolicy": "Always"}]
    sidecar = cs(
        "proxy",
        started=True,
        restarts=1,
        lastState={"terminated": {"exitCode": 1, "finishedAt": ago(hours=1)}},
    )
    app = cs(
        "c0", restarts=2, lastState={"terminated": {"exitCode": 1, "finishedAt": ago(minutes=3)}}
    )
    p = pod(
        statuses=[app],
        init=init,
        init_statuses=[sidecar],
        conditions=[{"type": "Initialized", "status": "True"}],
    )
    assert cells(p)[1:4] == ["2/2", "Running", "3 (3m ago)"]


def test_terminating_and_node_lost() -> None:
    deleting = pod(statuses=[cs("c0")], deletionTimestamp=ago(seconds=5))
    assert cells(deleting)[2] == "Terminating"
    lost = pod(statuses=[cs("c0")], deletionTimestamp=ago(seconds=5))
    lost["status"]["reason"] = "NodeLost"
    assert cells(lost)[2] == "Unknown"
    unreachable = pod(statuses=[cs("c0")])
    unreachable["status"]["reason"] = "NodeLost"
    assert cells(unreachable)[2] == "NodeLost"
    finished = pod(phase="Succeeded", deletionTimestamp=ago(seconds=5))
    assert cells(finished)[2] == "Succeeded"


def test_evicted_pod_keeps_its_reason() -> None:
    p = pod(phase="Failed")
    p["status"]["reason"] = "Evicted"
    assert cells(p)[1:3] == ["0/1", "Evicted"]


def test_scheduling_gated() -> None:
    gated = [{"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]
    assert cells(pod(phase="Pending", conditions=gated))[2] == "SchedulingGated"


def test_wide_ip_nominated_node_and_readiness_gates() -> None:
    p = pod(
        statuses=[cs("c0")],
        conditions=[
            {"type": "example.com/lb", "status": "True"},
            {"type": "example.com/dns", "status": "False"},
        ],
    )
    p["spec"]["readinessGates"] = [
        {"conditionType": "example.com/lb"},
        {"conditionType": "example.com/dns"},
    ]
    p["status"]["nominatedNodeName"] = "node-b"
    p["status"]["podIP"] = ""
    p["status"]["podIPs"] = [{"ip": "fd00::7"}, {"ip": "10.0.0.7"}]
    assert cells(p)[5:] == ["fd00::7", "node-a", "node-b", "1/2"]


def test_pod_template_row() -> None:
    tmpl = {
        "metadata": {"name": "tmpl"},
        "template": {
            "metadata": {"labels": {"run": "x", "app": "y"}},
            "spec": {
                "containers": [{"name": "a", "image": "nginx"}, {"name": "b", "image": "redis:7"}]
            },
        },
    }
    assert row_cells("", "PodTemplate", tmpl, NOW) == [
        "tmpl",
        "a,b",
        "nginx,redis:7",
        "app=y,run=x",
    ]


def test_finished_pods_carry_a_completed_row_condition() -> None:
    succeeded = row_conditions("", "Pod", pod(phase="Succeeded"))
    assert succeeded == [
        {
            "type": "Completed",
            "status": "True",
            "reason": "Succeeded",
            "message": "The pod has completed successfully.",
        }
    ]
    failed = row_conditions("", "Pod", pod(phase="Failed"))
    assert failed is not None and failed[0]["reason"] == "Failed"
    assert failed[0]["message"] == "The pod failed."
    assert row_conditions("", "Pod", pod(phase="Running")) is None
    assert row_conditions("apps", "Deployment", {"status": {"phase": "Succeeded"}}) is None
