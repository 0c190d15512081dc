"""`pocketkube start`, `stop` and `delete`: a background cluster, managed like minikube's.

`start` runs `pocketkube server` as a detached process (its own session, output to
<data-dir>/logs/server.log, pid in <data-dir>/server.pid), waits until the API server answers
/readyz over verified TLS, and points the user's kubeconfig at it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import errno
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from pocketkube.cli.apiclient import ApiClient
from pocketkube.cli.instance import Instance, Options, terminate
from pocketkube.cli.nodeparts import remembered_service_range
from pocketkube.cli.progress import StepFailed, Steps
from pocketkube.cli.server import prepare
from pocketkube.config import default_data_dir
from pocketkube.kubeconfig import merge_into_user_kubeconfig, remove_from_user_kubeconfig
from pocketkube.pki import PkiPaths

LOG_TAIL_LINES = 25


def start(
    instance: Instance, options: Options, out: Console, err: Console, wait_timeout: float = 60.0
) -> int:
    url = instance.url(options)
    pid = instance.running_pid()
    if pid is not None:
        running = instance.options()
        out.print(
            f"pocketkube is already running for {escape(str(instance.data_dir))} "
            f"(pid {pid}) at {escape(instance.url(running))}"
        )
        paths = PkiPaths.under(instance.server_config(running).pki_dir)
        kubeconfig = merge_into_user_kubeconfig(instance.url(running), paths, instance.name)
        _next_steps(out, instance, kubeconfig)
        return 0
    busy = _port_in_use(options.bind_address, options.port)
    if busy:
        err.print(f"[red]Cannot start:[/] {escape(busy)}. Choose another one with --port.")
        return 1
    steps = Steps(out)
    proc: subprocess.Popen[bytes] | None = None
    log_offset = 0
    out.print(f"Starting pocketkube in {escape(str(instance.data_dir))}")
    try:
        with steps.step("Generating certificates"):
            config = prepare(instance, options)
            paths = PkiPaths.under(config.pki_dir)
        with steps.step("Starting the control plane"):
            proc, log_offset = _spawn(instance, options)
            instance.write_pid(proc.pid)
        with steps.step("Waiting for the API server") as update:
            _wait_ready(proc, ApiClient(url, paths, timeout=2.0), wait_timeout, update)
        with steps.step("Starting components") as update:
            _wait_components(proc, ApiClient(url, paths, timeout=2.0), _expected(options),
                             wait_timeout, update)
        with steps.step("Configuring kubectl"):
            kubeconfig = merge_into_user_kubeconfig(url, paths, instance.name)
    except StepFailed as exc:
        err.print(f"[red]pocketkube failed to start:[/] {escape(str(exc))}")
        if proc is not None:
            if proc.poll() is None:
                terminate(proc.pid, timeout=10)
            proc.wait()
            instance.clear_pid(only=proc.pid)
            _print_log_tail(err, instance.log_path, log_offset)
        return 1
    out.print(f"[bold green]pocketkube is running[/] at {escape(url)}")
    _next_steps(out, instance, kubeconfig)
    return 0


def stop(instance: Instance, out: Console, timeout: float = 30.0) -> int:
    pid = instance.running_pid()
    if pid is None:
        instance.clear_pid()
        out.print(f"pocketkube is not running for {escape(str(instance.data_dir))}")
        return 0
    with Steps(out).step(f"Stopping pocketkube (pid {pid})"):
        graceful = terminate(pid, timeout)
    instance.clear_pid(only=pid)
    if not graceful:
        out.print(f"[yellow]The server did not stop within {timeout:g}s and was killed.[/]")
    out.print("pocketkube stopped")
    return 0


def delete(instance: Instance, out: Console, err: Console, timeout: float = 30.0) -> int:
    if instance.data_dir.exists() and not instance.is_marked() and any(instance.data_dir.iterdir()):
        err.print(
            f"[red]Refusing to delete {escape(str(instance.data_dir))}:[/] "
            "it was not created by pocketkube"
        )
        return 1
    stop(instance, out, timeout)
    if (instance.data_dir / "agent").exists():
        service_cidr = remembered_service_range(instance.data_dir / "agent",
                                                instance.options().service_cidr)
        _remove_node(instance.data_dir, service_cidr, err)
    name = instance.name
    if remove_from_user_kubeconfig(name):
        out.print(f"Removed context {escape(name)} from your kubeconfig")
    if instance.data_dir.exists():
        shutil.rmtree(instance.data_dir)
        out.print(f"Deleted {escape(str(instance.data_dir))}")
    return 0


def _remove_node(data_dir: Path, service_cidr: str, err: Console) -> None:
    """Stop the node's containers and remove its network and mounts before the data dir goes:
    containers outlive the server on purpose (a restarted node agent adopts them)."""
    from pocketkube.kubelet.cleanup import remove_node
    from pocketkube.proxy.component import cleanup as proxy_cleanup

    for what, step in (("the node's containers", remove_node(data_dir / "agent",
                                                              data_dir / "images")),
                       ("the service proxy's rules", proxy_cleanup(service_cidr))):
        try:
            asyncio.run(step)
        except Exception as e:  # noqa: BLE001 - still unmount and delete what can be
            err.print(f"[yellow]Cleaning up {what} failed:[/] {escape(str(e))}")
    prefix = str(data_dir.resolve()) + "/"
    mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()
              if len(line.split()) > 1 and line.split()[1].startswith(prefix)]
    for target in sorted(mounts, key=len, reverse=True):
        subprocess.run(["umount", "-l", target], check=False, capture_output=True)


def _spawn(instance: Instance, options: Options) -> tuple[subprocess.Popen[bytes], int]:
    cmd = [
        sys.executable, "-m", "pocketkube.cli.main", "server",
        "--data-dir", str(instance.data_dir),
        "--port", str(options.port),
        "--bind-address", options.bind_address,
        "--datastore", options.datastore,
        "--log-level", options.log_level,
        "--app", options.app,
    ]  # fmt: skip
    instance.log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(instance.log_path, "ab") as log_file:
        offset = log_file.tell()
        stamp = dt.datetime.now().astimezone().isoformat(timespec="seconds")
        log_file.write(f"--- pocketkube server starting at {stamp} ---\n".encode())
        log_file.flush()
        # A new session detaches it from the terminal: closing the shell does not stop it.
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            cwd=instance.data_dir,
            start_new_session=True,
            close_fds=True,
        )
    return proc, offset


def _wait_ready(
    proc: subprocess.Popen[bytes],
    client: ApiClient,
    timeout: float,
    update: Callable[[str], None],
) -> None:
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    while True:
        code = proc.poll()
        if code is not None:
            raise StepFailed(f"the server exited with code {code}")
        try:
            status, body = client.get("/readyz")
            if status == 200:
                return
            last = f"/readyz answered {status}: {body.decode(errors='replace').strip()[:200]}"
        except OSError as exc:
            last = str(exc)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise StepFailed(f"the API server was not ready after {timeout:g}s ({last})")
        update(f"({last})")
        time.sleep(min(0.2, remaining))


def _expected(options: Options) -> set[str]:
    names = {"controller-manager", "scheduler"}
    if getattr(options, "simulated_nodes", 0):
        names.add("simulated-nodes")
    return names


def _wait_components(
    proc: subprocess.Popen[bytes],
    client: ApiClient,
    expected: set[str],
    timeout: float,
    update: Callable[[str], None],
) -> None:
    """Wait until every expected component reports Healthy in componentstatuses, as
    `minikube start` waits for its components (a server without them answers 404: nothing to
    wait for)."""
    deadline = time.monotonic() + timeout
    while True:
        code = proc.poll()
        if code is not None:
            raise StepFailed(f"the server exited with code {code}")
        try:
            status, doc = client.get_json("/api/v1/componentstatuses")
        except OSError as exc:
            status, doc = 0, None
            waiting = str(exc)
        if status == 404:
            return
        if status == 200 and isinstance(doc, dict):
            healthy = {i["metadata"]["name"] for i in doc.get("items") or []
                       if any(c.get("type") == "Healthy" and c.get("status") == "True"
                              for c in i.get("conditions") or [])}
            missing = sorted(expected - healthy)
            if not missing:
                return
            waiting = "waiting for " + ", ".join(missing)
        elif status:
            waiting = f"componentstatuses answered {status}"
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise StepFailed(f"components were not healthy after {timeout:g}s ({waiting})")
        update(f"({waiting})")
        time.sleep(min(0.3, remaining))


def _port_in_use(host: str, port: int) -> str | None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return f"port {port} on {host} is already in use"
            return f"cannot listen on {host}:{port}: {exc.strerror}"
    return None


def _print_log_tail(err: Console, log_path: Path, offset: int) -> None:
    try:
        with open(log_path, "rb") as handle:
            handle.seek(offset)
            lines = handle.read().decode(errors="replace").splitlines()
    except OSError:
        return
    tail = lines[-LOG_TAIL_LINES:]
    err.print(f"Last lines of {escape(str(log_path))}:")
    for line in tail:
        err.print(f"  {escape(line)}", highlight=False, soft_wrap=True)


def _next_steps(out: Console, instance: Instance, kubeconfig: Path) -> None:
    out.print(
        f"\nkubectl now uses context [bold]{escape(instance.name)}[/] "
        f"(in {escape(str(kubeconfig))}). Try:\n"
        "  kubectl get ns\n"
        f"Standalone kubeconfig: {escape(str(instance.data_dir / 'kubeconfig'))}\n"
        f"Server log: {escape(str(instance.log_path))}\n"
        f"Stop it with: pocketkube stop{_data_dir_flag(instance)}"
    )


def _data_dir_flag(instance: Instance) -> str:
    if instance.data_dir == default_data_dir().expanduser().resolve():
        return ""
    return f" --data-dir {instance.data_dir}"
