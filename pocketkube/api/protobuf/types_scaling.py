"""Descriptor tables for autoscaling/v1, autoscaling/v2 and networking/v1 (Ingress).

Notation: see `tables.py`.
"""

TYPES: dict[str, dict[str, str]] = {
    "autoscaling1": {
        "HorizontalPodAutoscaler": (
            "1 metadata ObjectMeta, 2 spec HorizontalPodAutoscalerSpec, "
            "3 status HorizontalPodAutoscalerStatus"
        ),
        "HorizontalPodAutoscalerSpec": (
            "1 scaleTargetRef CrossVersionObjectReference, 2 minReplicas i*, 3 maxReplicas i!, "
            "4 targetCPUUtilizationPercentage i*"
        ),
        "CrossVersionObjectReference": "1 kind s!, 2 name s!, 3 apiVersion",
        "HorizontalPodAutoscalerStatus": (
            "1 observedGeneration i*, 2 lastScaleTime Time*, 3 currentReplicas i!, "
            "4 desiredReplicas i!, 5 currentCPUUtilizationPercentage i*"
        ),
    },
    "autoscaling2": {
        "HorizontalPodAutoscaler": (
            "1 metadata ObjectMeta, 2 spec HorizontalPodAutoscalerSpec, "
            "3 status HorizontalPodAutoscalerStatus"
        ),
        "HorizontalPodAutoscalerSpec": (
            "1 scaleTargetRef CrossVersionObjectReference, 2 minReplicas i*, 3 maxReplicas i!, "
            "4 metrics [MetricSpec, 5 behavior HorizontalPodAutoscalerBehavior*"
        ),
        "CrossVersionObjectReference": "1 kind s!, 2 name s!, 3 apiVersion",
        "MetricSpec": (
            "1 type s!, 2 object ObjectMetricSource*, 3 pods PodsMetricSource*, "
            "4 resource ResourceMetricSource*, 5 external ExternalMetricSource*, "
            "7 containerResource ContainerResourceMetricSource*"
        ),
        "ObjectMetricSource": (
            "1 describedObject CrossVersionObjectReference, 2 target MetricTarget, "
            "3 metric MetricIdentifier"
        ),
        "MetricTarget": (
            "1 type s!, 2 value Quantity*, 3 averageValue Quantity*, 4 averageUtilization i*"
        ),
        "MetricIdentifier": "1 name s!, 2 selector LabelSelector*",
        "PodsMetricSource": "1 metric MetricIdentifier, 2 target MetricTarget",
        "ResourceMetricSource": "1 name s!, 2 target MetricTarget",
        "ExternalMetricSource": "1 metric MetricIdentifier, 2 target MetricTarget",
        "ContainerResourceMetricSource": "1 name s!, 2 target MetricTarget, 3 container s!",
        "HorizontalPodAutoscalerBehavior": "1 scaleUp HPAScalingRules*, 2 scaleDown HPAScalingRules*",
        "HPAScalingRules": (
            "1 selectPolicy s*, 2 policies [HPAScalingPolicy, 3 stabilizationWindowSeconds i*"
        ),
        "HPAScalingPolicy": "1 type s!, 2 value i!, 3 periodSeconds i!",
        "HorizontalPodAutoscalerStatus": (
            "1 observedGeneration i*, 2 lastScaleTime Time*, 3 currentReplicas i, "
            "4 desiredReplicas i!, 5 currentMetrics [MetricStatus!, "
            "6 conditions [HorizontalPodAutoscalerCondition"
        ),
        "MetricStatus": (
            "1 type s!, 2 object ObjectMetricStatus*, 3 pods PodsMetricStatus*, "
            "4 resource ResourceMetricStatus*, 5 external ExternalMetricStatus*, "
            "7 containerResource ContainerResourceMetricStatus*"
        ),
        "ObjectMetricStatus": (
            "1 metric MetricIdentifier, 2 current MetricValueStatus, "
            "3 describedObject CrossVersionObjectReference"
        ),
        "MetricValueStatus": "1 value Quantity*, 2 averageValue Quantity*, 3 averageUtilization i*",
        "PodsMetricStatus": "1 metric MetricIdentifier, 2 current MetricValueStatus",
        "ResourceMetricStatus": "1 name s!, 2 current MetricValueStatus",
        "ExternalMetricStatus": "1 metric MetricIdentifier, 2 current MetricValueStatus",
        "ContainerResourceMetricStatus": "1 name s!, 2 current MetricValueStatus, 3 container s!",
        "HorizontalPodAutoscalerCondition": (
            "1 type s!, 2 status s!, 3 lastTransitionTime Time, 4 reason, 5 message"
        ),
    },
    "networking": {
        "Ingress": "1 metadata ObjectMeta, 2 spec IngressSpec, 3 status IngressStatus",
        "IngressSpec": (
            "1 defaultBackend IngressBackend*, 2 tls [IngressTLS, 3 rules [IngressRule, "
            "4 ingressClassName s*"
        ),
        "IngressBackend": "3 resource TypedLocalObjectReference*, 4 service IngressServiceBackend*",
        "IngressServiceBackend": "1 name s!, 2 port ServiceBackendPort",
        "ServiceBackendPort": "1 name, 2 number i",
        "IngressTLS": "1 hosts [, 2 secretName",
        "IngressRule": "1 host, 2 ~ IngressRuleValue",
        "IngressRuleValue": "1 http HTTPIngressRuleValue*",
        "HTTPIngressRuleValue": "1 paths [HTTPIngressPath!",
        "HTTPIngressPath": "1 path, 2 backend IngressBackend, 3 pathType s*!",
        "IngressStatus": "1 loadBalancer IngressLoadBalancerStatus",
        "IngressLoadBalancerStatus": "1 ingress [IngressLoadBalancerIngress",
        "IngressLoadBalancerIngress": "1 ip, 2 hostname, 4 ports [IngressPortStatus",
        "IngressPortStatus": "1 port i!, 2 protocol s!, 3 error s*",
    },
}

KINDS: dict[tuple[str, str], str] = {
    ("autoscaling/v1", "HorizontalPodAutoscaler"): "autoscaling1.HorizontalPodAutoscaler",
    ("autoscaling/v2", "HorizontalPodAutoscaler"): "autoscaling2.HorizontalPodAutoscaler",
    ("networking.k8s.io/v1", "Ingress"): "networking.Ingress",
}
