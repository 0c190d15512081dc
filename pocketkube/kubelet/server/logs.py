"""Reading container logs written in the CRI format, as the kubelet serves them to `kubectl logs`.

Each line of a CRI log file is `<RFC3339Nano time> <stdout|stderr> <P|F> <content>`; `P` marks
a partial line whose continuation follows in the next record. This module implements what the
kubelet's `kuberuntime/logs` package does with such a file: start at the last N records
(tailLines), skip records older than a point in time (sinceSeconds/sinceTime), prefix each new
line with its timestamp (RFC3339Nano, trailing zeros trimmed, as Go prints it), stop after a
number of bytes (limitBytes) and, with follow, keep reading as the file grows until the
container has exited and the file is drained, across rotation (`0.log` renamed and recreated)
and truncation. It is hand-written because no library reads the CRI log format.

Disk reads run in worker threads, so a large log or a slow disk never stalls the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

log = logging.getLogger("pocketkube.kubelet.logs")

CHUNK = 64 * 1024
POLL_INTERVAL = 0.25  # seconds between looks at a followed file that has stopped growing

Write = Callable[[bytes], Awaitable[None]]


@dataclass
class LogOptions:
    tail: int = -1  # records from the end; -1 = all
    since_ns: int | None = None  # unix time in nanoseconds; older records are skipped
    timestamps: bool = False
    limit_bytes: int | None = None
    follow: bool = False


@dataclass
class Record:
    timestamp: bytes  # as kube prints it: RFC3339Nano, trailing zeros of the fraction trimmed
    time_ns: int
    stream: bytes  # b"stdout" | b"stderr"
    partial: bool
    content: bytes  # ends with b"\n" for a full line that had one


def parse_time(text: str) -> tuple[int, str]:
    """(unix nanoseconds, the timestamp as Go's RFC3339Nano formatting prints it).

    Raises ValueError for anything that is not an RFC 3339 time."""
    if len(text) < 20 or text[10] not in "Tt":
        raise ValueError(f"not an RFC 3339 time: {text!r}")
    base, rest = text[:19], text[19:]
    frac = ""
    if rest.startswith("."):
        end = 1
        while end < len(rest) and rest[end].isdigit():
            end += 1
        frac, rest = rest[1:end], rest[end:]
        if not frac or len(frac) > 9:
            raise ValueError(f"bad fraction in {text!r}")
    zone = "+00:00" if rest in ("Z", "z") else rest
    seconds = datetime.fromisoformat(base + zone).timestamp()
    nanos = int(frac.ljust(9, "0")) if frac else 0
    trimmed = frac.rstrip("0")
    out_zone = "Z" if zone in ("+00:00", "-00:00") else zone
    shown = f"{base}{'.' + trimmed if trimmed else ''}{out_zone}"
    return int(seconds) * 1_000_000_000 + nanos, shown


def parse_record(line: bytes) -> Record | None:
    """One CRI log line (with its trailing newline, if any) as a Record; None if malformed."""
    first = line.find(b" ")
    if first < 0:
        return None
    try:
        time_ns, shown = parse_time(line[:first].decode("ascii"))
    except (ValueError, UnicodeDecodeError):
        return None
    rest = line[first + 1:]
    second = rest.find(b" ")
    if second < 0:
        return None
    stream = rest[:second]
    if stream not in (b"stdout", b"stderr"):
        return None
    rest = rest[second + 1:]
    third = rest.find(b" ")
    if third < 0:
        # "<time> stdout F\n": an empty line written without the separator.
        tag, content = rest.rstrip(b"\n"), b"\n" if rest.endswith(b"\n") else b""
    else:
        tag, content = rest[:third], rest[third + 1:]
    partial = tag.split(b":")[0] == b"P"
    if partial and content.endswith(b"\n"):
        content = content[:-1]
    return Record(shown.encode(), time_ns, stream, partial, content)


def tail_start(f: BinaryIO, n: int) -> int:
    """The offset where the last `n` lines start (a last line without a newline is not
    counted), as the kubelet's FindTailLineStartIndex computes it."""
    if n < 0:
        return 0
    size = f.seek(0, os.SEEK_END)
    right, count, block, left = size, 0, b"", size
    while right > 0 and count <= n:
        left = max(0, right - CHUNK)
        f.seek(left)
        block = f.read(right - left)
        count += block.count(b"\n")
        right = left
    while count > n:
        idx = block.index(b"\n") + 1
        block = block[idx:]
        left += idx
        count -= 1
    return left


class _Writer:
    """Turns records into output bytes: since filter, timestamp prefix, byte limit."""

    def __init__(self, opts: LogOptions) -> None:
        self.opts = opts
        self.remain = opts.limit_bytes if opts.limit_bytes is not None else -1
        self.new_line = True
        self.records_left = opts.tail if opts.tail >= 0 and not opts.follow else -1
        self.done = self.records_left == 0 or self.remain == 0

    def add(self, rec: Record, out: bytearray) -> None:
        if self.done:
            return
        since = self.opts.since_ns
        if since is None or rec.time_ns >= since:
            line = rec.content
            if self.opts.timestamps and self.new_line:
                line = rec.timestamp + b" " + line
            if self.remain >= 0 and len(line) >= self.remain:
                line = line[:self.remain]
                self.done = True
            out += line
            if self.remain >= 0:
                self.remain -= len(line)
        self.new_line = rec.content.endswith(b"\n") if rec.content else True
        if self.records_left > 0:
            self.records_left -= 1
            if self.records_left == 0:
                self.done = True


def _file_state(f: BinaryIO, path: Path) -> str:
    """"same", "missing" (nothing at `path` right now: mid-rotation), "replaced" (`path` is
    another file: rotated) or "truncated" (the open file shrank below the read position)."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return "missing"
    own = os.fstat(f.fileno())
    if (st.st_ino, st.st_dev) != (own.st_ino, own.st_dev):
        return "replaced"
    return "truncated" if own.st_size < f.tell() else "same"


async def _sleep() -> None:
    await asyncio.sleep(POLL_INTERVAL)


async def stream_log(path: Path, opts: LogOptions, write: Write, *,
                     running: Callable[[], Awaitable[bool]] | None = None,
                     wait: Callable[[], Awaitable[None]] | None = None) -> None:
    """Write the log at `path` to `write` as the kubelet does for `/containerLogs`.

    With `opts.follow`, keeps going until `running()` says the container has stopped and the
    file is drained (or the byte limit is reached); `wait()` is awaited whenever the file has
    nothing new (a short sleep by default). Raises FileNotFoundError if `path` is missing."""
    f = await asyncio.to_thread(open, path, "rb")
    try:
        await asyncio.to_thread(lambda: f.seek(tail_start(f, opts.tail)))
        writer = _Writer(opts)
        reader = _Reader(f, writer)
        if writer.done:
            return
        while True:
            out = await reader.read_available()
            if out:
                await write(bytes(out))
            if writer.done:
                return
            if not reader.eof:
                continue
            if not opts.follow:
                tail = reader.finish()
                if tail:
                    await write(bytes(tail))
                return
            if running is not None and not await running():
                # Stopped: whatever it wrote is on disk now; drain it and end.
                out = await reader.read_available()
                if out:
                    await write(bytes(out))
                return
            state = await asyncio.to_thread(_file_state, f, path)
            if state == "replaced":
                # Rotated: drain the old file (the runtime may still have been writing to it
                # when the new one appeared), then continue at the start of the new one.
                out = await reader.read_available()
                if out:
                    await write(bytes(out))
                if writer.done:
                    return
                try:
                    new = await asyncio.to_thread(open, path, "rb")
                except FileNotFoundError:
                    continue
                f.close()
                f = new
                reader = _Reader(f, writer)
                continue
            if state == "truncated":
                log.debug("%s was truncated; reading it from the start", path)
                await asyncio.to_thread(f.seek, 0)
                reader.pending.clear()
                continue
            await (wait or _sleep)()
    finally:
        f.close()


class _Reader:
    """Reads what the file has now and turns its complete lines into output."""

    def __init__(self, f: BinaryIO, writer: _Writer) -> None:
        self.f = f
        self.writer = writer
        self.pending = bytearray()  # an incomplete last line, completed by a later read
        self.eof = False  # the last read reached the end of the file

    async def read_available(self) -> bytearray:
        """Output for what the file holds now, up to about CHUNK bytes per call (`eof` says
        whether the end was reached)."""
        out = bytearray()
        self.eof = False
        while not self.writer.done:
            data = await asyncio.to_thread(self.f.read, CHUNK)
            if not data:
                self.eof = True
                break
            self.pending += data
            end = self.pending.rfind(b"\n")
            if end < 0:
                continue
            lines = bytes(self.pending[:end + 1])
            del self.pending[:end + 1]
            start = 0
            while start < len(lines):
                stop = lines.index(b"\n", start) + 1
                self._add(lines[start:stop], out)
                start = stop
            if len(out) >= CHUNK:
                break
        return out

    def finish(self) -> bytearray:
        """The incomplete last line, when the file ends without a newline (not following)."""
        out = bytearray()
        if self.pending:
            self._add(bytes(self.pending), out)
            self.pending.clear()
        return out

    def _add(self, line: bytes, out: bytearray) -> None:
        rec = parse_record(line)
        if rec is None:
            log.debug("skipping a malformed log line: %r", line[:200])
            return
        self.writer.add(rec, out)
