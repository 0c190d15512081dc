"""Defaults of Pods and of every embedded pod template.

Follows kubernetes `pkg/apis/core/v1/defaults.go` (`SetDefaults_PodSpec`, `_Pod`, `_Container`,
`_Probe`, `_Volume`, ...) and the generated `zz_generated.defaults.go` that applies them to each
nested struct, plus the `+default` markers of `k8s.io/api/core/v1` (port protocols, gRPC probe
service). Pod-only defaults (`enableServiceLinks`, requests copied from limits, host ports under
hostNetwork) are not applied to templates, exactly as in kube.
"""

from __future__ import annotations

from typing import Any

from pocketkube.api.defaulting.util import (
    child,
    existing,
    objects,
    set_if_empty,
    setdefault,
    template_meta,
)

DEFAULT_MODE = 420  # 0644


def image_pull_policy(image: str) -> str:
    """`Always` for `:latest` or an untagged image, else `IfNotPresent` (digests count as tagged,
    and a reference that does not parse has no tag at all)."""
    if not image or "@" in image or image != image.strip():
        return "IfNotPresent"
    last = image.rsplit("/", 1)[-1]
    repo, _, tag = last.partition(":")
    if repo != repo.lower():
        return "IfNotPresent"
    return "Always" if tag in ("", "latest") else "IfNotPresent"


def _handler(h: Any) -> None:
    http = existing(h, "httpGet")
    if http is not None:
        set_if_empty(http, "path", "/")
        set_if_empty(http, "scheme", "HTTP")
    grpc = existing(h, "grpc")
    if grpc is not None:
        setdefault(grpc, "service", "")


def _probe(probe: dict[str, Any] | None) -> None:
    if probe is None:
        return
    for key, value in (("timeoutSeconds", 1), ("periodSeconds", 10), ("successThreshold", 1),
                       ("failureThreshold", 3)):
        if probe.get(key) in (None, 0):
            probe[key] = value
    _handler(probe)


def _field_ref(ref: dict[str, Any] | None) -> None:
    if ref is not None:
        set_if_empty(ref, "apiVersion", "v1")


def container(c: dict[str, Any]) -> None:
    """`SetDefaults_Container` plus the defaults of its nested structs."""
    if not c.get("imagePullPolicy"):
        image = c.get("image")
        c["imagePullPolicy"] = image_pull_policy(image if isinstance(image, str) else "")
    set_if_empty(c, "terminationMessagePath", "/dev/termination-log")
    set_if_empty(c, "terminationMessagePolicy", "File")
    setdefault(c, "resources", {})
    for port in objects(c, "ports"):
        set_if_empty(port, "protocol", "TCP")
    for env in objects(c, "env"):
        _field_ref(existing(existing(env, "valueFrom"), "fieldRef"))
    for key in ("livenessProbe", "readinessProbe", "startupProbe"):
        _probe(existing(c, key))
    lifecycle = existing(c, "lifecycle")
    for key in ("postStart", "preStop"):
        _handler(existing(lifecycle, key))


_VOLUME_SOURCES = (
    "hostPath", "emptyDir", "gcePersistentDisk", "awsElasticBlockStore", "gitRepo", "secret",
    "nfs", "iscsi", "glusterfs", "persistentVolumeClaim", "rbd", "flexVolume", "cinder", "cephfs",
    "flocker", "downwardAPI", "fc", "azureFile", "configMap", "vsphereVolume", "quobyte",
    "azureDisk", "photonPersistentDisk", "projected", "portworxVolume", "scaleIO", "storageos",
    "csi", "ephemeral", "image",
)


def volume(v: dict[str, Any]) -> None:
    """`SetDefaults_Volume` and the volume-source defaults."""
    if not any(v.get(k) is not None for k in _VOLUME_SOURCES):
        v["emptyDir"] = {}
    for key in ("secret", "configMap", "downwardAPI", "projected"):
        setdefault(existing(v, key), "defaultMode", DEFAULT_MODE)
    for item in objects(existing(v, "downwardAPI"), "items"):
        _field_ref(existing(item, "fieldRef"))
    for source in objects(existing(v, "projected"), "sources"):
        token = existing(source, "serviceAccountToken")
        setdefault(token, "expirationSeconds", 3600)
        for item in objects(existing(source, "downwardAPI"), "items"):
            _field_ref(existing(item, "fieldRef"))
    setdefault(existing(v, "hostPath"), "type", "")
    for key, defaults in (("rbd", (("pool", "rbd"), ("user", "admin"), ("keyring", "/etc/ceph/keyring"))),
                          ("iscsi", (("iscsiInterface", "default"),)),
                          ("azureDisk", (("cachingMode", "ReadWrite"), ("fsType", "ext4"),
                                         ("readOnly", False), ("kind", "Shared"))),
                          ("scaleIO", (("storageMode", "ThinProvisioned"), ("fsType", "xfs")))):
        src = existing(v, key)
        for field_name, value in defaults:
            set_if_empty(src, field_name, value)
    claim = existing(existing(v, "ephemeral"), "volumeClaimTemplate")
    if claim is not None:
        setdefault(existing(claim, "spec"), "volumeMode", "Filesystem")


def pod_spec(spec: dict[str, Any]) -> None:
    """`SetDefaults_PodSpec` and its nested structs (shared by pods and templates)."""
    set_if_empty(spec, "dnsPolicy", "ClusterFirst")
    set_if_empty(spec, "restartPolicy", "Always")
    setdefault(spec, "securityContext", {})
    setdefault(spec, "terminationGracePeriodSeconds", 30)
    set_if_empty(spec, "schedulerName", "default-scheduler")
    for key in ("initContainers", "containers", "ephemeralContainers"):
        for c in objects(spec, key):
            container(c)
    for v in objects(spec, "volumes"):
        volume(v)


def _copy_limits_to_requests(c: dict[str, Any]) -> None:
    res = existing(c, "resources")
    limits = existing(res, "limits")
    if limits is None or res is None:
        return
    requests = child(res, "requests")
    if requests is None:
        return
    for name, value in limits.items():
        requests.setdefault(name, value)


def pod(obj: dict[str, Any]) -> None:
    """`SetDefaults_Pod` followed by the pod spec defaults."""
    spec = child(obj, "spec")
    if spec is None:
        return
    for key in ("containers", "initContainers"):
        for c in objects(spec, key):
            _copy_limits_to_requests(c)
    setdefault(spec, "enableServiceLinks", True)
    if spec.get("hostNetwork") is True:
        for key in ("containers", "initContainers"):
            for c in objects(spec, key):
                for port in objects(c, "ports"):
                    if not port.get("hostPort"):
                        port["hostPort"] = port.get("containerPort")
    pod_spec(spec)
    # Without a priority class the Priority admission plugin resolves these to the defaults.
    if not spec.get("priorityClassName"):
        setdefault(spec, "priority", 0)
        setdefault(spec, "preemptionPolicy", "PreemptLowerPriority")


def template(tpl: dict[str, Any] | None) -> None:
    """A `PodTemplateSpec` as embedded in controllers and PodTemplates."""
    if tpl is None:
        return
    template_meta(tpl)
    spec = child(tpl, "spec")
    if spec is not None:
        pod_spec(spec)
