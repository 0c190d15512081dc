"""The node agent's streaming server: logs, exec, attach and port-forward."""
