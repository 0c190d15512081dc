"""Descriptor tables for core/v1 volume sources and volume projections.

Notation: see `tables.py`.
"""

TYPES: dict[str, dict[str, str]] = {
    "core": {
        "Volume": "1 name s!, 2 ~ VolumeSource",
        "VolumeSource": (
            "1 hostPath HostPathVolumeSource*, 2 emptyDir EmptyDirVolumeSource*, "
            "3 gcePersistentDisk GCEPersistentDiskVolumeSource*, "
            "4 awsElasticBlockStore AWSElasticBlockStoreVolumeSource*, "
            "5 gitRepo GitRepoVolumeSource*, 6 secret SecretVolumeSource*, 7 nfs NFSVolumeSource*, "
            "8 iscsi ISCSIVolumeSource*, 9 glusterfs GlusterfsVolumeSource*, "
            "10 persistentVolumeClaim PersistentVolumeClaimVolumeSource*, 11 rbd RBDVolumeSource*, "
            "12 flexVolume FlexVolumeSource*, 13 cinder CinderVolumeSource*, "
            "14 cephfs CephFSVolumeSource*, 15 flocker FlockerVolumeSource*, "
            "16 downwardAPI DownwardAPIVolumeSource*, 17 fc FCVolumeSource*, "
            "18 azureFile AzureFileVolumeSource*, 19 configMap ConfigMapVolumeSource*, "
            "20 vsphereVolume VsphereVirtualDiskVolumeSource*, 21 quobyte QuobyteVolumeSource*, "
            "22 azureDisk AzureDiskVolumeSource*, "
            "23 photonPersistentDisk PhotonPersistentDiskVolumeSource*, "
            "24 portworxVolume PortworxVolumeSource*, 25 scaleIO ScaleIOVolumeSource*, "
            "26 projected ProjectedVolumeSource*, 27 storageos StorageOSVolumeSource*, "
            "28 csi CSIVolumeSource*, 29 ephemeral EphemeralVolumeSource*, "
            "30 image ImageVolumeSource*"
        ),
        "HostPathVolumeSource": "1 path s!, 2 type s*",
        "EmptyDirVolumeSource": "1 medium, 2 sizeLimit Quantity*",
        "GCEPersistentDiskVolumeSource": "1 pdName s!, 2 fsType, 3 partition i, 4 readOnly b",
        "AWSElasticBlockStoreVolumeSource": "1 volumeID s!, 2 fsType, 3 partition i, 4 readOnly b",
        "GitRepoVolumeSource": "1 repository s!, 2 revision, 3 directory",
        "SecretVolumeSource": "1 secretName, 2 items [KeyToPath, 3 defaultMode i*, 4 optional b*",
        "KeyToPath": "1 key s!, 2 path s!, 3 mode i*",
        "NFSVolumeSource": "1 server s!, 2 path s!, 3 readOnly b",
        "ISCSIVolumeSource": (
            "1 targetPortal s!, 2 iqn s!, 3 lun i!, 4 iscsiInterface, 5 fsType, 6 readOnly b, "
            "7 portals [, 8 chapAuthDiscovery b, 10 secretRef LocalObjectReference*, "
            "11 chapAuthSession b, 12 initiatorName s*"
        ),
        "GlusterfsVolumeSource": "1 endpoints s!, 2 path s!, 3 readOnly b",
        "PersistentVolumeClaimVolumeSource": "1 claimName s!, 2 readOnly b",
        "RBDVolumeSource": (
            "1 monitors [s!, 2 image s!, 3 fsType, 4 pool, 5 user, 6 keyring, "
            "7 secretRef LocalObjectReference*, 8 readOnly b"
        ),
        "FlexVolumeSource": (
            "1 driver s!, 2 fsType, 3 secretRef LocalObjectReference*, 4 readOnly b, 5 options {"
        ),
        "CinderVolumeSource": (
            "1 volumeID s!, 2 fsType, 3 readOnly b, 4 secretRef LocalObjectReference*"
        ),
        "CephFSVolumeSource": (
            "1 monitors [s!, 2 path, 3 user, 4 secretFile, 5 secretRef LocalObjectReference*, "
            "6 readOnly b"
        ),
        "FlockerVolumeSource": "1 datasetName, 2 datasetUUID",
        "DownwardAPIVolumeSource": "1 items [DownwardAPIVolumeFile, 2 defaultMode i*",
        "DownwardAPIVolumeFile": (
            "1 path s!, 2 fieldRef ObjectFieldSelector*, "
            "3 resourceFieldRef ResourceFieldSelector*, 4 mode i*"
        ),
        "ObjectFieldSelector": "1 apiVersion, 2 fieldPath s!",
        "ResourceFieldSelector": "1 containerName, 2 resource s!, 3 divisor Quantity",
        "FCVolumeSource": "1 targetWWNs [, 2 lun i*, 3 fsType, 4 readOnly b, 5 wwids [",
        "AzureFileVolumeSource": "1 secretName s!, 2 shareName s!, 3 readOnly b",
        "ConfigMapVolumeSource": (
            "1 ~ LocalObjectReference, 2 items [KeyToPath, 3 defaultMode i*, 4 optional b*"
        ),
        "VsphereVirtualDiskVolumeSource": (
            "1 volumePath s!, 2 fsType, 3 storagePolicyName, 4 storagePolicyID"
        ),
        "QuobyteVolumeSource": "1 registry s!, 2 volume s!, 3 readOnly b, 4 user, 5 group, 6 tenant",
        "AzureDiskVolumeSource": (
            "1 diskName s!, 2 diskURI s!, 3 cachingMode s*, 4 fsType s*, 5 readOnly b*, 6 kind s*"
        ),
        "PhotonPersistentDiskVolumeSource": "1 pdID s!, 2 fsType",
        "PortworxVolumeSource": "1 volumeID s!, 2 fsType, 3 readOnly b",
        "ScaleIOVolumeSource": (
            "1 gateway s!, 2 system s!, 3 secretRef LocalObjectReference*!, 4 sslEnabled b, "
            "5 protectionDomain, 6 storagePool, 7 storageMode, 8 volumeName, 9 fsType, "
            "10 readOnly b"
        ),
        "ProjectedVolumeSource": "1 sources [VolumeProjection!, 2 defaultMode i*",
        "VolumeProjection": (
            "1 secret SecretProjection*, 2 downwardAPI DownwardAPIProjection*, "
            "3 configMap ConfigMapProjection*, "
            "4 serviceAccountToken ServiceAccountTokenProjection*, "
            "5 clusterTrustBundle ClusterTrustBundleProjection*"
        ),
        "SecretProjection": "1 ~ LocalObjectReference, 2 items [KeyToPath, 4 optional b*",
        "DownwardAPIProjection": "1 items [DownwardAPIVolumeFile",
        "ConfigMapProjection": "1 ~ LocalObjectReference, 2 items [KeyToPath, 4 optional b*",
        "ServiceAccountTokenProjection": "1 audience, 2 expirationSeconds i*, 3 path s!",
        "ClusterTrustBundleProjection": (
            "1 name s*, 2 signerName s*, 3 labelSelector LabelSelector*, 4 path s!, 5 optional b*"
        ),
        "StorageOSVolumeSource": (
            "1 volumeName, 2 volumeNamespace, 3 fsType, 4 readOnly b, "
            "5 secretRef LocalObjectReference*"
        ),
        "CSIVolumeSource": (
            "1 driver s!, 2 readOnly b*, 3 fsType s*, 4 volumeAttributes {, "
            "5 nodePublishSecretRef LocalObjectReference*"
        ),
        "EphemeralVolumeSource": "1 volumeClaimTemplate PersistentVolumeClaimTemplate*",
        "PersistentVolumeClaimTemplate": "1 metadata ObjectMeta, 2 spec PersistentVolumeClaimSpec",
        "PersistentVolumeClaimSpec": (
            "1 accessModes [, 2 resources VolumeResourceRequirements, 3 volumeName, "
            "4 selector LabelSelector*, 5 storageClassName s*, 6 volumeMode s*, "
            "7 dataSource TypedLocalObjectReference*, 8 dataSourceRef TypedObjectReference*, "
            "9 volumeAttributesClassName s*"
        ),
        "VolumeResourceRequirements": "1 limits {Quantity, 2 requests {Quantity",
        "ImageVolumeSource": "1 reference, 2 pullPolicy",
    },
}

KINDS: dict[tuple[str, str], str] = {}
