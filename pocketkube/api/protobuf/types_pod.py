"""Descriptor tables for core/v1 pods: PodSpec, containers, probes, scheduling, PodStatus.

Deployments, jobs and cron jobs embed a PodTemplateSpec, so kubectl's generators reach this
family through them. Notation: see `tables.py`.
"""

# Container and EphemeralContainerCommon share one field list (same numbers, same JSON).
_CONTAINER = (
    "1 name s!, 2 image, 3 command [, 4 args [, 5 workingDir, 6 ports [ContainerPort, "
    "7 env [EnvVar, 8 resources ResourceRequirements, 9 volumeMounts [VolumeMount, "
    "10 livenessProbe Probe*, 11 readinessProbe Probe*, 12 lifecycle Lifecycle*, "
    "13 terminationMessagePath, 14 imagePullPolicy, 15 securityContext SecurityContext*, "
    "16 stdin b, 17 stdinOnce b, 18 tty b, 19 envFrom [EnvFromSource, "
    "20 terminationMessagePolicy, 21 volumeDevices [VolumeDevice, 22 startupProbe Probe*, "
    "23 resizePolicy [ContainerResizePolicy, 24 restartPolicy s*"
)

TYPES: dict[str, dict[str, str]] = {
    "core": {
        "PodTemplateSpec": "1 metadata ObjectMeta, 2 spec PodSpec",
        "PodSpec": (
            "1 volumes [Volume, 2 containers [Container!, 3 restartPolicy, "
            "4 terminationGracePeriodSeconds i*, 5 activeDeadlineSeconds i*, 6 dnsPolicy, "
            "7 nodeSelector {, 8 serviceAccountName, 9 serviceAccount, 10 nodeName, "
            "11 hostNetwork b, 12 hostPID b, 13 hostIPC b, 14 securityContext PodSecurityContext*, "
            "15 imagePullSecrets [LocalObjectReference, 16 hostname, 17 subdomain, "
            "18 affinity Affinity*, 19 schedulerName, 20 initContainers [Container, "
            "21 automountServiceAccountToken b*, 22 tolerations [Toleration, "
            "23 hostAliases [HostAlias, 24 priorityClassName, 25 priority i*, "
            "26 dnsConfig PodDNSConfig*, 27 shareProcessNamespace b*, "
            "28 readinessGates [PodReadinessGate, 29 runtimeClassName s*, "
            "30 enableServiceLinks b*, 31 preemptionPolicy s*, 32 overhead {Quantity, "
            "33 topologySpreadConstraints [TopologySpreadConstraint, "
            "34 ephemeralContainers [EphemeralContainer, 35 setHostnameAsFQDN b*, 36 os PodOS*, "
            "37 hostUsers b*, 38 schedulingGates [PodSchedulingGate, "
            "39 resourceClaims [PodResourceClaim, 40 resources ResourceRequirements*"
        ),
        "Container": _CONTAINER,
        "ContainerPort": "1 name, 2 hostPort i, 3 containerPort i!, 4 protocol, 5 hostIP",
        "EnvVar": "1 name s!, 2 value, 3 valueFrom EnvVarSource*",
        "EnvVarSource": (
            "1 fieldRef ObjectFieldSelector*, 2 resourceFieldRef ResourceFieldSelector*, "
            "3 configMapKeyRef ConfigMapKeySelector*, 4 secretKeyRef SecretKeySelector*"
        ),
        "ConfigMapKeySelector": "1 ~ LocalObjectReference, 2 key s!, 3 optional b*",
        "SecretKeySelector": "1 ~ LocalObjectReference, 2 key s!, 3 optional b*",
        "ResourceRequirements": "1 limits {Quantity, 2 requests {Quantity, 3 claims [ResourceClaim",
        "ResourceClaim": "1 name s!, 2 request",
        "VolumeMount": (
            "1 name s!, 2 readOnly b, 3 mountPath s!, 4 subPath, 5 mountPropagation s*, "
            "6 subPathExpr, 7 recursiveReadOnly s*"
        ),
        "Probe": (
            "1 ~ ProbeHandler, 2 initialDelaySeconds i, 3 timeoutSeconds i, 4 periodSeconds i, "
            "5 successThreshold i, 6 failureThreshold i, 7 terminationGracePeriodSeconds i*"
        ),
        "ProbeHandler": (
            "1 exec ExecAction*, 2 httpGet HTTPGetAction*, 3 tcpSocket TCPSocketAction*, "
            "4 grpc GRPCAction*"
        ),
        "ExecAction": "1 command [",
        "HTTPGetAction": "1 path, 2 port IntOrString, 3 host, 4 scheme, 5 httpHeaders [HTTPHeader",
        "HTTPHeader": "1 name s!, 2 value s!",
        "TCPSocketAction": "1 port IntOrString, 2 host",
        "GRPCAction": "1 port i!, 2 service s*!",
        "Lifecycle": "1 postStart LifecycleHandler*, 2 preStop LifecycleHandler*",
        "LifecycleHandler": (
            "1 exec ExecAction*, 2 httpGet HTTPGetAction*, 3 tcpSocket TCPSocketAction*, "
            "4 sleep SleepAction*"
        ),
        "SleepAction": "1 seconds i!",
        "SecurityContext": (
            "1 capabilities Capabilities*, 2 privileged b*, 3 seLinuxOptions SELinuxOptions*, "
            "4 runAsUser i*, 5 runAsNonRoot b*, 6 readOnlyRootFilesystem b*, "
            "7 allowPrivilegeEscalation b*, 8 runAsGroup i*, 9 procMount s*, "
            "10 windowsOptions WindowsSecurityContextOptions*, 11 seccompProfile SeccompProfile*, "
            "12 appArmorProfile AppArmorProfile*"
        ),
        "Capabilities": "1 add [, 2 drop [",
        "SELinuxOptions": "1 user, 2 role, 3 type, 4 level",
        "WindowsSecurityContextOptions": (
            "1 gmsaCredentialSpecName s*, 2 gmsaCredentialSpec s*, 3 runAsUserName s*, "
            "4 hostProcess b*"
        ),
        "SeccompProfile": "1 type s!, 2 localhostProfile s*",
        "AppArmorProfile": "1 type s!, 2 localhostProfile s*",
        "EnvFromSource": "1 prefix, 2 configMapRef ConfigMapEnvSource*, 3 secretRef SecretEnvSource*",
        "ConfigMapEnvSource": "1 ~ LocalObjectReference, 2 optional b*",
        "SecretEnvSource": "1 ~ LocalObjectReference, 2 optional b*",
        "VolumeDevice": "1 name s!, 2 devicePath s!",
        "ContainerResizePolicy": "1 resourceName s!, 2 restartPolicy s!",
        "PodSecurityContext": (
            "1 seLinuxOptions SELinuxOptions*, 2 runAsUser i*, 3 runAsNonRoot b*, "
            "4 supplementalGroups [i, 5 fsGroup i*, 6 runAsGroup i*, 7 sysctls [Sysctl, "
            "8 windowsOptions WindowsSecurityContextOptions*, 9 fsGroupChangePolicy s*, "
            "10 seccompProfile SeccompProfile*, 11 appArmorProfile AppArmorProfile*, "
            "12 supplementalGroupsPolicy s*, 13 seLinuxChangePolicy s*"
        ),
        "Sysctl": "1 name s!, 2 value s!",
        "Affinity": (
            "1 nodeAffinity NodeAffinity*, 2 podAffinity PodAffinity*, "
            "3 podAntiAffinity PodAntiAffinity*"
        ),
        "NodeAffinity": (
            "1 requiredDuringSchedulingIgnoredDuringExecution NodeSelector*, "
            "2 preferredDuringSchedulingIgnoredDuringExecution [PreferredSchedulingTerm"
        ),
        "NodeSelector": "1 nodeSelectorTerms [NodeSelectorTerm!",
        "NodeSelectorTerm": (
            "1 matchExpressions [NodeSelectorRequirement, 2 matchFields [NodeSelectorRequirement"
        ),
        "NodeSelectorRequirement": "1 key s!, 2 operator s!, 3 values [",
        "PreferredSchedulingTerm": "1 weight i!, 2 preference NodeSelectorTerm",
        "PodAffinity": (
            "1 requiredDuringSchedulingIgnoredDuringExecution [PodAffinityTerm, "
            "2 preferredDuringSchedulingIgnoredDuringExecution [WeightedPodAffinityTerm"
        ),
        "PodAffinityTerm": (
            "1 labelSelector LabelSelector*, 2 namespaces [, 3 topologyKey s!, "
            "4 namespaceSelector LabelSelector*, 5 matchLabelKeys [, 6 mismatchLabelKeys ["
        ),
        "WeightedPodAffinityTerm": "1 weight i!, 2 podAffinityTerm PodAffinityTerm",
        "PodAntiAffinity": (
            "1 requiredDuringSchedulingIgnoredDuringExecution [PodAffinityTerm, "
            "2 preferredDuringSchedulingIgnoredDuringExecution [WeightedPodAffinityTerm"
        ),
        "Toleration": "1 key, 2 operator, 3 value, 4 effect, 5 tolerationSeconds i*",
        "HostAlias": "1 ip s!, 2 hostnames [",
        "PodDNSConfig": "1 nameservers [, 2 searches [, 3 options [PodDNSConfigOption",
        "PodDNSConfigOption": "1 name, 2 value s*",
        "PodReadinessGate": "1 conditionType s!",
        "TopologySpreadConstraint": (
            "1 maxSkew i!, 2 topologyKey s!, 3 whenUnsatisfiable s!, "
            "4 labelSelector LabelSelector*, 5 minDomains i*, 6 nodeAffinityPolicy s*, "
            "7 nodeTaintsPolicy s*, 8 matchLabelKeys ["
        ),
        "EphemeralContainer": "1 ~ EphemeralContainerCommon, 2 targetContainerName",
        "EphemeralContainerCommon": _CONTAINER,
        "PodOS": "1 name s!",
        "PodSchedulingGate": "1 name s!",
        "PodResourceClaim": "1 name s!, 3 resourceClaimName s*, 4 resourceClaimTemplateName s*",
        "Pod": "1 metadata ObjectMeta, 2 spec PodSpec, 3 status PodStatus",
        "PodStatus": (
            "1 phase, 2 conditions [PodCondition, 3 message, 4 reason, 5 hostIP, 6 podIP, "
            "7 startTime Time*, 8 containerStatuses [ContainerStatus, 9 qosClass, "
            "10 initContainerStatuses [ContainerStatus, 11 nominatedNodeName, 12 podIPs [PodIP, "
            "13 ephemeralContainerStatuses [ContainerStatus, 14 resize, "
            "15 resourceClaimStatuses [PodResourceClaimStatus, 16 hostIPs [HostIP"
        ),
        "PodCondition": (
            "1 type s!, 2 status s!, 3 lastProbeTime Time, 4 lastTransitionTime Time, 5 reason, "
            "6 message"
        ),
        "ContainerStatus": (
            "1 name s!, 2 state ContainerState, 3 lastState ContainerState, 4 ready b!, "
            "5 restartCount i!, 6 image s!, 7 imageID s!, 8 containerID, 9 started b*, "
            "10 allocatedResources {Quantity, 11 resources ResourceRequirements*, "
            "12 volumeMounts [VolumeMountStatus, 13 user ContainerUser*, "
            "14 allocatedResourcesStatus [ResourceStatus"
        ),
        "ContainerState": (
            "1 waiting ContainerStateWaiting*, 2 running ContainerStateRunning*, "
            "3 terminated ContainerStateTerminated*"
        ),
        "ContainerStateWaiting": "1 reason, 2 message",
        "ContainerStateRunning": "1 startedAt Time",
        "ContainerStateTerminated": (
            "1 exitCode i!, 2 signal i, 3 reason, 4 message, 5 startedAt Time, 6 finishedAt Time, "
            "7 containerID"
        ),
        "VolumeMountStatus": "1 name s!, 2 mountPath s!, 3 readOnly b, 4 recursiveReadOnly s*",
        "ContainerUser": "1 linux LinuxContainerUser*",
        "LinuxContainerUser": "1 uid i!, 2 gid i!, 3 supplementalGroups [i",
        "ResourceStatus": "1 name s!, 2 resources [ResourceHealth",
        "ResourceHealth": "1 resourceID s!, 2 health",
        "PodIP": "1 ip s!",
        "PodResourceClaimStatus": "1 name s!, 2 resourceClaimName s*",
        "HostIP": "1 ip s!",
    },
}

KINDS: dict[tuple[str, str], str] = {
    ("v1", "Pod"): "core.Pod",
}
