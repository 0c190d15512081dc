"""The pocketkube scheduler: kube-scheduler's behaviour over the API.

It watches unscheduled pods, nodes and assigned pods, keeps an in-memory cache of every node
with the pods on it (cache.py), orders pending pods in a scheduling queue with backoff and an
unschedulable set (queue.py), runs filter and score plugins (framework.py, plugins/) to pick a
node, assumes the pod there and binds it through `pods/binding` (scheduler.py), and preempts
lower-priority pods when nothing fits (preemption.py).
"""
