from pocketkube.api.conversion import METRICS_ANNOTATION, hpa_v1_to_v2, hpa_v2_to_v1

V1 = {"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
      "metadata": {"name": "web"},
      "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
               "minReplicas": 1, "maxReplicas": 5, "targetCPUUtilizationPercentage": 70},
      "status": {"currentReplicas": 2, "desiredReplicas": 2,
                 "currentCPUUtilizationPercentage": 40}}


def test_v1_cpu_target_is_a_v2_resource_metric():
    v2 = hpa_v1_to_v2(V1)
    assert v2["apiVersion"] == "autoscaling/v2"
    assert v2["spec"]["metrics"] == [{"type": "Resource", "resource": {
        "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}]
    assert "targetCPUUtilizationPercentage" not in v2["spec"]
    assert v2["status"]["currentMetrics"][0]["resource"]["current"] == {"averageUtilization": 40}


def test_round_trip_keeps_v1_and_carries_other_metrics_in_annotation():
    assert hpa_v2_to_v1(hpa_v1_to_v2(V1)) == V1
    v2 = hpa_v1_to_v2(V1)
    mem = {"type": "Resource", "resource": {"name": "memory", "target": {
        "type": "AverageValue", "averageValue": "100Mi"}}}
    v2["spec"]["metrics"].append(mem)
    v1 = hpa_v2_to_v1(v2)
    assert v1["spec"]["targetCPUUtilizationPercentage"] == 70
    assert METRICS_ANNOTATION in v1["metadata"]["annotations"]
    assert hpa_v1_to_v2(v1)["spec"]["metrics"] == v2["spec"]["metrics"]
