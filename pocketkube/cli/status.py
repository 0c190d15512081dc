"""`pocketkube status` and `pocketkube version`.

Status reports what a user needs to trust the cluster: whether the server process runs, where
the API is, and the health of each part as the server itself reports it (`/readyz?verbose` and
the componentstatuses list), read with the admin credentials.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from pocketkube import __version__
from pocketkube.cli.apiclient import ApiClient, parse_checks
from pocketkube.cli.instance import Instance
from pocketkube.kubeconfig import user_kubeconfig_path
from pocketkube.pki import PkiPaths

EXIT_NOT_RUNNING = 1
EXIT_UNHEALTHY = 2


def status(instance: Instance, out: Console) -> int:
    options = instance.options()
    url = instance.url(options)
    pid = instance.running_pid()
    out.print(f"Data dir:    {escape(str(instance.data_dir))}")
    if pid is None:
        state = "Stopped" if instance.has_config() else "Not created"
        out.print(f"pocketkube:  [red]{state}[/]")
        return EXIT_NOT_RUNNING
    out.print(f"pocketkube:  [green]Running[/] (pid {pid})")
    out.print(f"API server:  {escape(url)}")
    out.print(
        f"Kubeconfig:  context {escape(instance.name)} in {escape(str(user_kubeconfig_path()))}"
    )
    client = _client(instance, url)
    try:
        code, body = client.get("/readyz?verbose")
    except OSError as exc:
        out.print(f"Health:      [red]unreachable[/] ({escape(str(exc))})")
        return EXIT_UNHEALTHY
    healthy = code == 200
    verdict = "[green]ready[/]" if healthy else f"[red]not ready[/] (HTTP {code})"
    out.print(f"Health:      {verdict}")
    checks = parse_checks(body.decode(errors="replace"))
    if checks:
        table = Table("Check", "Status", "Detail", box=None, pad_edge=False)
        for name, ok, detail in checks:
            table.add_row(escape(name), _mark(ok), escape(detail))
        out.print(table)
    _print_components(client, out)
    return 0 if healthy else EXIT_UNHEALTHY


def version(instance: Instance, out: Console) -> int:
    out.print(f"Client Version: {__version__}")
    if instance.running_pid() is None:
        out.print("Server Version: (not running)")
        return 0
    client = _client(instance, instance.url(instance.options()))
    try:
        code, info = client.get_json("/version")
    except OSError as exc:
        out.print(f"Server Version: (unreachable: {escape(str(exc))})")
        return 0
    if code == 200 and isinstance(info, dict):
        out.print(f"Server Version: {escape(str(info.get('gitVersion', 'unknown')))}")
    else:
        out.print(f"Server Version: (/version answered {code})")
    return 0


def _client(instance: Instance, url: str) -> ApiClient:
    paths = PkiPaths.under(instance.server_config(instance.options()).pki_dir)
    return ApiClient(url, paths)


def _print_components(client: ApiClient, out: Console) -> None:
    try:
        code, doc = client.get_json("/api/v1/componentstatuses")
    except OSError as exc:
        out.print(f"Components:  [red]unreachable[/] ({escape(str(exc))})")
        return
    if code != 200 or not isinstance(doc, dict):
        out.print(f"Components:  not reported (HTTP {code})")
        return
    table = Table("Component", "Status", "Message", box=None, pad_edge=False)
    for item in doc.get("items") or []:
        name, ok, message = _component(item)
        table.add_row(escape(name), _mark(ok), escape(message))
    out.print("Components:")
    out.print(table)


def _component(item: dict[str, Any]) -> tuple[str, bool, str]:
    name = str((item.get("metadata") or {}).get("name", "?"))
    for cond in item.get("conditions") or []:
        if cond.get("type") == "Healthy":
            detail = cond.get("message") or cond.get("error") or ""
            return name, cond.get("status") == "True", str(detail)
    return name, False, "no Healthy condition"


def _mark(ok: bool) -> str:
    return "[green]ok[/]" if ok else "[red]failing[/]"
