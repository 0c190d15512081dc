"""kubectl get: server-side tables, output formats, defaults seen in the stored object, label and
field selectors, all namespaces, label columns, sorting, pagination and watch."""

from __future__ import annotations

import json
import queue
import subprocess
import threading
import time

import yaml

from tests.e2e.conftest import Kubectl
from tests.e2e.manifests import configmap, deployment, pod
from tests.support.cluster import Cluster

WATCH_TIMEOUT = 20.0


def rows(text: str) -> list[list[str]]:
    return [line.split() for line in text.splitlines()]


def names(k: Kubectl, *args: str) -> list[str]:
    out = k("get", *args, "-o", "name").stdout.split()
    return [n.split("/", 1)[1] for n in out]


def test_deployment_table_and_wide(k: Kubectl) -> None:
    k.apply(deployment("web"))
    # No node runs the pods, so nothing becomes ready; UP-TO-DATE depends on whether a
    # deployment controller has acted yet.
    table = rows(k("get", "deployments").stdout)
    assert table[0] == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert table[1][:2] == ["web", "0/1"] and table[1][2] in ("0", "1") and table[1][3] == "0"
    wide = rows(k("get", "deployment", "web", "-o", "wide").stdout)
    assert wide[0] == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE", "CONTAINERS", "IMAGES",
                       "SELECTOR"]
    assert wide[1][:2] == ["web", "0/1"]
    assert wide[1][5:] == ["app", "nginx:1.25", "app=web"]


def test_pod_table(k: Kubectl) -> None:
    k.apply(pod("p1"))
    table = rows(k("get", "pods").stdout)
    assert table[0] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert table[1][:4] == ["p1", "0/1", "Pending", "0"]
    wide = rows(k("get", "pods", "-o", "wide").stdout)
    assert wide[0] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE",
                       "NOMINATED", "NODE", "READINESS", "GATES"]
    assert wide[1][5:] == ["<none>", "<none>", "<none>", "<none>"]


def test_defaults_in_yaml_and_json(k: Kubectl) -> None:
    k.apply(deployment("web"))
    for fmt in ("yaml", "json"):
        text = k("get", "deployment", "web", "-o", fmt).stdout
        d = yaml.safe_load(text) if fmt == "yaml" else json.loads(text)
        spec = d["spec"]
        assert spec["strategy"] == {"type": "RollingUpdate",
                                    "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}
        assert spec["revisionHistoryLimit"] == 10
        assert spec["progressDeadlineSeconds"] == 600
        pspec = spec["template"]["spec"]
        assert pspec["restartPolicy"] == "Always"
        assert pspec["dnsPolicy"] == "ClusterFirst"
        assert pspec["schedulerName"] == "default-scheduler"
        assert pspec["terminationGracePeriodSeconds"] == 30
        assert pspec["securityContext"] == {}
        c = pspec["containers"][0]
        assert c["terminationMessagePath"] == "/dev/termination-log"
        assert c["terminationMessagePolicy"] == "File"
        assert c["imagePullPolicy"] == "IfNotPresent"
        meta = d["metadata"]
        assert meta["namespace"] == k.ns
        assert meta["generation"] == 1
        assert meta["uid"] and meta["resourceVersion"] and meta["creationTimestamp"]


def test_get_all(k: Kubectl) -> None:
    k.apply([deployment("web"), pod("p1"), configmap("not-in-all")])
    k("expose", "deployment", "web", "--port=80")
    out = k("get", "all", "-o", "name").stdout.split()
    assert "pod/p1" in out
    assert "service/web" in out
    assert "deployment.apps/web" in out
    assert not [n for n in out if n.startswith("configmap/")]


def test_jsonpath_and_name(k: Kubectl) -> None:
    k.apply(deployment("web"))
    image = k("get", "deployment", "web", "-o",
              "jsonpath={.spec.template.spec.containers[0].image}").stdout
    assert image == "nginx:1.25"
    assert k("get", "deployment", "web", "-o", "name").stdout == "deployment.apps/web\n"
    assert k("get", "deployments", "-o", "jsonpath={.items[*].metadata.name}").stdout == "web"


def _three_pods(k: Kubectl) -> None:
    k.apply([pod("p1", {"app": "web", "tier": "fe"}), pod("p2", {"app": "web", "tier": "be"}),
             pod("p3", {"app": "db"})])


def test_label_selectors(k: Kubectl) -> None:
    _three_pods(k)
    assert names(k, "pods", "-l", "app=web") == ["p1", "p2"]
    assert names(k, "pods", "-l", "app==web,tier=fe") == ["p1"]
    assert names(k, "pods", "-l", "app!=web") == ["p3"]
    assert names(k, "pods", "-l", "tier in (fe,x)") == ["p1"]
    assert names(k, "pods", "-l", "tier notin (fe)") == ["p2", "p3"]
    assert names(k, "pods", "-l", "tier") == ["p1", "p2"]
    assert names(k, "pods", "-l", "!tier") == ["p3"]
    proc = k("get", "pods", "-l", "app=nothing")
    assert proc.stdout == ""
    assert proc.stderr == f"No resources found in {k.ns} namespace.\n"


def test_field_selectors(k: Kubectl) -> None:
    _three_pods(k)
    assert names(k, "pods", "--field-selector", "metadata.name=p2") == ["p2"]
    assert names(k, "pods", "--field-selector", "metadata.name!=p2") == ["p1", "p3"]
    assert names(k, "pods", "--field-selector", "status.phase=Pending") == ["p1", "p2", "p3"]
    assert names(k, "pods", "--field-selector", "status.phase=Running") == []
    assert names(k, "pods", "--field-selector", "status.phase!=Running,metadata.name=p3") == \
        ["p3"]
    proc = k("get", "pods", "--field-selector", "spec.bogus=1", check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip() == ('Error from server (BadRequest): Unable to find "/v1, '
                                   'Resource=pods" that match label selector "", field selector '
                                   '"spec.bogus=1": field label not supported: spec.bogus')


def test_all_namespaces_and_label_columns(k: Kubectl) -> None:
    _three_pods(k)
    table = rows(k("get", "pods", "-A").stdout)
    assert table[0] == ["NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    mine = [r for r in table[1:] if r[0] == k.ns]
    assert [r[1] for r in mine] == ["p1", "p2", "p3"]

    shown = rows(k("get", "pods", "--show-labels").stdout)
    assert shown[0][-1] == "LABELS"
    assert {r[0]: r[-1] for r in shown[1:]} == {"p1": "app=web,tier=fe", "p2": "app=web,tier=be",
                                               "p3": "app=db"}
    extra = rows(k("get", "pods", "-L", "tier,app").stdout)
    assert extra[0][-2:] == ["TIER", "APP"]
    assert {r[0]: r[5:] for r in extra[1:]} == {"p1": ["fe", "web"], "p2": ["be", "web"],
                                                "p3": ["db"]}


def test_sort_by(k: Kubectl) -> None:
    k.apply([configmap("c-a", {"rank": "3"}, {"set": "sort"}),
             configmap("c-b", {"rank": "1"}, {"set": "sort"}),
             configmap("c-c", {"rank": "2"}, {"set": "sort"})])
    table = rows(k("get", "configmaps", "-l", "set=sort", "--sort-by=.data.rank").stdout)
    assert table[0] == ["NAME", "DATA", "AGE"]
    assert [r[0] for r in table[1:]] == ["c-b", "c-c", "c-a"]
    by_name = rows(k("get", "configmaps", "-l", "set=sort",
                     "--sort-by=.metadata.name").stdout)
    assert [r[0] for r in by_name[1:]] == ["c-a", "c-b", "c-c"]


def test_pagination_with_chunk_size(k: Kubectl) -> None:
    k.apply([configmap(f"page-{i}", labels={"set": "page"}) for i in range(5)])
    proc = k("get", "configmaps", "-l", "set=page", "--chunk-size=2", "-v=6")
    assert [r[0] for r in rows(proc.stdout)[1:]] == [f"page-{i}" for i in range(5)]
    requests = [line for line in proc.stderr.splitlines() if "GET https://" in line]
    assert len(requests) == 3, proc.stderr
    assert sum("continue=" in line for line in requests) == 2
    assert all("limit=2" in line for line in requests)
    # The same with -o name (no tables).
    assert names(k, "configmaps", "-l", "set=page", "--chunk-size=2") == \
        [f"page-{i}" for i in range(5)]


class LineReader:
    """Reads a process's stdout on a thread so tests can wait for lines with a timeout."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def next(self, timeout: float = WATCH_TIMEOUT) -> list[str]:
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no output from {self.proc.args} in {timeout}s") from None
        if line is None:
            err = self.proc.stderr.read() if self.proc.stderr else ""
            raise AssertionError(f"{self.proc.args} ended early: {err}")
        return line.split()

    def until(self, predicate, timeout: float = WATCH_TIMEOUT) -> list[str]:
        deadline = time.monotonic() + timeout
        seen = []
        while True:
            row = self.next(max(0.1, deadline - time.monotonic()))
            seen.append(row)
            if predicate(row):
                return row
            if time.monotonic() > deadline:
                raise AssertionError(f"no matching line; saw {seen}")


def test_get_watch_with_events(cluster: Cluster, k: Kubectl) -> None:
    k.apply(pod("w0"))
    proc = cluster.kubectl_popen("-n", k.ns, "get", "pods", "-w", "--output-watch-events",
                                 "--show-labels")
    try:
        out = LineReader(proc)
        assert out.next() == ["EVENT", "NAME", "READY", "STATUS", "RESTARTS", "AGE", "LABELS"]
        assert out.next()[:4] == ["ADDED", "w0", "0/1", "Pending"]
        k.apply(pod("w1"))
        assert out.until(lambda r: r[1] == "w1")[:4] == ["ADDED", "w1", "0/1", "Pending"]
        k("label", "pod", "w1", "x=y")
        # The scheduler may write the pod's status too (MODIFIED rows without the label).
        row = out.until(lambda r: r[0] != "MODIFIED" or r[-1] == "x=y")
        assert (row[0], row[1], row[-1]) == ("MODIFIED", "w1", "x=y")
        k("delete", "pod", "w1")
        # Skipping any status writes, the next event is the deletion.
        row = out.until(lambda r: r[0] != "MODIFIED")
        assert row[:2] == ["DELETED", "w1"]
    finally:
        proc.kill()
        proc.wait()
