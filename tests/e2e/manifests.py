"""Small manifest builders shared by the end-to-end tests."""

from __future__ import annotations


def deployment(name: str, image: str = "nginx:1.25", replicas: int = 1,
               labels: dict[str, str] | None = None, **spec: object) -> dict:
    """A minimal Deployment manifest selecting app=<name>."""
    match = {"app": name}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "labels": {**match, **(labels or {})}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": match},
            "template": {"metadata": {"labels": match},
                         "spec": {"containers": [{"name": "app", "image": image}]}},
            **spec,
        },
    }


def pod(name: str, labels: dict[str, str] | None = None, image: str = "busybox",
        **spec: object) -> dict:
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {"containers": [{"name": "c", "image": image}], **spec},
    }


def configmap(name: str, data: dict[str, str] | None = None,
              labels: dict[str, str] | None = None) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "labels": labels or {}}, "data": data or {"k": "v"}}
