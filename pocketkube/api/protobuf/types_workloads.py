"""Descriptor tables for apps/v1, batch/v1, policy/v1 and scheduling/v1.

Notation: see `tables.py`.
"""

TYPES: dict[str, dict[str, str]] = {
    "apps": {
        "Deployment": "1 metadata ObjectMeta, 2 spec DeploymentSpec, 3 status DeploymentStatus",
        "DeploymentSpec": (
            "1 replicas i*, 2 selector LabelSelector*!, 3 template PodTemplateSpec, "
            "4 strategy DeploymentStrategy, 5 minReadySeconds i, 6 revisionHistoryLimit i*, "
            "7 paused b, 9 progressDeadlineSeconds i*"
        ),
        "DeploymentStrategy": "1 type, 2 rollingUpdate RollingUpdateDeployment*",
        "RollingUpdateDeployment": "1 maxUnavailable IntOrString*, 2 maxSurge IntOrString*",
        "DeploymentStatus": (
            "1 observedGeneration i, 2 replicas i, 3 updatedReplicas i, 4 availableReplicas i, "
            "5 unavailableReplicas i, 6 conditions [DeploymentCondition, 7 readyReplicas i, "
            "8 collisionCount i*"
        ),
        "DeploymentCondition": (
            "1 type s!, 2 status s!, 4 reason, 5 message, 6 lastUpdateTime Time, "
            "7 lastTransitionTime Time"
        ),
    },
    "batch": {
        "Job": "1 metadata ObjectMeta, 2 spec JobSpec, 3 status JobStatus",
        "JobSpec": (
            "1 parallelism i*, 2 completions i*, 3 activeDeadlineSeconds i*, "
            "4 selector LabelSelector*, 5 manualSelector b*, 6 template PodTemplateSpec, "
            "7 backoffLimit i*, 8 ttlSecondsAfterFinished i*, 9 completionMode s*, 10 suspend b*, "
            "11 podFailurePolicy PodFailurePolicy*, 12 backoffLimitPerIndex i*, "
            "13 maxFailedIndexes i*, 14 podReplacementPolicy s*, 15 managedBy s*, "
            "16 successPolicy SuccessPolicy*"
        ),
        "PodFailurePolicy": "1 rules [PodFailurePolicyRule!",
        "PodFailurePolicyRule": (
            "1 action s!, 2 onExitCodes PodFailurePolicyOnExitCodesRequirement*, "
            "3 onPodConditions [PodFailurePolicyOnPodConditionsPattern"
        ),
        "PodFailurePolicyOnExitCodesRequirement": "1 containerName s*, 2 operator s!, 3 values [i!",
        "PodFailurePolicyOnPodConditionsPattern": "1 type s!, 2 status s!",
        "SuccessPolicy": "1 rules [SuccessPolicyRule!",
        "SuccessPolicyRule": "1 succeededIndexes s*, 2 succeededCount i*",
        "JobStatus": (
            "1 conditions [JobCondition, 2 startTime Time*, 3 completionTime Time*, 4 active i, "
            "5 succeeded i, 6 failed i, 7 completedIndexes, "
            "8 uncountedTerminatedPods UncountedTerminatedPods*, 9 ready i*, 10 failedIndexes s*, "
            "11 terminating i*"
        ),
        "JobCondition": (
            "1 type s!, 2 status s!, 3 lastProbeTime Time, 4 lastTransitionTime Time, 5 reason, "
            "6 message"
        ),
        "UncountedTerminatedPods": "1 succeeded [, 2 failed [",
        "CronJob": "1 metadata ObjectMeta, 2 spec CronJobSpec, 3 status CronJobStatus",
        "CronJobSpec": (
            "1 schedule s!, 2 startingDeadlineSeconds i*, 3 concurrencyPolicy, 4 suspend b*, "
            "5 jobTemplate JobTemplateSpec, 6 successfulJobsHistoryLimit i*, "
            "7 failedJobsHistoryLimit i*, 8 timeZone s*"
        ),
        "JobTemplateSpec": "1 metadata ObjectMeta, 2 spec JobSpec",
        "CronJobStatus": (
            "1 active [ObjectReference, 4 lastScheduleTime Time*, 5 lastSuccessfulTime Time*"
        ),
    },
    "policy": {
        "PodDisruptionBudget": (
            "1 metadata ObjectMeta, 2 spec PodDisruptionBudgetSpec, "
            "3 status PodDisruptionBudgetStatus"
        ),
        "PodDisruptionBudgetSpec": (
            "1 minAvailable IntOrString*, 2 selector LabelSelector*, "
            "3 maxUnavailable IntOrString*, 4 unhealthyPodEvictionPolicy s*"
        ),
        "PodDisruptionBudgetStatus": (
            "1 observedGeneration i, 2 disruptedPods {Time, 3 disruptionsAllowed i!, "
            "4 currentHealthy i!, 5 desiredHealthy i!, 6 expectedPods i!, 7 conditions [Condition"
        ),
        "Eviction": "1 metadata ObjectMeta, 2 deleteOptions DeleteOptions*",
    },
    "scheduling": {
        "PriorityClass": (
            "1 metadata ObjectMeta, 2 value i!, 3 globalDefault b, 4 description, "
            "5 preemptionPolicy s*"
        ),
    },
}

KINDS: dict[tuple[str, str], str] = {
    ("apps/v1", "Deployment"): "apps.Deployment",
    ("batch/v1", "Job"): "batch.Job",
    ("batch/v1", "CronJob"): "batch.CronJob",
    ("policy/v1", "PodDisruptionBudget"): "policy.PodDisruptionBudget",
    ("policy/v1", "Eviction"): "policy.Eviction",
    ("scheduling.k8s.io/v1", "PriorityClass"): "scheduling.PriorityClass",
}
