"""Descriptor tables for meta/v1 (k8s.io/apimachinery): object metadata, selectors, options.

Notation: see `tables.py`.
"""

TYPES: dict[str, dict[str, str]] = {
    "meta": {
        "ObjectMeta": (
            "1 name, 2 generateName, 3 namespace, 4 selfLink, 5 uid, 6 resourceVersion, "
            "7 generation i, 8 creationTimestamp Time, 9 deletionTimestamp Time*, "
            "10 deletionGracePeriodSeconds i*, 11 labels {, 12 annotations {, "
            "13 ownerReferences [OwnerReference, 14 finalizers [, "
            "17 managedFields [ManagedFieldsEntry"
        ),
        "OwnerReference": (
            "1 kind s!, 3 name s!, 4 uid s!, 5 apiVersion s!, 6 controller b*, "
            "7 blockOwnerDeletion b*"
        ),
        "ManagedFieldsEntry": (
            "1 manager, 2 operation, 3 apiVersion, 4 time Time*, 6 fieldsType, "
            "7 fieldsV1 FieldsV1*, 8 subresource"
        ),
        "LabelSelector": "1 matchLabels {, 2 matchExpressions [LabelSelectorRequirement",
        "LabelSelectorRequirement": "1 key s!, 2 operator s!, 3 values [",
        "Condition": (
            "1 type s!, 2 status s!, 3 observedGeneration i, 4 lastTransitionTime Time, "
            "5 reason s!, 6 message s!"
        ),
        "DeleteOptions": (
            "1 gracePeriodSeconds i*, 2 preconditions Preconditions*, 3 orphanDependents b*, "
            "4 propagationPolicy s*, 5 dryRun [, "
            "6 ignoreStoreReadErrorWithClusterBreakingPotential b*"
        ),
        "Preconditions": "1 uid s*, 2 resourceVersion s*",
        "FieldSelectorRequirement": "1 key s!, 2 operator s!, 3 values [",
    },
}

KINDS: dict[tuple[str, str], str] = {}
