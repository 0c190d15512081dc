"""Cluster DNS: the names of Services and Pods under the cluster domain, answered as CoreDNS's
kubernetes plugin answers them, from caches fed by informers; other names go upstream."""
