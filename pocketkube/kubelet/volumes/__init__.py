"""Pod volumes for the node agent: emptyDir, hostPath, configMap, secret, downwardAPI and
projected (with service account tokens), laid out and kept current as kube's kubelet does.
`manager.VolumeManager` is the entry point; one module per volume kind."""
