"""Starting one container of a pod (kube's kuberuntime_container.go startContainer): pull the
image, build the container's configuration, create it, start it, run its postStart hook, with
kube's event at each step (Created, Started, Failed "Error: ...") and kube's waiting reason when
a step fails (ErrImagePull, ImagePullBackOff, CreateContainerConfigError, CreateContainerError,
RunContainerError, PostStartHookError), which the pod status then shows.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from pocketkube.kubelet import containers as ctr
from pocketkube.kubelet.imagepuller import ImagePuller, PullError
from pocketkube.kubelet.lifecycle import Lifecycle
from pocketkube.kubelet.pleg import PodRuntimeStatus
from pocketkube.kubelet.runtime.interface import ContainerConfig, Runtime, SandboxConfig

log = logging.getLogger("pocketkube.kubelet.starter")
Obj = dict[str, Any]

CREATE_CONFIG_ERROR = "CreateContainerConfigError"
CREATE_ERROR = "CreateContainerError"
RUN_ERROR = "RunContainerError"
POST_START_ERROR = "PostStartHookError"


class StartError(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


class ContainerStarter:
    def __init__(self, *, runtime: Runtime, puller: ImagePuller, lifecycle: Lifecycle,
                 recorder: Any, root: Path, env: Any, volumes: Any, objects: Any,
                 node_name: str, node_ip: str) -> None:
        self.runtime = runtime
        self.puller = puller
        self.lifecycle = lifecycle
        self.recorder = recorder
        self.root = root
        self.env = env
        self.volumes = volumes
        self.objects = objects
        self.node_name = node_name
        self.node_ip = node_ip

    async def pull_secrets(self, pod: Obj) -> list[dict]:
        ns = pod["metadata"].get("namespace", "")
        out = []
        for ref in (pod.get("spec") or {}).get("imagePullSecrets") or []:
            secret = await self.objects.secret(ns, ref.get("name", ""))
            if secret is not None:
                out.append(secret)
        return out

    async def config(self, pod: Obj, container: Obj, image: Any, attempt: int, pod_ip: str,
                     volume_dirs: dict[str, Path], init: bool) -> ContainerConfig:
        """The runtime configuration; raises ContainerConfigError (or the env builder's
        error) for CreateContainerConfigError."""
        spec = pod.get("spec") or {}
        ns = pod["metadata"].get("namespace", "")
        services = (await self.objects.services(ns)
                    if spec.get("enableServiceLinks", True) else [])
        image_env = list(image.config.get("Env") or [])
        env = await self.env.build_env(pod, container, image_env, self.objects,
                                       node_name=self.node_name, pod_ip=pod_ip,
                                       host_ip=self.node_ip, services=services)
        security = ctr.security(pod, container, image)
        # $(VAR) in command/args sees the container's own variables, not the image's.
        image_only = {e.split("=", 1)[0]: e.split("=", 1)[-1] for e in image_env}
        declared = {e.get("name") for e in container.get("env") or []}
        mapping = {k: v for k, v in env
                   if k in declared or k not in image_only or image_only[k] != v}
        command, args = ctr.expand_argv(container, mapping, self.env.expand)
        argv = ctr.merge_argv(image.config, command, args)
        if not argv:
            raise StartError(CREATE_ERROR, "no command specified")
        mounts = list(self.volumes.mounts(pod, container, volume_dirs, env))
        term_path = await asyncio.to_thread(ctr.make_termination_file, self.root, pod, container)
        mounts.append(ctr.termination_mount(container, term_path))
        log_file = ctr.log_path(self.root, pod, container["name"], attempt)
        await asyncio.to_thread(log_file.parent.mkdir, parents=True, exist_ok=True)
        return ContainerConfig(
            name=container["name"], attempt=attempt, image=image,
            image_ref=container.get("image") or "", argv=argv, env=list(env),
            working_dir=container.get("workingDir") or "", mounts=mounts,
            tty=bool(container.get("tty")), stdin=bool(container.get("stdin")),
            stdin_once=bool(container.get("stdinOnce")),
            resources=ctr.resources(pod, container), security=security, log_path=log_file,
            termination_message_host_path=term_path,
            termination_message_path=container.get("terminationMessagePath")
            or "/dev/termination-log",
            labels=ctr.labels(pod, container, attempt, term_path, init))

    async def start(self, pod: Obj, container: Obj, *, sandbox_id: str, sandbox: SandboxConfig,
                    pod_ip: str, status: PodRuntimeStatus, volume_dirs: dict[str, Path],
                    init: bool = False) -> str:
        """Start one container; its id. Raises StartError with the waiting reason."""
        name = container["name"]
        try:
            image = await self.puller.ensure(pod, container, await self.pull_secrets(pod))
        except PullError as e:
            ctr.record(self.recorder, pod, "Warning", "Failed", f"Error: {e.reason}", name)
            raise StartError(e.reason, e.message) from None
        previous = status.latest(name)
        if previous is not None:
            attempt = previous.attempt + 1
        else:
            directory = ctr.log_path(self.root, pod, name, 0).parent
            attempt = await asyncio.to_thread(ctr.restart_count_from_logs, directory)
        try:
            config = await self.config(pod, container, image, attempt, pod_ip, volume_dirs, init)
        except StartError as e:
            ctr.record(self.recorder, pod, "Warning", "Failed", f"Error: {e.message}", name)
            raise
        except Exception as e:
            message = getattr(e, "message", None) or str(e)
            ctr.record(self.recorder, pod, "Warning", "Failed", f"Error: {message}", name)
            raise StartError(CREATE_CONFIG_ERROR, message) from None
        try:
            cid = await self.runtime.create_container(sandbox_id, config, sandbox)
        except Exception as e:
            ctr.record(self.recorder, pod, "Warning", "Failed", f"Error: {e}", name)
            raise StartError(CREATE_ERROR, str(e)) from None
        ctr.record(self.recorder, pod, "Normal", "Created", f"Created container: {name}", name)
        try:
            await self.runtime.start_container(cid)
        except Exception as e:
            message = str(e).replace(cid, name)
            ctr.record(self.recorder, pod, "Warning", "Failed", f"Error: {message}", name)
            raise StartError(RUN_ERROR, message) from None
        ctr.record(self.recorder, pod, "Normal", "Started", f"Started container {name}", name)
        post_start = (container.get("lifecycle") or {}).get("postStart")
        if post_start:
            failure = await self.lifecycle.run_hook(pod, container, cid, post_start, pod_ip)
            if failure:
                log.warning("%s", failure)
                ctr.record(self.recorder, pod, "Warning", "FailedPostStartHook",
                           "PostStartHook failed", name)
                fresh = await self.runtime.container_status(cid)
                if fresh is not None:
                    await self.lifecycle.kill(pod, container, fresh,
                                              message="FailedPostStartHook", pod_ip=pod_ip)
                raise StartError(POST_START_ERROR, failure)
        return cid
