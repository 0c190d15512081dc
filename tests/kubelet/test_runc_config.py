"""What a runc container gets from its configuration: user, read-only root and bind mounts,
termination-log file, capabilities and the default seccomp profile (and none when privileged),
cgroup limits, and the host's network namespace with hostNetwork."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pocketkube.kubelet.runtime.interface import Mount, Resources, SecurityConfig
from tests.kubelet.test_runc import Harness, log_lines, open_harness

pytestmark = pytest.mark.usefixtures("require_root")


@pytest.fixture
async def h(tmp_path):
    async with open_harness(tmp_path) as harness:
        yield harness


def _output(status) -> list[str]:
    return [text for _, text in log_lines(Path(status.log_path))]


async def test_user_read_only_rootfs_mounts_and_termination_log(h: Harness):
    sandbox = h.sandbox_config()
    sid = await h.runtime.run_sandbox(sandbox)
    data = h.tmp / "data"
    data.mkdir()
    (data / "f").write_text("from-host\n")
    termination = h.tmp / "termination-log"
    script = (
        "id -u; id -g; id -G; echo $HOME; "
        "touch /x 2>/dev/null && echo rootfs-rw || echo rootfs-ro; "
        "cat /data/f; touch /data/g 2>/dev/null && echo data-rw || echo data-ro; "
        "echo done > /dev/termination-log; cat /etc/hosts"
    )
    security = SecurityConfig(run_as_user=65534, read_only_rootfs=True, supplemental_groups=[1234])
    cid = await h.run(
        sid,
        sandbox,
        "app",
        script,
        security=security,
        mounts=[Mount("/data", str(data), read_only=True)],
        termination_message_host_path=termination,
    )
    status = await h.exited(cid)
    assert _output(status) == [
        "65534",
        "65534",
        "65534 1234",
        "/home",
        "rootfs-ro",
        "from-host",
        "data-ro",
        "127.0.0.1 localhost",
    ]
    assert status.reason == "Completed"
    assert termination.read_text() == "done\n"


async def test_capabilities_seccomp_and_cgroup_limits(h: Harness):
    sandbox = h.sandbox_config()
    sid = await h.runtime.run_sandbox(sandbox)
    probe = (
        "grep -E '^(Seccomp|CapEff):' /proc/self/status | tr -s '\\t ' ' '; "
        "mkdir -p /mnt/t; mount -t tmpfs t /mnt/t 2>/dev/null && echo mount-ok || echo mount-denied; "
        "unshare -n true 2>/dev/null && echo unshare-ok || echo unshare-denied; "
        "wc -c < /proc/timer_list; echo end; sleep 300"
    )
    confined = await h.run(
        sid,
        sandbox,
        "confined",
        probe,
        resources=Resources(cpu_shares=512, cpu_quota=50_000, memory_limit=64 * 2**20),
    )
    privileged = await h.run(
        sid, sandbox, "privileged", probe, security=SecurityConfig(privileged=True)
    )
    await h.logged(confined, "end")
    await h.logged(privileged, "end")
    confined_out = _output(await h.runtime.container_status(confined))
    # containerd's default capability set: 0xa80425fb
    assert confined_out == [
        "CapEff: 00000000a80425fb",
        "Seccomp: 2",
        "mount-denied",
        "unshare-denied",
        "0",
        "end",
    ]
    privileged_out = _output(await h.runtime.container_status(privileged))
    assert privileged_out[1:4] == ["Seccomp: 0", "mount-ok", "unshare-ok"]
    assert int(privileged_out[4]) > 0  # /proc/timer_list is masked only without privileges

    cgroup = f"pocketkube/{sandbox.pod_uid}/{confined}"
    cpu = Path("/sys/fs/cgroup/cpu") / cgroup
    memory = Path("/sys/fs/cgroup/memory") / cgroup
    assert (cpu / "cpu.shares").read_text().strip() == "512"
    assert (cpu / "cpu.cfs_quota_us").read_text().strip() == "50000"
    assert (memory / "memory.limit_in_bytes").read_text().strip() == str(64 * 2**20)


async def test_host_network(h: Harness):
    sandbox = h.sandbox_config(host_network=True)
    sid = await h.runtime.run_sandbox(sandbox)
    status = await h.runtime.sandbox_status(sid)
    assert status is not None and (status.state, status.netns, status.ip) == ("ready", "", "")
    cid = await h.run(sid, sandbox, "app", "readlink /proc/self/ns/net; hostname")
    done = await h.exited(cid)
    assert _output(done) == [os.readlink("/proc/self/ns/net"), os.uname().nodename]
    assert h.network.made == set()
