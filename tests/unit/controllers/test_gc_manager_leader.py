"""The controller manager acts only while it holds the kube-system/kube-controller-manager
Lease: controllers start once it leads and stop, with an error for the supervisor, when the
lease is lost."""

import asyncio

import pytest

from pocketkube.client.rest import resource
from pocketkube.client.workqueue import FakeClock
from pocketkube.components import ComponentContext
from pocketkube.config import ServerConfig
from pocketkube.controllers import manager
from pocketkube.controllers.base import Controller
from tests.unit.controllers.informing_fakeapi import FakeApi
from tests.unit.controllers.nodes_support import settle

LEASES = resource("coordination.k8s.io", "leases")


class Probe(Controller):
    name = "probe"

    def __init__(self, client, informers, log):
        super().__init__(client, informers)
        self.events = log

    async def run(self):
        self.events.append("started")
        try:
            await asyncio.Event().wait()
        finally:
            self.events.append("stopped")


@pytest.fixture
def setup(monkeypatch):
    api, clock, log = FakeApi(), FakeClock(), []
    monkeypatch.setattr(manager, "build", lambda ctx, informers: [Probe(api, informers, log)])
    options = {"leader_election": {"identity": "me", "clock": clock}}
    ctx = ComponentContext("controller-manager", ServerConfig(), api, options)
    return api, clock, log, ctx


async def test_controllers_run_only_while_leading(setup):
    api, clock, log, ctx = setup
    other = {"metadata": {"name": "kube-controller-manager", "namespace": "kube-system"},
             "spec": {"holderIdentity": "other", "leaseDurationSeconds": 15}}
    await api.create(LEASES, other)
    task = asyncio.create_task(manager.run(ctx))
    await settle()
    assert log == []  # someone else leads
    for _ in range(9):  # the other holder never renews: its lease expires after 15 s
        clock.advance(2)
        await settle()
    assert log == ["started"]
    lease = api.find(LEASES, "kube-controller-manager", "kube-system")
    assert lease["spec"]["holderIdentity"] == "me"
    # Taken over behind our back: renewals fail, controllers stop, run() raises.
    lease["spec"]["holderIdentity"] = "intruder"
    for _ in range(6):
        clock.advance(2)
        await settle()
    with pytest.raises(RuntimeError, match="lost its leader lease"):
        await asyncio.wait_for(task, 1)
    assert log == ["started", "stopped"]
