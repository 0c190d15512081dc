"""The node agent (kubelet): runs the pods bound to its node as containers and reports them."""
