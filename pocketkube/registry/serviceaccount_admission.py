"""ServiceAccount admission (kube's `plugin/pkg/admission/serviceaccount`), run on pod create.

Every pod runs as a ServiceAccount of its namespace. A new pod that names none runs as
`default`; the account it names must exist (the `default` one is created by the serviceaccount
controller a moment after its namespace, so a miss on it is retried briefly, as kube does);
unless the pod or its account opts out with `automountServiceAccountToken: false`, every init
and app container mounts a projected `kube-api-access-<suffix>` volume (a bound token, the
cluster CA from the `kube-root-ca.crt` ConfigMap, and the namespace) at
/var/run/secrets/kubernetes.io/serviceaccount; and a pod without imagePullSecrets inherits its
account's. Mirror pods (the API copies of a node's static pods) are never changed, and may not
reference service accounts, secrets or token projections.

The mutation is plain dict work on the pod (no library models a PodSpec as JSON the way the
API server stores it); the lookup goes through the registry's watch cache first and the store
second, as kube's plugin goes through its lister and then a live GET.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any

from pocketkube.api import errors
from pocketkube.registry.strategy import random_suffix

if TYPE_CHECKING:
    from pocketkube.registry.registry import Registry

Obj = dict[str, Any]

DEFAULT_SERVICE_ACCOUNT = "default"
MIRROR_ANNOTATION = "kubernetes.io/config.mirror"
ENFORCE_MOUNTABLE_SECRETS = "kubernetes.io/enforce-mountable-secrets"
VOLUME_PREFIX = "kube-api-access-"
TOKEN_MOUNT_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
# kube's WarnOnlyBoundTokenExpirationSeconds: one hour and seven seconds, a length no client
# asks for, so the token authenticator can tell these tokens apart.
TOKEN_EXPIRATION_SECONDS = 3607
PROJECTED_DEFAULT_MODE = 0o644
ROOT_CA_CONFIGMAP = "kube-root-ca.crt"
# The `default` account may trail its namespace by a moment: look it up this many times.
DEFAULT_ACCOUNT_ATTEMPTS = 10


def token_volume_source() -> Obj:
    """The projected source kube's admission writes (defaultMode set explicitly, as kube does
    since 1.22, so a later defaulting pass never changes what the pod shows)."""
    return {
        "sources": [
            {"serviceAccountToken": {"expirationSeconds": TOKEN_EXPIRATION_SECONDS,
                                     "path": "token"}},
            {"configMap": {"name": ROOT_CA_CONFIGMAP,
                           "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
            {"downwardAPI": {"items": [{"path": "namespace",
                                        "fieldRef": {"apiVersion": "v1",
                                                     "fieldPath": "metadata.namespace"}}]}},
        ],
        "defaultMode": PROJECTED_DEFAULT_MODE,
    }


def is_mirror_pod(pod: Obj) -> bool:
    return MIRROR_ANNOTATION in ((pod.get("metadata") or {}).get("annotations") or {})


def should_automount(account: Obj, spec: Obj) -> bool:
    """The pod's preference wins, then the account's; mounting is the default."""
    if spec.get("automountServiceAccountToken") is not None:
        return bool(spec["automountServiceAccountToken"])
    if account.get("automountServiceAccountToken") is not None:
        return bool(account["automountServiceAccountToken"])
    return True


def mount_token(spec: Obj, generate_name: Callable[[str], str] | None = None) -> None:
    """Mount the API access volume in every init and app container that has nothing at the
    token path yet, adding the volume when some container needs it. A volume already named
    `kube-api-access-…` is reused rather than added twice."""
    volumes = spec.get("volumes") or []
    name = next((v.get("name") for v in volumes if isinstance(v, dict) and
                 str(v.get("name") or "").startswith(VOLUME_PREFIX)), None)
    has_volume = name is not None
    if name is None:
        name = (generate_name or _generate_name)(VOLUME_PREFIX)
    needs_volume = False
    for key in ("initContainers", "containers"):
        for c in spec.get(key) or []:
            if not isinstance(c, dict):
                continue
            mounts = c.get("volumeMounts") or []
            if any(isinstance(m, dict) and m.get("mountPath") == TOKEN_MOUNT_PATH
                   for m in mounts):
                continue
            c["volumeMounts"] = [*mounts, {"name": name, "readOnly": True,
                                           "mountPath": TOKEN_MOUNT_PATH}]
            needs_volume = True
    if needs_volume and not has_volume:
        spec["volumes"] = [*volumes, {"name": name, "projected": token_volume_source()}]


def _generate_name(prefix: str) -> str:
    return prefix + random_suffix()


def mutate(pod: Obj, account: Obj, generate_name: Callable[[str], str] | None = None) -> None:
    """What admission does to a new (non-mirror) pod once its account is known: the token
    volume unless someone opted out, and the account's pull secrets when the pod has none."""
    spec = pod["spec"]
    if should_automount(account, spec):
        mount_token(spec, generate_name)
    if not spec.get("imagePullSecrets") and account.get("imagePullSecrets"):
        spec["imagePullSecrets"] = [{"name": (s or {}).get("name", "")}
                                    for s in account["imagePullSecrets"]]


def _secret_names(pod: Obj) -> Iterator[str]:
    """Every secret the pod refers to (kube's VisitPodSecretNames over all containers)."""
    spec = pod.get("spec") or {}
    for ref in spec.get("imagePullSecrets") or []:
        yield (ref or {}).get("name") or ""
    for key in ("initContainers", "containers", "ephemeralContainers"):
        for c in spec.get(key) or []:
            for env_from in (c or {}).get("envFrom") or []:
                yield ((env_from or {}).get("secretRef") or {}).get("name") or ""
            for env in (c or {}).get("env") or []:
                yield (((env or {}).get("valueFrom") or {}).get("secretKeyRef") or {}).get(
                    "name") or ""
    for vol in spec.get("volumes") or []:
        vol = vol or {}
        yield (vol.get("secret") or {}).get("secretName") or ""
        yield (vol.get("azureFile") or {}).get("secretName") or ""
        for kind in ("cephfs", "cinder", "flexVolume", "rbd", "scaleIO", "iscsi", "storageos"):
            yield ((vol.get(kind) or {}).get("secretRef") or {}).get("name") or ""
        yield ((vol.get("csi") or {}).get("nodePublishSecretRef") or {}).get("name") or ""
        for source in (vol.get("projected") or {}).get("sources") or []:
            yield ((source or {}).get("secret") or {}).get("name") or ""


def mirror_pod_problem(pod: Obj) -> str | None:
    """Why a mirror pod may not be created, or None."""
    spec = pod.get("spec") or {}
    if spec.get("serviceAccountName"):
        return "a mirror pod may not reference service accounts"
    if any(_secret_names(pod)):
        return "a mirror pod may not reference secrets"
    for vol in spec.get("volumes") or []:
        for source in ((vol or {}).get("projected") or {}).get("sources") or []:
            if (source or {}).get("serviceAccountToken") is not None:
                return "a mirror pod may not use ServiceAccountToken volume projections"
    return None


def secret_reference_problem(account: Obj, spec: Obj) -> str | None:
    """For an account annotated kubernetes.io/enforce-mountable-secrets=true: the first secret
    the pod uses that the account does not list, or None."""
    sa = account["metadata"]["name"]
    mountable = {(s or {}).get("name") for s in account.get("secrets") or []}
    for vol in spec.get("volumes") or []:
        secret = (vol or {}).get("secret")
        if secret is not None and secret.get("secretName", "") not in mountable:
            return (f'volume with secret.secretName="{secret.get("secretName", "")}" is not '
                    f"allowed because service account {sa} does not reference that secret")
    for key, what in (("initContainers", "init container"), ("containers", "container")):
        for c in spec.get(key) or []:
            for env in c.get("env") or []:
                ref = (env.get("valueFrom") or {}).get("secretKeyRef")
                if ref is not None and ref.get("name", "") not in mountable:
                    return (f"{what} {c.get('name', '')} with envVar {env.get('name', '')} "
                            f'referencing secret.secretName="{ref.get("name", "")}" is not '
                            f"allowed because service account {sa} does not reference that "
                            "secret")
            for env_from in c.get("envFrom") or []:
                ref = env_from.get("secretRef")
                if ref is not None and ref.get("name", "") not in mountable:
                    return (f"{what} {c.get('name', '')} with envFrom referencing "
                            f'secret.secretName="{ref.get("name", "")}" is not allowed because '
                            f"service account {sa} does not reference that secret")
    pull = {(s or {}).get("name") for s in account.get("imagePullSecrets") or []}
    for i, ref in enumerate(spec.get("imagePullSecrets") or []):
        if (ref or {}).get("name") not in pull:
            return (f'imagePullSecrets[{i}].name="{(ref or {}).get("name", "")}" is not allowed '
                    f"because service account {sa} does not reference that imagePullSecret")
    return None


def _enforces_mountable_secrets(account: Obj) -> bool:
    value = ((account.get("metadata") or {}).get("annotations") or {}).get(
        ENFORCE_MOUNTABLE_SECRETS, "")
    # Go's strconv.ParseBool: anything else counts as false.
    return value in ("1", "t", "T", "true", "TRUE", "True")


def forbidden(pod: Obj, why: str) -> errors.StatusError:
    """kube's admission.NewForbidden: the pod's name, or its generateName prefix when the
    name was generated (admission runs before kube generates names)."""
    meta = pod.get("metadata") or {}
    name, prefix = meta.get("name") or "", meta.get("generateName") or ""
    if prefix and name.startswith(prefix) and len(name) == len(prefix) + 5:
        name = prefix
    name = name or "Unknown"
    return errors.StatusError(403, "Forbidden", f'pods "{name}" is forbidden: {why}',
                              {"name": name, "kind": "pods"})


async def lookup(registry: Registry, ns: str, name: str,
                 sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep) -> Obj:
    """The ServiceAccount, from the watch cache or else the store; `default` is asked for
    again a few times (one random 100–200 ms pause apart) before it counts as missing."""
    store = registry.store("", "serviceaccounts")
    account = store.cached(ns, name)
    if account is not None:
        return account
    attempts = DEFAULT_ACCOUNT_ATTEMPTS if name == DEFAULT_SERVICE_ACCOUNT else 1
    interval = (100 + random.randrange(100)) / 1000
    for attempt in range(attempts):
        if attempt:
            await sleep(interval)
        try:
            return await store.get(ns, name)
        except errors.StatusError as e:
            if e.code != 404:
                raise
    raise errors.not_found("serviceaccount", name)


async def admit_service_account(registry: Registry, pod: Obj,
                                sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
                                generate_name: Callable[[str], str] | None = None) -> None:
    """Admit a pod being created: mutate it as kube does, or raise 403 Forbidden."""
    spec = pod.get("spec")
    if not isinstance(spec, dict):
        return
    if is_mirror_pod(pod):
        problem = mirror_pod_problem(pod)
        if problem:
            raise forbidden(pod, problem)
        return
    ns = (pod.get("metadata") or {}).get("namespace") or ""
    if not spec.get("serviceAccountName"):
        spec["serviceAccountName"] = DEFAULT_SERVICE_ACCOUNT
    name = spec["serviceAccountName"]
    try:
        account = await lookup(registry, ns, name, sleep)
    except errors.StatusError as e:
        raise forbidden(pod, f"error looking up service account {ns}/{name}: "
                             f"{e.message}") from None
    mutate(pod, account, generate_name)
    if _enforces_mountable_secrets(account):
        problem = secret_reference_problem(account, spec)
        if problem:
            raise forbidden(pod, problem)
