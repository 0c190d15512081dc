"""Column definitions, the default table and the shared formatters of the table printers."""

from datetime import UTC, datetime, timedelta

import pytest

from pocketkube.api.printers import column_definitions, has_printer, human_duration, row_cells
from pocketkube.api.printers.common import format_labels, format_selector, selector_string
from pocketkube.api.printers.quantity import canonical, qstr, qstr_ptr

NOW = datetime(2024, 6, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (-5, "<invalid>"),
        (-2, "<invalid>"),
        (-1.9, "0s"),
        (-0.5, "0s"),
        (0, "0s"),
        (45, "45s"),
        (119.9, "119s"),
        (120, "2m"),
        (310, "5m10s"),
        (599, "9m59s"),
        (600, "10m"),
        (179 * 60 + 59, "179m"),
        (3 * 3600, "3h"),
        (3 * 3600 + 4 * 60 + 30, "3h4m"),
        (8 * 3600, "8h"),
        (47 * 3600 + 3599, "47h"),
        (2 * 86400, "2d"),
        (2 * 86400 + 3 * 3600, "2d3h"),
        (8 * 86400, "8d"),
        (400 * 86400, "400d"),
        (730 * 86400, "2y"),
        (730 * 86400 + 20 * 86400, "2y20d"),
        (10 * 365 * 86400, "10y"),
    ],
)
def test_human_duration(seconds: float, expected: str) -> None:
    assert human_duration(seconds) == expected


def _names(group: str, kind: str) -> list[tuple[str, int]]:
    return [(c["name"], c["priority"]) for c in column_definitions(group, kind)]


def test_pod_columns_match_kube() -> None:
    cols = column_definitions("", "Pod")
    assert [(c["name"], c["type"], c["format"], c["priority"]) for c in cols] == [
        ("Name", "string", "name", 0),
        ("Ready", "string", "", 0),
        ("Status", "string", "", 0),
        ("Restarts", "string", "", 0),
        ("Age", "string", "", 0),
        ("IP", "string", "", 1),
        ("Node", "string", "", 1),
        ("Nominated Node", "string", "", 1),
        ("Readiness Gates", "string", "", 1),
    ]
    assert cols[0]["description"].startswith("Name must be unique within a namespace.")
    assert (
        cols[1]["description"] == "The aggregate readiness state of this pod for accepting traffic."
    )
    assert cols[4]["description"].startswith("CreationTimestamp is a timestamp")
    assert cols[5]["description"].startswith("podIP address allocated to the pod.")


@pytest.mark.parametrize(
    ("group", "kind", "expected"),
    [
        (
            "apps",
            "Deployment",
            [
                "Name",
                "Ready",
                "Up-to-date",
                "Available",
                "Age",
                "Containers*",
                "Images*",
                "Selector*",
            ],
        ),
        (
            "",
            "Service",
            ["Name", "Type", "Cluster-IP", "External-IP", "Port(s)", "Age", "Selector*"],
        ),
        (
            "",
            "Node",
            [
                "Name",
                "Status",
                "Roles",
                "Age",
                "Version",
                "Internal-IP*",
                "External-IP*",
                "OS-Image*",
                "Kernel-Version*",
                "Container-Runtime*",
            ],
        ),
        (
            "",
            "Event",
            [
                "Last Seen",
                "Type",
                "Reason",
                "Object",
                "Subobject*",
                "Source*",
                "Message",
                "First Seen*",
                "Count*",
                "Name*",
            ],
        ),
        (
            "events.k8s.io",
            "Event",
            [
                "Last Seen",
                "Type",
                "Reason",
                "Object",
                "Subobject*",
                "Source*",
                "Message",
                "First Seen*",
                "Count*",
                "Name*",
            ],
        ),
        (
            "batch",
            "Job",
            [
                "Name",
                "Status",
                "Completions",
                "Duration",
                "Age",
                "Containers*",
                "Images*",
                "Selector*",
            ],
        ),
        (
            "batch",
            "CronJob",
            [
                "Name",
                "Schedule",
                "Timezone",
                "Suspend",
                "Active",
                "Last Schedule",
                "Age",
                "Containers*",
                "Images*",
                "Selector*",
            ],
        ),
        (
            "",
            "PersistentVolume",
            [
                "Name",
                "Capacity",
                "Access Modes",
                "Reclaim Policy",
                "Status",
                "Claim",
                "StorageClass",
                "VolumeAttributesClass",
                "Reason",
                "Age",
                "VolumeMode*",
            ],
        ),
        (
            "scheduling.k8s.io",
            "PriorityClass",
            ["Name", "Value", "Global-Default", "Age", "PreemptionPolicy"],
        ),
        (
            "rbac.authorization.k8s.io",
            "RoleBinding",
            ["Name", "Role", "Age", "Users*", "Groups*", "ServiceAccounts*"],
        ),
        ("", "Namespace", ["Name", "Status", "Age"]),
        ("", "ComponentStatus", ["Name", "Status", "Message", "Error"]),
    ],
)
def test_column_names_and_wide_columns(group: str, kind: str, expected: list[str]) -> None:
    got = [name + ("*" if prio else "") for name, prio in _names(group, kind)]
    assert got == expected


def test_integer_and_boolean_column_types() -> None:
    rs = {c["name"]: c["type"] for c in column_definitions("apps", "ReplicaSet")}
    assert rs["Desired"] == rs["Current"] == rs["Ready"] == "integer"
    cj = {c["name"]: c["type"] for c in column_definitions("batch", "CronJob")}
    assert cj["Suspend"] == "boolean" and cj["Active"] == "integer"
    scale = column_definitions("autoscaling", "Scale")
    assert scale[0]["format"] == ""  # kube's Scale printer omits the name format


def test_columns_are_computed_once() -> None:
    assert column_definitions("", "Pod") is column_definitions("", "Pod")


@pytest.mark.parametrize(
    ("group", "kind"),
    [
        ("rbac.authorization.k8s.io", "Role"),
        ("rbac.authorization.k8s.io", "ClusterRole"),
        ("", "LimitRange"),
        ("example.com", "Widget"),
    ],
)
def test_kinds_without_printer_use_default_table(group: str, kind: str) -> None:
    assert not has_printer(group, kind)
    cols = column_definitions(group, kind)
    assert [(c["name"], c["type"], c["format"]) for c in cols] == [
        ("Name", "string", "name"),
        ("Created At", "date", ""),
    ]
    obj = {"metadata": {"name": "r1", "creationTimestamp": "2024-05-01T10:00:00Z"}}
    assert row_cells(group, kind, obj, NOW) == ["r1", "2024-05-01T10:00:00Z"]


def test_default_table_normalises_created_at_to_utc() -> None:
    obj = {"metadata": {"name": "x", "creationTimestamp": "2024-05-01T12:00:00.5+02:00"}}
    assert row_cells("", "LimitRange", obj, NOW) == ["x", "2024-05-01T10:00:00Z"]
    assert row_cells("", "LimitRange", {"metadata": {"name": "y"}}, NOW) == [
        "y",
        "0001-01-01T00:00:00Z",
    ]


def test_naive_now_is_taken_as_utc() -> None:
    created = (NOW - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    ns = {"metadata": {"name": "default", "creationTimestamp": created}}
    assert row_cells("", "Namespace", ns, NOW.replace(tzinfo=None))[2] == "5m"


def test_label_and_selector_formatting() -> None:
    assert format_labels({}) == "<none>"
    assert format_labels({"b": "2", "a": "1"}) == "a=1,b=2"
    sel = {
        "matchLabels": {"tier": "web", "app": "x"},
        "matchExpressions": [
            {"key": "env", "operator": "In", "values": ["prod", "dev"]},
            {"key": "zone", "operator": "NotIn", "values": ["a"]},
            {"key": "canary", "operator": "DoesNotExist"},
            {"key": "beta", "operator": "Exists"},
        ],
    }
    assert selector_string(sel) == "app=x,beta,!canary,env in (dev,prod),tier=web,zone notin (a)"
    assert format_selector({}) == "<none>"
    assert format_selector(None) == "<none>"
    assert selector_string({"matchLabels": {}}) == ""
    assert format_selector({"matchExpressions": [{"key": "k", "operator": "Bogus"}]}) == "<error>"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", "0"),
        ("10Gi", "10Gi"),
        ("1024Mi", "1Gi"),
        ("1536Mi", "1536Mi"),
        ("500Mi", "500Mi"),
        ("0.5Gi", "512Mi"),
        ("1000", "1k"),
        ("1500", "1500"),
        ("0.5", "500m"),
        ("100m", "100m"),
        ("1.5", "1500m"),
        ("2000m", "2"),
        ("1e3", "1e3"),
        ("1.5e3", "1500"),
        ("12e6", "12e6"),
        ("1G", "1G"),
        ("1000M", "1G"),
        ("512", "512"),
        ("1Ki", "1Ki"),
        ("0.1Ki", "102400m"),
        ("0.0000000001", "1n"),
        ("-1500m", "-1500m"),
        ("0Gi", "0"),
        ("garbage", "garbage"),
    ],
)
def test_quantity_canonical_form(text: str, expected: str) -> None:
    assert canonical(text) == expected


def test_quantity_json_values() -> None:
    assert qstr(None) == "0"
    assert qstr(3) == "3"
    assert qstr(0.25) == "250m"
    assert qstr_ptr(None) == "<nil>"
