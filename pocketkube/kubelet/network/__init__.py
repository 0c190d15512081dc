"""Pod networking for the node agent: network namespaces and the CNI reference plugins."""
