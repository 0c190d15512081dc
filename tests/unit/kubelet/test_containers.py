"""Container configuration from the pod spec: the argv merge with the image's
Entrypoint/Cmd, cgroup resources, the merged security context with kube's runAsNonRoot
messages, paths and labels."""

from __future__ import annotations

from pathlib import Path

import pytest

from pocketkube.kubelet import containers as ctr
from pocketkube.kubelet import envvars
from pocketkube.kubelet.runtime.interface import Image
from tests.unit.kubelet.fakes import pod


def image(entrypoint: list[str] | None = None, cmd: list[str] | None = None,
          user: str = "") -> Image:  # fmt: skip
    return Image("sha256:1", [], [], [], {"Entrypoint": entrypoint, "Cmd": cmd, "User": user}, 1)


@pytest.mark.parametrize(("entrypoint", "cmd", "command", "args", "argv"), [
    (None, ["sh"], None, None, ["sh"]),
    (["/ep"], ["a", "b"], None, None, ["/ep", "a", "b"]),
    (["/ep"], ["a", "b"], ["/bin/x"], None, ["/bin/x"]),  # command drops the image Cmd
    (["/ep"], ["a", "b"], None, ["c"], ["/ep", "c"]),  # args replace the Cmd
    (["/ep"], ["a", "b"], ["/bin/x"], ["y"], ["/bin/x", "y"]),
    (None, ["sh"], [], [], ["sh"]),  # empty lists count as unset
    (None, None, None, ["only"], ["only"]),
    (None, None, None, None, []),
])
def test_argv_merge(entrypoint: list[str] | None, cmd: list[str] | None,
                    command: list[str] | None, args: list[str] | None,
                    argv: list[str]) -> None:  # fmt: skip
    assert ctr.merge_argv({"Entrypoint": entrypoint, "Cmd": cmd}, command, args) == argv


def test_command_and_args_expand_container_variables() -> None:
    c = {"name": "c", "command": ["echo", "$(A)"], "args": ["$(B)", "$(MISSING)", "$$(A)"]}
    command, args = ctr.expand_argv(c, {"A": "1", "B": "2"}, envvars.expand)
    assert command == ["echo", "1"]
    assert args == ["2", "$(MISSING)", "$(A)"]


@pytest.mark.parametrize(("milli", "shares"), [(0, 2), (1, 2), (100, 102), (250, 256),
                                               (1000, 1024), (4000, 4096)])
def test_cpu_shares(milli: int, shares: int) -> None:
    assert ctr.milli_cpu_to_shares(milli) == shares


@pytest.mark.parametrize(("milli", "quota"), [(0, 0), (5, 1000), (100, 10000), (1500, 150000)])
def test_cpu_quota(milli: int, quota: int) -> None:
    assert ctr.milli_cpu_to_quota(milli) == quota


def test_resources_from_requests_and_limits() -> None:
    c = {"name": "c", "resources": {"requests": {"cpu": "250m", "memory": "64Mi"},
                                    "limits": {"cpu": "500m", "memory": "128Mi"}}}
    p = pod(containers=[c])
    p["status"]["qosClass"] = "Burstable"
    r = ctr.resources(p, c, capacity=8 * 1024**3)
    assert (r.cpu_shares, r.cpu_quota, r.cpu_period) == (256, 50000, 100000)
    assert r.memory_limit == 128 * 1024**2
    assert r.oom_score_adj == 1000 - (1000 * 64 * 1024**2) // (8 * 1024**3)


def test_cpu_shares_fall_back_to_the_limit() -> None:
    c = {"name": "c", "resources": {"limits": {"cpu": "2"}}}
    r = ctr.resources(pod(containers=[c]), c, capacity=1)
    assert r.cpu_shares == 2048 and r.cpu_quota == 200000


def test_qos_classes() -> None:
    def q(res: dict) -> str:
        p = pod(containers=[{"name": "c", "resources": res}])
        del p["status"]["qosClass"]
        return ctr.qos_class(p)

    both = {"cpu": "1", "memory": "1Gi"}
    assert q({}) == "BestEffort"
    assert q({"requests": both, "limits": both}) == "Guaranteed"
    assert q({"requests": {"cpu": "1"}}) == "Burstable"


def test_security_merges_pod_and_container() -> None:
    p = pod(securityContext={"runAsUser": 1000, "runAsGroup": 3000, "fsGroup": 2000,
                             "supplementalGroups": [4000],
                             "seccompProfile": {"type": "RuntimeDefault"}})
    c = {"name": "c", "securityContext": {
        "runAsUser": 1001, "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
        "capabilities": {"add": ["NET_ADMIN"], "drop": ["ALL"]}}}
    s = ctr.security(p, c, image())
    assert (s.run_as_user, s.run_as_group) == (1001, 3000)
    assert s.supplemental_groups == [2000, 4000]
    assert s.no_new_privs and s.read_only_rootfs and not s.privileged
    assert s.add_capabilities == ["NET_ADMIN"] and s.drop_capabilities == ["ALL"]
    assert s.seccomp == "RuntimeDefault"
    assert ctr.security(pod(), {"name": "c"}, image()).seccomp == "Unconfined"
    local = {"name": "c", "securityContext": {
        "seccompProfile": {"type": "Localhost", "localhostProfile": "p.json"}}}
    assert ctr.security(pod(), local, image()).seccomp == "Localhost/p.json"


WHERE = '(pod: "p_default(uid-p)", container: c)'


@pytest.mark.parametrize(("pod_sc", "user", "message"), [
    ({"runAsNonRoot": True}, "", f"container has runAsNonRoot and image will run as root {WHERE}"),
    ({"runAsNonRoot": True}, "0:0",
     f"container has runAsNonRoot and image will run as root {WHERE}"),
    ({"runAsNonRoot": True}, "nobody",
     "container has runAsNonRoot and image has non-numeric user (nobody), cannot verify user "
     f"is non-root {WHERE}"),
    ({"runAsNonRoot": True, "runAsUser": 0}, "1000",
     f"container's runAsUser breaks non-root policy {WHERE}"),
    ({"runAsNonRoot": True}, "1000", None),
    ({"runAsNonRoot": True, "runAsUser": 5}, "", None),
    ({}, "", None),
])
def test_run_as_non_root(pod_sc: dict, user: str, message: str | None) -> None:
    p = pod(securityContext=pod_sc)
    if message is None:
        ctr.security(p, {"name": "c"}, image(user=user))
    else:
        with pytest.raises(ctr.ContainerConfigError) as e:
            ctr.security(p, {"name": "c"}, image(user=user))
        assert e.value.message == message


def test_image_user_names_are_kept_for_the_runtime() -> None:
    s = ctr.security(pod(), {"name": "c"}, image(user="www-data:www-data"))
    assert s.run_as_user is None and s.run_as_username == "www-data"


def test_paths_and_labels(tmp_path: Path) -> None:
    p = pod()
    assert ctr.log_path(tmp_path, p, "c", 3) == tmp_path / "logs/pods/default_p_uid-p/c/3.log"
    logs = tmp_path / "logs"
    logs.mkdir()
    for name in ("0.log", "4.log", "2.log.20240101", "x.log"):
        (logs / name).touch()
    assert ctr.restart_count_from_logs(logs) == 5
    assert ctr.restart_count_from_logs(tmp_path / "missing") == 0
    term = ctr.make_termination_file(tmp_path, p, {"name": "c"})
    assert term.parent == tmp_path / "pods/uid-p/containers/c" and term.stat().st_mode & 0o666
    labels = ctr.labels(p, p["spec"]["containers"][0], 2, term, init=False)
    assert labels["io.kubernetes.pod.uid"] == "uid-p"
    assert labels["io.kubernetes.container.restartCount"] == "2"
    assert ctr.container_hash({"name": "c", "image": "a"}) != \
        ctr.container_hash({"name": "c", "image": "b"})
    assert ctr.container_hash({"name": "c", "image": "a", "env": [{"name": "X"}]}) == \
        ctr.container_hash({"name": "c", "image": "a"})
