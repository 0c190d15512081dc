"""Descriptor tables for authentication/v1, authorization/v1 and rbac/v1.

Covers what `kubectl create token`, `kubectl auth whoami`, `kubectl auth can-i` and the RBAC
generators send. Notation: see `tables.py`.
"""

TYPES: dict[str, dict[str, str]] = {
    "authentication": {
        "TokenRequest": "1 metadata ObjectMeta, 2 spec TokenRequestSpec, 3 status TokenRequestStatus",
        "TokenRequestSpec": (
            "1 audiences [s!, 3 boundObjectRef BoundObjectReference*!, 4 expirationSeconds i*!"
        ),
        "BoundObjectReference": "1 kind, 2 apiVersion, 3 name, 4 uid",
        "TokenRequestStatus": "1 token s!, 2 expirationTimestamp Time",
        "SelfSubjectReview": "1 metadata ObjectMeta, 2 status SelfSubjectReviewStatus",
        "SelfSubjectReviewStatus": "1 userInfo UserInfo",
        "UserInfo": "1 username, 2 uid, 3 groups [, 4 extra {ExtraValue",
    },
    "authorization": {
        "SelfSubjectAccessReview": (
            "1 metadata ObjectMeta, 2 spec SelfSubjectAccessReviewSpec, "
            "3 status SubjectAccessReviewStatus"
        ),
        "SelfSubjectAccessReviewSpec": (
            "1 resourceAttributes ResourceAttributes*, "
            "2 nonResourceAttributes NonResourceAttributes*"
        ),
        "ResourceAttributes": (
            "1 namespace, 2 verb, 3 group, 4 version, 5 resource, 6 subresource, 7 name, "
            "8 fieldSelector FieldSelectorAttributes*, 9 labelSelector LabelSelectorAttributes*"
        ),
        "FieldSelectorAttributes": "1 rawSelector, 2 requirements [FieldSelectorRequirement",
        "LabelSelectorAttributes": "1 rawSelector, 2 requirements [LabelSelectorRequirement",
        "NonResourceAttributes": "1 path, 2 verb",
        "SubjectAccessReviewStatus": "1 allowed b!, 2 reason, 3 evaluationError, 4 denied b",
    },
    "rbac": {
        "Role": "1 metadata ObjectMeta, 2 rules [PolicyRule!",
        "PolicyRule": (
            "1 verbs [s!, 2 apiGroups [, 3 resources [, 4 resourceNames [, 5 nonResourceURLs ["
        ),
        "ClusterRole": (
            "1 metadata ObjectMeta, 2 rules [PolicyRule!, 3 aggregationRule AggregationRule*"
        ),
        "AggregationRule": "1 clusterRoleSelectors [LabelSelector",
        "RoleBinding": "1 metadata ObjectMeta, 2 subjects [Subject, 3 roleRef RoleRef",
        "Subject": "1 kind s!, 2 apiGroup, 3 name s!, 4 namespace",
        "RoleRef": "1 apiGroup s!, 2 kind s!, 3 name s!",
        "ClusterRoleBinding": "1 metadata ObjectMeta, 2 subjects [Subject, 3 roleRef RoleRef",
    },
}

KINDS: dict[tuple[str, str], str] = {
    ("authentication.k8s.io/v1", "TokenRequest"): "authentication.TokenRequest",
    ("authentication.k8s.io/v1", "SelfSubjectReview"): "authentication.SelfSubjectReview",
    ("authorization.k8s.io/v1", "SelfSubjectAccessReview"): "authorization.SelfSubjectAccessReview",
    ("rbac.authorization.k8s.io/v1", "Role"): "rbac.Role",
    ("rbac.authorization.k8s.io/v1", "ClusterRole"): "rbac.ClusterRole",
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): "rbac.RoleBinding",
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"): "rbac.ClusterRoleBinding",
}
