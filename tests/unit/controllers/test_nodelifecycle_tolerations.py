"""DefaultTolerationSeconds admission: new pods tolerate not-ready and unreachable nodes for
300 s unless they already say otherwise."""

from pocketkube.registry.admission import default_toleration_seconds


def defaulted(tolerations=None):
    pod = {"spec": {"containers": []}}
    if tolerations is not None:
        pod["spec"]["tolerations"] = tolerations
    default_toleration_seconds(pod)
    return pod["spec"].get("tolerations")


def test_both_tolerations_are_added():
    assert defaulted() == [
        {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute",
         "tolerationSeconds": 300},
        {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute",
         "tolerationSeconds": 300}]


def test_existing_tolerations_are_kept_and_respected():
    own = {"key": "node.kubernetes.io/unreachable", "operator": "Exists",
           "effect": "NoExecute", "tolerationSeconds": 6000}
    other = {"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}
    out = defaulted([other, own])
    assert out[:2] == [other, own]
    assert [t["key"] for t in out[2:]] == ["node.kubernetes.io/not-ready"]


def test_wildcards_count_as_tolerating():
    assert defaulted([{"operator": "Exists"}]) == [{"operator": "Exists"}]
    any_effect = {"key": "node.kubernetes.io/not-ready", "operator": "Exists"}
    assert [t["key"] for t in defaulted([any_effect])] == [
        "node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"]
    noschedule = {"key": "node.kubernetes.io/not-ready", "operator": "Exists",
                  "effect": "NoSchedule"}
    assert len(defaulted([noschedule])) == 3


def test_malformed_specs_are_left_to_validation():
    pod = {"spec": {"tolerations": "nonsense"}}
    default_toleration_seconds(pod)
    assert pod["spec"]["tolerations"] == "nonsense"
    pod = {"spec": None}
    default_toleration_seconds(pod)
    assert pod == {"spec": None}
