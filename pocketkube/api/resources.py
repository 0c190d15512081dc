"""The table of API resources the server serves.

One entry per resource: its group/version, names, scope, verbs and subresources, as kube-apiserver
advertises them in discovery (short names and `categories: ["all"]` included). Routing, discovery,
OpenAPI and storage keys are all derived from this table.
"""

from __future__ import annotations

from dataclasses import dataclass, field

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
READ_VERBS = ("get", "list")
SUB_VERBS = ("get", "patch", "update")


@dataclass(frozen=True)
class Subresource:
    name: str
    kind: str  # response kind
    verbs: tuple[str, ...] = SUB_VERBS
    group: str | None = None  # response group/version when it differs from the parent
    version: str | None = None


@dataclass(frozen=True)
class Resource:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ALL_VERBS
    subresources: tuple[Subresource, ...] = ()
    # Stored in the store (False for virtual resources such as reviews and componentstatuses).
    stored: bool = True
    # Another served version whose objects this one reads and writes through conversion.
    storage_version: str | None = None

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def api_version(self) -> str:
        return self.group_version

    @property
    def qualified(self) -> str:
        """`deployments.apps` — the name used in error messages."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def key_prefix(self) -> str:
        """Store key prefix, one per group+resource (kube's `/registry/<group>/<resource>/`)."""
        g = self.group or "core"
        return f"/registry/{g}/{self.plural}/"

    def key(self, namespace: str | None, name: str) -> str:
        if self.namespaced:
            return f"{self.key_prefix}{namespace}/{name}"
        return f"{self.key_prefix}{name}"

    def prefix(self, namespace: str | None) -> str:
        if self.namespaced and namespace:
            return f"{self.key_prefix}{namespace}/"
        return self.key_prefix

    def subresource(self, name: str) -> Subresource | None:
        for s in self.subresources:
            if s.name == name:
                return s
        return None


def _status(kind: str) -> Subresource:
    return Subresource("status", kind)


def _scale() -> Subresource:
    return Subresource("scale", "Scale", group="autoscaling", version="v1")


ALL = ("all",)
CREATE_ONLY = ("create",)

RESOURCES: tuple[Resource, ...] = (
    # core/v1 — order matters for `kubectl get all` (pods, services, rc, then apps).
    Resource("", "v1", "bindings", "Binding", verbs=CREATE_ONLY, stored=False),
    Resource("", "v1", "componentstatuses", "ComponentStatus", namespaced=False,
             short_names=("cs",), verbs=READ_VERBS, stored=False),
    Resource("", "v1", "configmaps", "ConfigMap", short_names=("cm",)),
    Resource("", "v1", "endpoints", "Endpoints", short_names=("ep",)),
    Resource("", "v1", "events", "Event", short_names=("ev",)),
    Resource("", "v1", "limitranges", "LimitRange", short_names=("limits",)),
    Resource("", "v1", "namespaces", "Namespace", namespaced=False, short_names=("ns",),
             verbs=("create", "delete", "get", "list", "patch", "update", "watch"),
             subresources=(_status("Namespace"),
                           Subresource("finalize", "Namespace", verbs=("update",)))),
    Resource("", "v1", "nodes", "Node", namespaced=False, short_names=("no",),
             subresources=(_status("Node"),
                           Subresource("proxy", "NodeProxyOptions",
                                       verbs=("create", "delete", "get", "patch", "update")))),
    Resource("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", short_names=("pvc",),
             subresources=(_status("PersistentVolumeClaim"),)),
    Resource("", "v1", "persistentvolumes", "PersistentVolume", namespaced=False,
             short_names=("pv",), subresources=(_status("PersistentVolume"),)),
    Resource("", "v1", "pods", "Pod", short_names=("po",), categories=ALL,
             subresources=(
                 Subresource("attach", "PodAttachOptions", verbs=("create", "get")),
                 Subresource("binding", "Binding", verbs=CREATE_ONLY),
                 Subresource("ephemeralcontainers", "Pod"),
                 Subresource("eviction", "Eviction", verbs=CREATE_ONLY, group="policy",
                             version="v1"),
                 Subresource("exec", "PodExecOptions", verbs=("create", "get")),
                 Subresource("log", "Pod", verbs=("get",)),
                 Subresource("portforward", "PodPortForwardOptions", verbs=("create", "get")),
                 Subresource("proxy", "PodProxyOptions",
                             verbs=("create", "delete", "get", "patch", "update")),
                 _status("Pod"),
             )),
    Resource("", "v1", "podtemplates", "PodTemplate"),
    Resource("", "v1", "replicationcontrollers", "ReplicationController", short_names=("rc",),
             categories=ALL, subresources=(_scale(), _status("ReplicationController"))),
    Resource("", "v1", "resourcequotas", "ResourceQuota", short_names=("quota",),
             subresources=(_status("ResourceQuota"),)),
    Resource("", "v1", "secrets", "Secret"),
    Resource("", "v1", "serviceaccounts", "ServiceAccount", short_names=("sa",),
             subresources=(Subresource("token", "TokenRequest", verbs=CREATE_ONLY,
                                       group="authentication.k8s.io", version="v1"),)),
    Resource("", "v1", "services", "Service", short_names=("svc",), categories=ALL,
             subresources=(Subresource("proxy", "ServiceProxyOptions",
                                       verbs=("create", "delete", "get", "patch", "update")),
                           _status("Service"))),
    # apps/v1
    Resource("apps", "v1", "controllerrevisions", "ControllerRevision"),
    Resource("apps", "v1", "daemonsets", "DaemonSet", short_names=("ds",), categories=ALL,
             subresources=(_status("DaemonSet"),)),
    Resource("apps", "v1", "deployments", "Deployment", short_names=("deploy",),
             categories=ALL, subresources=(_scale(), _status("Deployment"))),
    Resource("apps", "v1", "replicasets", "ReplicaSet", short_names=("rs",), categories=ALL,
             subresources=(_scale(), _status("ReplicaSet"))),
    Resource("apps", "v1", "statefulsets", "StatefulSet", short_names=("sts",),
             categories=ALL, subresources=(_scale(), _status("StatefulSet"))),
    # authentication / authorization (virtual, create-only)
    Resource("authentication.k8s.io", "v1", "selfsubjectreviews", "SelfSubjectReview",
             namespaced=False, verbs=CREATE_ONLY, stored=False),
    Resource("authentication.k8s.io", "v1", "tokenreviews", "TokenReview", namespaced=False,
             verbs=CREATE_ONLY, stored=False),
    Resource("authorization.k8s.io", "v1", "localsubjectaccessreviews",
             "LocalSubjectAccessReview", verbs=CREATE_ONLY, stored=False),
    Resource("authorization.k8s.io", "v1", "selfsubjectaccessreviews",
             "SelfSubjectAccessReview", namespaced=False, verbs=CREATE_ONLY, stored=False),
    Resource("authorization.k8s.io", "v1", "selfsubjectrulesreviews", "SelfSubjectRulesReview",
             namespaced=False, verbs=CREATE_ONLY, stored=False),
    Resource("authorization.k8s.io", "v1", "subjectaccessreviews", "SubjectAccessReview",
             namespaced=False, verbs=CREATE_ONLY, stored=False),
    # autoscaling: v2 is stored and preferred; v1 (what `kubectl autoscale` sends) converts.
    Resource("autoscaling", "v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler",
             short_names=("hpa",), categories=ALL,
             subresources=(_status("HorizontalPodAutoscaler"),)),
    Resource("autoscaling", "v1", "horizontalpodautoscalers", "HorizontalPodAutoscaler",
             short_names=("hpa",), categories=ALL,
             subresources=(_status("HorizontalPodAutoscaler"),), storage_version="v2"),
    # batch/v1
    Resource("batch", "v1", "cronjobs", "CronJob", short_names=("cj",), categories=ALL,
             subresources=(_status("CronJob"),)),
    Resource("batch", "v1", "jobs", "Job", categories=ALL, subresources=(_status("Job"),)),
    # coordination / discovery / events
    Resource("coordination.k8s.io", "v1", "leases", "Lease"),
    Resource("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice"),
    Resource("events.k8s.io", "v1", "events", "Event", short_names=("ev",)),
    # networking
    Resource("networking.k8s.io", "v1", "ingressclasses", "IngressClass", namespaced=False),
    Resource("networking.k8s.io", "v1", "ingresses", "Ingress", short_names=("ing",),
             subresources=(_status("Ingress"),)),
    Resource("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy",
             short_names=("netpol",)),
    # policy
    Resource("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget",
             short_names=("pdb",), subresources=(_status("PodDisruptionBudget"),)),
    # rbac
    Resource("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding",
             namespaced=False),
    Resource("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", namespaced=False),
    Resource("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding"),
    Resource("rbac.authorization.k8s.io", "v1", "roles", "Role"),
    # scheduling / storage
    Resource("scheduling.k8s.io", "v1", "priorityclasses", "PriorityClass", namespaced=False,
             short_names=("pc",)),
    Resource("storage.k8s.io", "v1", "storageclasses", "StorageClass", namespaced=False,
             short_names=("sc",)),
)

@dataclass
class ResourceTable:
    resources: tuple[Resource, ...] = RESOURCES
    _by_path: dict[tuple[str, str, str], Resource] = field(default_factory=dict)
    _by_kind: dict[tuple[str, str], Resource] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for r in self.resources:
            self._by_path[(r.group, r.version, r.plural)] = r
            self._by_kind.setdefault((r.group, r.kind), r)

    def lookup(self, group: str, version: str, plural: str) -> Resource | None:
        return self._by_path.get((group, version, plural))

    def by_kind(self, group: str, kind: str) -> Resource | None:
        return self._by_kind.get((group, kind))

    def group_versions(self) -> list[tuple[str, str]]:
        seen: list[tuple[str, str]] = []
        for r in self.resources:
            gv = (r.group, r.version)
            if gv not in seen:
                seen.append(gv)
        return seen

    def in_group_version(self, group: str, version: str) -> list[Resource]:
        return [r for r in self.resources if r.group == group and r.version == version]


TABLE = ResourceTable()
