"""The scheduling queue: ordering, backoff on a fake clock, unschedulable pods moved by
events, the five-minute flush, and events that arrive during a cycle."""

import asyncio

from pocketkube.client.workqueue import FakeClock
from pocketkube.scheduler.queue import SchedulingQueue
from tests.unit.scheduler.util import info, pod

EVENTS = {"NodeResourcesFit": frozenset({"Node/Add", "AssignedPod/Delete"}),
          "TaintToleration": frozenset({"Node/Add", "Node/UpdateTaint"})}


def names(q):
    out = []
    while (qp := q.pop_nowait()) is not None:
        out.append(qp.info.name)
    return out


def test_active_queue_orders_by_priority_then_arrival():
    q = SchedulingQueue(FakeClock())
    for name, prio in (("low1", 0), ("high", 100), ("low2", 0), ("mid", 10)):
        q.add(info(pod(name, priority=prio)))
    assert names(q) == ["high", "mid", "low1", "low2"]


def test_backoff_doubles_per_attempt_up_to_ten_seconds():
    clock = FakeClock()
    q = SchedulingQueue(clock)
    q.add(info(pod("p")))
    durations = []
    for _ in range(6):
        qp = q.pop_nowait()
        assert qp is not None
        durations.append(q.backoff_duration(qp))
        q.add_backoff(qp)
        q.flush_backoff_completed()
        assert q.pop_nowait() is None  # still backing off
        clock.advance(durations[-1])
        q.flush_backoff_completed()
    assert durations == [1, 2, 4, 8, 10, 10]


def test_unschedulable_pod_moves_only_on_relevant_events():
    clock = FakeClock()
    q = SchedulingQueue(clock, EVENTS)
    q.add(info(pod("p")))
    qp = q.pop_nowait()
    q.add_unschedulable(qp, {"TaintToleration"})
    assert "p" in [x.info.name for x in q.unschedulable.values()]
    assert q.move_all("AssignedPod/Delete") == 0
    clock.advance(5)  # past its 1 s backoff
    assert q.move_all("Node/UpdateTaint") == 1
    assert names(q) == ["p"]


def test_moved_pod_still_backing_off_waits_in_backoff_queue():
    clock = FakeClock()
    q = SchedulingQueue(clock, EVENTS)
    q.add(info(pod("p")))
    q.add_unschedulable(q.pop_nowait(), {"NodeResourcesFit"})
    q.move_all("Node/Add")
    assert q.pop_nowait() is None
    clock.advance(1)
    q.flush_backoff_completed()
    assert names(q) == ["p"]


def test_event_during_the_cycle_sends_the_pod_to_backoff_not_unschedulable():
    clock = FakeClock()
    q = SchedulingQueue(clock, EVENTS)
    q.add(info(pod("p")))
    qp = q.pop_nowait()
    q.move_all("Node/Add")  # a node arrived while p was being scheduled
    q.add_unschedulable(qp, {"NodeResourcesFit"})
    assert not q.unschedulable
    clock.advance(1)
    q.flush_backoff_completed()
    assert names(q) == ["p"]


def test_unschedulable_pods_are_flushed_after_five_minutes():
    clock = FakeClock()
    q = SchedulingQueue(clock, EVENTS)
    q.add(info(pod("p")))
    q.add_unschedulable(q.pop_nowait(), {"TaintToleration"})
    clock.advance(299)
    q.flush_unschedulable_leftover()
    assert q.pop_nowait() is None
    clock.advance(2)
    q.flush_unschedulable_leftover()
    assert names(q) == ["p"]


def test_spec_update_retries_an_unschedulable_pod_and_delete_forgets_it():
    clock = FakeClock()
    q = SchedulingQueue(clock, EVENTS)
    p = pod("p")
    q.add(info(p))
    q.add_unschedulable(q.pop_nowait(), {"TaintToleration"})
    status_only = dict(p, status={"phase": "Pending", "conditions": []})
    q.update(info(status_only))
    assert q.unschedulable
    clock.advance(1)
    q.update(info(dict(p, spec=dict(p["spec"], tolerations=[{"operator": "Exists"}]))))
    assert names(q) == ["p"]
    gone = info(pod("gone"))
    q.add(gone)
    q.delete(gone.uid)
    assert names(q) == []


async def test_pop_waits_for_a_pod_and_periodic_flush_runs_on_the_clock():
    clock = FakeClock()
    q = SchedulingQueue(clock, EVENTS)
    runner = asyncio.create_task(q.run())
    waiter = asyncio.create_task(q.pop())
    await asyncio.sleep(0)
    assert not waiter.done()
    q.add(info(pod("p")))
    qp = await asyncio.wait_for(waiter, 1)
    q.add_backoff(qp)
    waiter = asyncio.create_task(q.pop())
    await asyncio.sleep(0)
    clock.advance(1)  # the 1 s flush tick moves it back to active
    assert (await asyncio.wait_for(waiter, 1)).info.name == "p"
    q.close()
    clock.advance(1)
    await asyncio.wait_for(runner, 1)
