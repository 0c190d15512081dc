"""Simulated nodes: Nodes that register, heartbeat and run the pods bound to them without
running any container, so the scheduler and controllers can be exercised on thousands of nodes
on one machine (component.py is the entry point)."""
