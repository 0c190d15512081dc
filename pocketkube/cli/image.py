"""`pocketkube image load|ls|rm`: the node's image store (`<data-dir>/images`) from the shell,
like `ctr images import`/`crictl images`/`crictl rmi`. Loading works while the node agent runs:
the store locks itself around changes.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TaskID, TaskProgressColumn, TextColumn

from pocketkube.config import default_data_dir
from pocketkube.kubelet.images import reference
from pocketkube.kubelet.images.service import ImageManager
from pocketkube.kubelet.runtime.interface import Image, ImageError


def add_parser(
    subparsers: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]
) -> None:
    image = subparsers.add_parser("image", help="load, list and remove the node's container images")
    # The shared options go on the leaf commands only: argparse lets a sub-command's defaults
    # overwrite values given before it.
    commands = image.add_subparsers(dest="image_command", metavar="COMMAND", required=True)
    load = commands.add_parser(
        "load",
        parents=parents,
        help="load images from docker-archive (docker save) or oci-archive files",
    )
    load.add_argument("files", nargs="+", type=Path, metavar="FILE")
    commands.add_parser("ls", parents=parents, help="list images, like crictl images")
    rm = commands.add_parser("rm", parents=parents, help="remove images by name or id")
    rm.add_argument("refs", nargs="+", metavar="REF")


def run(args: argparse.Namespace) -> int:
    out, err = Console(soft_wrap=True), Console(stderr=True, soft_wrap=True)
    manager = ImageManager((getattr(args, "data_dir", None) or default_data_dir()) / "images")
    if args.image_command == "load":
        return asyncio.run(_load(manager, args.files, out, err))
    if args.image_command == "rm":
        return asyncio.run(_remove(manager, args.refs, out, err))
    images = asyncio.run(manager.list())
    _plain(out, "\n".join(_table(images)))
    return 0


def _plain(console: Console, text: str) -> None:
    console.print(text, markup=False, highlight=False, emoji=False)


async def _load(manager: ImageManager, files: list[Path], out: Console, err: Console) -> int:
    status = 0
    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TaskProgressColumn())
    for path in files:
        with Progress(*columns, console=err, transient=True) as progress:
            try:
                images = await manager.load(path, _reporter(progress))
            except ImageError as error:
                _plain(err, f"error: {error.message}")
                status = 1
                continue
        for image in images:
            for name in image.repo_tags or [image.id]:
                label = "Loaded image" if image.repo_tags else "Loaded image ID"
                _plain(out, f"{label}: {name}")
    return status


def _reporter(progress: Progress) -> Callable[[str, int, int], None]:
    """A load progress callback drawing one bar per step ("loading x.tar", "unpacking y")."""
    tasks: dict[str, TaskID] = {}

    def update(what: str, done: int, total: int) -> None:
        if what not in tasks:
            tasks[what] = progress.add_task(what, total=total or None)
        progress.update(tasks[what], completed=done, total=total or None)

    return update


async def _remove(manager: ImageManager, refs: list[str], out: Console, err: Console) -> int:
    status = 0
    for ref in refs:
        removed = await manager.delete(ref)
        if not removed:
            _plain(err, f'error: no such image "{ref}"')
            status = 1
        for name in removed:
            _plain(out, f"Deleted: {name}")
    return status


def human_size(size: float) -> str:
    """Decimal units with three significant digits, as docker's units.HumanSize prints."""
    units = ["B", "kB", "MB", "GB", "TB", "PB"]
    i = 0
    while size >= 1000 and i < len(units) - 1:
        size /= 1000
        i += 1
    return f"{size:.3g}{units[i]}"


def _table(images: list[Image]) -> list[str]:
    rows = []
    for image in images:
        short_id = image.id.removeprefix("sha256:")[:13]
        names = [reference.familiar(t) for t in image.repo_tags]
        if not names:
            names = [(d.partition("@")[0], "<none>") for d in image.repo_digests[:1]] or [
                ("<none>", "<none>")
            ]
        rows.extend((repo, tag, short_id, human_size(image.size)) for repo, tag in names)
    rows.sort()
    header = ("IMAGE", "TAG", "IMAGE ID", "SIZE")
    # crictl's tabwriter: columns at least 20 wide, 3 spaces of padding.
    widths = [max(20, *(len(r[i]) + 3 for r in [header, *rows])) for i in range(3)]
    return [
        "".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:3])) + row[3]
        for row in [header, *rows]
    ]
