"""Descriptor tables for core/v1 objects other than pods and volumes.

ConfigMap, Secret, Service, Namespace, ServiceAccount, ResourceQuota and the small reference types
they share. Notation: see `tables.py`.
"""

TYPES: dict[str, dict[str, str]] = {
    "core": {
        "LocalObjectReference": "1 name",
        "TypedLocalObjectReference": "1 apiGroup s*!, 2 kind s!, 3 name s!",
        "TypedObjectReference": "1 apiGroup s*!, 2 kind s!, 3 name s!, 4 namespace s*",
        "ConfigMap": "1 metadata ObjectMeta, 2 data {, 3 binaryData {y, 4 immutable b*",
        "Secret": "1 metadata ObjectMeta, 2 data {y, 3 type, 4 stringData {, 5 immutable b*",
        "Service": "1 metadata ObjectMeta, 2 spec ServiceSpec, 3 status ServiceStatus",
        "ServiceSpec": (
            "1 ports [ServicePort, 2 selector {, 3 clusterIP, 4 type, 5 externalIPs [, "
            "7 sessionAffinity, 8 loadBalancerIP, 9 loadBalancerSourceRanges [, 10 externalName, "
            "11 externalTrafficPolicy, 12 healthCheckNodePort i, 13 publishNotReadyAddresses b, "
            "14 sessionAffinityConfig SessionAffinityConfig*, 17 ipFamilyPolicy s*, "
            "18 clusterIPs [, 19 ipFamilies [, 20 allocateLoadBalancerNodePorts b*, "
            "21 loadBalancerClass s*, 22 internalTrafficPolicy s*, 23 trafficDistribution s*"
        ),
        "ServicePort": (
            "1 name, 2 protocol, 3 port i!, 4 targetPort IntOrString, 5 nodePort i, "
            "6 appProtocol s*"
        ),
        "SessionAffinityConfig": "1 clientIP ClientIPConfig*",
        "ClientIPConfig": "1 timeoutSeconds i*",
        "ServiceStatus": "1 loadBalancer LoadBalancerStatus, 2 conditions [Condition",
        "LoadBalancerStatus": "1 ingress [LoadBalancerIngress",
        "LoadBalancerIngress": "1 ip, 2 hostname, 3 ipMode s*, 4 ports [PortStatus",
        "PortStatus": "1 port i!, 2 protocol s!, 3 error s*",
        "Namespace": "1 metadata ObjectMeta, 2 spec NamespaceSpec, 3 status NamespaceStatus",
        "NamespaceSpec": "1 finalizers [",
        "NamespaceStatus": "1 phase, 2 conditions [NamespaceCondition",
        "NamespaceCondition": "1 type s!, 2 status s!, 4 lastTransitionTime Time, 5 reason, 6 message",
        "ServiceAccount": (
            "1 metadata ObjectMeta, 2 secrets [ObjectReference, "
            "3 imagePullSecrets [LocalObjectReference, 4 automountServiceAccountToken b*"
        ),
        "ObjectReference": (
            "1 kind, 2 namespace, 3 name, 4 uid, 5 apiVersion, 6 resourceVersion, 7 fieldPath"
        ),
        "ResourceQuota": (
            "1 metadata ObjectMeta, 2 spec ResourceQuotaSpec, 3 status ResourceQuotaStatus"
        ),
        "ResourceQuotaSpec": "1 hard {Quantity, 2 scopes [, 3 scopeSelector ScopeSelector*",
        "ScopeSelector": "1 matchExpressions [ScopedResourceSelectorRequirement",
        "ScopedResourceSelectorRequirement": "1 scopeName s!, 2 operator s!, 3 values [",
        "ResourceQuotaStatus": "1 hard {Quantity, 2 used {Quantity",
    },
}

KINDS: dict[tuple[str, str], str] = {
    ("v1", "ConfigMap"): "core.ConfigMap",
    ("v1", "Secret"): "core.Secret",
    ("v1", "Service"): "core.Service",
    ("v1", "Namespace"): "core.Namespace",
    ("v1", "ServiceAccount"): "core.ServiceAccount",
    ("v1", "ResourceQuota"): "core.ResourceQuota",
}
