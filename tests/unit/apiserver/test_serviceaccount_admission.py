"""ServiceAccount admission on pod create: defaulting, the token volume, mirror pods, lookups."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest

from pocketkube.api import errors
from pocketkube.registry import serviceaccount_admission as sa_adm

MOUNT_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"


def pod(**spec: Any) -> dict[str, Any]:
    spec.setdefault("containers", [{"name": "c", "image": "busybox"}])
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "ns"}, "spec": spec}


def account(name: str = "default", **fields: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": name, "namespace": "ns"}, **fields}


def fixed(prefix: str) -> str:
    return prefix + "abcde"


class FakeStore:
    """The two reads admission makes: the watch cache, then the store."""

    def __init__(self, cached: dict[str, Any], stored: list[dict[str, Any] | None],
                 fail: errors.StatusError | None = None) -> None:
        self._cached = cached
        self.stored = stored  # answers of successive gets; None is a 404
        self.fail = fail
        self.gets = 0

    def cached(self, ns: str | None, name: str) -> dict[str, Any] | None:
        return self._cached.get(f"{ns}/{name}")

    async def get(self, ns: str | None, name: str) -> dict[str, Any]:
        self.gets += 1
        if self.fail is not None:
            raise self.fail
        answer = self.stored.pop(0) if self.stored else None
        if answer is None:
            raise errors.not_found("serviceaccounts", name)
        return answer


class FakeRegistry:
    def __init__(self, store: FakeStore) -> None:
        self._store = store

    def store(self, group: str, plural: str) -> FakeStore:
        assert (group, plural) == ("", "serviceaccounts")
        return self._store


class Sleeps:
    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def test_token_volume_is_kubes_projected_source() -> None:
    assert sa_adm.token_volume_source() == {
        "sources": [
            {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
            {"configMap": {"name": "kube-root-ca.crt",
                           "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
            {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {
                "apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
        ],
        "defaultMode": 420,
    }


def test_every_container_mounts_one_generated_volume() -> None:
    p = pod(initContainers=[{"name": "i", "image": "busybox"}],
            containers=[{"name": "a", "image": "busybox"},
                        {"name": "b", "image": "busybox",
                         "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
            volumes=[{"name": "data", "emptyDir": {}}])
    sa_adm.mutate(p, account())
    spec = p["spec"]
    assert [v["name"] for v in spec["volumes"]][0] == "data"
    name = spec["volumes"][1]["name"]
    assert re.fullmatch(r"kube-api-access-[bcdfghjklmnpqrstvwxz2456789]{5}", name)
    assert spec["volumes"][1]["projected"] == sa_adm.token_volume_source()
    mount = {"name": name, "readOnly": True, "mountPath": MOUNT_PATH}
    assert spec["initContainers"][0]["volumeMounts"] == [mount]
    assert spec["containers"][0]["volumeMounts"] == [mount]
    assert spec["containers"][1]["volumeMounts"] == [{"name": "data", "mountPath": "/data"},
                                                     mount]


def test_containers_already_mounting_the_path_are_left_alone() -> None:
    own = {"name": "mine", "mountPath": MOUNT_PATH}
    p = pod(containers=[{"name": "a", "image": "x", "volumeMounts": [own]},
                        {"name": "b", "image": "x"}],
            volumes=[{"name": "mine", "emptyDir": {}}])
    sa_adm.mutate(p, account(), fixed)
    assert p["spec"]["containers"][0]["volumeMounts"] == [own]
    assert p["spec"]["containers"][1]["volumeMounts"] == [
        {"name": "kube-api-access-abcde", "readOnly": True, "mountPath": MOUNT_PATH}]
    assert [v["name"] for v in p["spec"]["volumes"]] == ["mine", "kube-api-access-abcde"]


def test_no_volume_when_every_container_mounts_the_path_itself() -> None:
    own = {"name": "mine", "mountPath": MOUNT_PATH}
    p = pod(containers=[{"name": "a", "image": "x", "volumeMounts": [own]}],
            volumes=[{"name": "mine", "emptyDir": {}}])
    before = copy.deepcopy(p)
    sa_adm.mutate(p, account(), fixed)
    assert p == before


def test_an_existing_kube_api_access_volume_is_reused() -> None:
    existing = {"name": "kube-api-access-zzzzz", "emptyDir": {}}
    p = pod(volumes=[existing])
    sa_adm.mutate(p, account(), fixed)
    assert p["spec"]["volumes"] == [existing]
    assert p["spec"]["containers"][0]["volumeMounts"] == [
        {"name": "kube-api-access-zzzzz", "readOnly": True, "mountPath": MOUNT_PATH}]


def test_ephemeral_containers_are_not_mounted_on_create() -> None:
    p = pod(ephemeralContainers=[{"name": "e", "image": "x"}])
    sa_adm.mutate(p, account(), fixed)
    assert "volumeMounts" not in p["spec"]["ephemeralContainers"][0]


@pytest.mark.parametrize(("pod_says", "account_says", "mounted"), [
    (None, None, True),
    (False, None, False),
    (None, False, False),
    (True, False, True),
    (False, True, False),
])
def test_automount_preference(pod_says: bool | None, account_says: bool | None,
                              mounted: bool) -> None:
    p = pod() if pod_says is None else pod(automountServiceAccountToken=pod_says)
    sa = account() if account_says is None else account(automountServiceAccountToken=account_says)
    sa_adm.mutate(p, sa, fixed)
    assert ("volumes" in p["spec"]) is mounted
    assert ("volumeMounts" in p["spec"]["containers"][0]) is mounted


def test_pull_secrets_come_from_the_account_only_when_the_pod_has_none() -> None:
    sa = account(imagePullSecrets=[{"name": "reg1"}, {"name": "reg2"}])
    p = pod()
    sa_adm.mutate(p, sa, fixed)
    assert p["spec"]["imagePullSecrets"] == [{"name": "reg1"}, {"name": "reg2"}]
    own = pod(imagePullSecrets=[{"name": "mine"}])
    sa_adm.mutate(own, sa, fixed)
    assert own["spec"]["imagePullSecrets"] == [{"name": "mine"}]
    none = pod()
    sa_adm.mutate(none, account(), fixed)
    assert "imagePullSecrets" not in none["spec"]


@pytest.mark.parametrize(("spec", "problem"), [
    ({"serviceAccountName": "default"}, "a mirror pod may not reference service accounts"),
    ({"volumes": [{"name": "s", "secret": {"secretName": "x"}}]},
     "a mirror pod may not reference secrets"),
    ({"imagePullSecrets": [{"name": "reg"}]}, "a mirror pod may not reference secrets"),
    ({"containers": [{"name": "c", "image": "x", "envFrom": [{"secretRef": {"name": "s"}}]}]},
     "a mirror pod may not reference secrets"),
    ({"volumes": [{"name": "t", "projected": {"sources": [
        {"serviceAccountToken": {"path": "token"}}]}}]},
     "a mirror pod may not use ServiceAccountToken volume projections"),
    ({"volumes": [{"name": "d", "emptyDir": {}}]}, None),
])
def test_mirror_pod_restrictions(spec: dict[str, Any], problem: str | None) -> None:
    assert sa_adm.mirror_pod_problem(pod(**spec)) == problem


def test_mountable_secret_enforcement_messages() -> None:
    sa = account("builder", secrets=[{"name": "ok"}], imagePullSecrets=[{"name": "reg"}])
    assert sa_adm.secret_reference_problem(sa, pod(volumes=[
        {"name": "v", "secret": {"secretName": "ok"}}])["spec"]) is None
    assert sa_adm.secret_reference_problem(sa, pod(volumes=[
        {"name": "v", "secret": {"secretName": "nope"}}])["spec"]) == (
        'volume with secret.secretName="nope" is not allowed because service account builder '
        "does not reference that secret")
    env = [{"name": "PW", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "k"}}}]
    assert sa_adm.secret_reference_problem(sa, pod(initContainers=[
        {"name": "i", "image": "x", "env": env}])["spec"]) == (
        'init container i with envVar PW referencing secret.secretName="nope" is not allowed '
        "because service account builder does not reference that secret")
    assert sa_adm.secret_reference_problem(sa, pod(containers=[
        {"name": "c", "image": "x", "envFrom": [{"secretRef": {"name": "nope"}}]}])["spec"]) == (
        'container c with envFrom referencing secret.secretName="nope" is not allowed because '
        "service account builder does not reference that secret")
    assert sa_adm.secret_reference_problem(sa, pod(imagePullSecrets=[
        {"name": "reg"}, {"name": "other"}])["spec"]) == (
        'imagePullSecrets[1].name="other" is not allowed because service account builder does '
        "not reference that imagePullSecret")


def test_forbidden_names_the_pod_or_its_generate_name() -> None:
    e = sa_adm.forbidden(pod(), "why")
    assert (e.code, e.reason, e.message) == (403, "Forbidden", 'pods "p" is forbidden: why')
    assert e.details == {"name": "p", "kind": "pods"}
    generated = pod()
    generated["metadata"].update(name="web-x7k2q", generateName="web-")
    assert sa_adm.forbidden(generated, "why").message == 'pods "web-" is forbidden: why'


async def test_cached_account_needs_no_store_read() -> None:
    store = FakeStore({"ns/default": account()}, [])
    p = pod()
    await sa_adm.admit_service_account(FakeRegistry(store), p, generate_name=fixed)
    assert store.gets == 0
    assert p["spec"]["serviceAccountName"] == "default"
    assert p["spec"]["volumes"][0]["name"] == "kube-api-access-abcde"


async def test_default_account_is_retried_until_the_controller_creates_it() -> None:
    store = FakeStore({}, [None, None, account()])
    sleeps = Sleeps()
    p = pod()
    await sa_adm.admit_service_account(FakeRegistry(store), p, sleep=sleeps)
    assert store.gets == 3
    assert len(sleeps.calls) == 2 and sleeps.calls[0] == sleeps.calls[1]
    assert 0.1 <= sleeps.calls[0] < 0.2
    assert "volumes" in p["spec"]


async def test_missing_default_account_is_forbidden_after_ten_lookups() -> None:
    store = FakeStore({}, [])
    sleeps = Sleeps()
    with pytest.raises(errors.StatusError) as info:
        await sa_adm.admit_service_account(FakeRegistry(store), pod(), sleep=sleeps)
    assert store.gets == 10 and len(sleeps.calls) == 9
    assert info.value.code == 403
    assert info.value.message == ('pods "p" is forbidden: error looking up service account '
                                  'ns/default: serviceaccount "default" not found')


async def test_missing_named_account_is_looked_up_once() -> None:
    store = FakeStore({}, [])
    sleeps = Sleeps()
    with pytest.raises(errors.StatusError) as info:
        await sa_adm.admit_service_account(FakeRegistry(store), pod(serviceAccountName="sa"),
                                           sleep=sleeps)
    assert store.gets == 1 and sleeps.calls == []
    assert info.value.message == ('pods "p" is forbidden: error looking up service account '
                                  'ns/sa: serviceaccount "sa" not found')
    assert info.value.details == {"name": "p", "kind": "pods"}


async def test_other_lookup_errors_are_forbidden_with_their_message() -> None:
    store = FakeStore({}, [], fail=errors.internal("backend down"))
    with pytest.raises(errors.StatusError) as info:
        await sa_adm.admit_service_account(FakeRegistry(store), pod(serviceAccountName="sa"))
    assert store.gets == 1
    assert info.value.code == 403
    assert info.value.message.startswith(
        'pods "p" is forbidden: error looking up service account ns/sa: ')
    assert "backend down" in info.value.message


async def test_mirror_pods_are_not_mutated_nor_looked_up() -> None:
    store = FakeStore({}, [])
    p = pod()
    p["metadata"]["annotations"] = {"kubernetes.io/config.mirror": "hash"}
    before = copy.deepcopy(p)
    await sa_adm.admit_service_account(FakeRegistry(store), p)
    assert p == before and store.gets == 0
    p["spec"]["serviceAccountName"] = "default"
    with pytest.raises(errors.StatusError) as info:
        await sa_adm.admit_service_account(FakeRegistry(store), p)
    assert info.value.message == ('pods "p" is forbidden: a mirror pod may not reference '
                                  "service accounts")


async def test_enforced_mountable_secrets_reject_other_secrets() -> None:
    sa = account("builder", secrets=[{"name": "ok"}],
                 metadata={"name": "builder", "namespace": "ns",
                           "annotations": {"kubernetes.io/enforce-mountable-secrets": "true"}})
    store = FakeStore({"ns/builder": sa}, [])
    p = pod(serviceAccountName="builder", volumes=[{"name": "v", "secret": {"secretName": "no"}}])
    with pytest.raises(errors.StatusError) as info:
        await sa_adm.admit_service_account(FakeRegistry(store), p)
    assert info.value.message == (
        'pods "p" is forbidden: volume with secret.secretName="no" is not allowed because '
        "service account builder does not reference that secret")
    sa["metadata"]["annotations"]["kubernetes.io/enforce-mountable-secrets"] = "false"
    await sa_adm.admit_service_account(FakeRegistry(store), p)
