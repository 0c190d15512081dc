"""The node's log directory over the agent's server: `/logs/` and `/logs/{path}`, which the
kubelet serves from /var/log (reached as `kubectl get --raw /api/v1/nodes/NODE/proxy/logs/`).
A directory answers with the same HTML listing Go's http.FileServer writes; a file is sent as
it is; nothing outside the log directory is ever served, symlinks included.
"""

from __future__ import annotations

import asyncio
import html
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import quote

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def listing(directory: Path) -> str:
    """http.FileServer's directory listing: names sorted, directories with a trailing slash."""
    lines = ["<pre>"]
    for entry in sorted(os.scandir(directory), key=lambda e: e.name):
        name = entry.name + ("/" if entry.is_dir() else "")
        lines.append(f'<a href="{quote(name)}">{html.escape(name)}</a>')
    lines.append("</pre>")
    return "\n".join(lines) + "\n"


def resolve(root: Path, tail: str) -> Path | None:
    """The file `tail` names under `root`, or None when it leads outside it."""
    base = root.resolve()
    target = (base / tail.lstrip("/")).resolve()
    if target != base and base not in target.parents:
        return None
    return target


def handler(root: Path = Path("/var/log")) -> Handler:
    async def serve(request: web.Request) -> web.StreamResponse:
        tail = request.match_info.get("tail", "")
        target = resolve(root, tail)
        if target is None or not target.exists():
            raise web.HTTPNotFound(text="404 page not found\n")
        if target.is_dir():
            if tail and not tail.endswith("/"):
                # As http.FileServer: a directory is always addressed with its slash.
                raise web.HTTPMovedPermanently(location=request.path + "/")
            body = await asyncio.to_thread(listing, target)
            return web.Response(text=body, content_type="text/html")
        return web.FileResponse(target)

    return serve
