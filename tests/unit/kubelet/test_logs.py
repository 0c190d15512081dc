"""CRI log reading: parsing, tail, since, timestamps, limitBytes and follow (growth, rotation,
truncation, the container's end)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from pocketkube.kubelet.server.logs import (
    LogOptions,
    parse_record,
    parse_time,
    stream_log,
    tail_start,
)

T0 = "2026-11-22T05:12:22.280657906+00:00"


def line(text: str, ts: str = T0, stream: str = "stdout", tag: str = "F") -> bytes:
    return f"{ts} {stream} {tag} {text}\n".encode()


def stamp(second: int, frac: str = "000000001") -> str:
    return f"2026-11-22T05:12:{second:02d}.{frac}+00:00"


async def read_all(path: Path, opts: LogOptions) -> bytes:
    out = bytearray()

    async def write(data: bytes) -> None:
        out.extend(data)

    await stream_log(path, opts, write)
    return bytes(out)


def test_parse_time_prints_like_go_rfc3339nano() -> None:
    ns, shown = parse_time(T0)
    assert shown == "2026-11-22T05:12:22.280657906Z"
    assert ns == 1795324342_280657906
    assert parse_time("2026-11-22T05:12:22.280000000+00:00")[1] == "2026-11-22T05:12:22.28Z"
    assert parse_time("2026-11-22T05:12:22.000000000Z")[1] == "2026-11-22T05:12:22Z"
    ns2, shown2 = parse_time("2026-11-22T07:12:22.5+02:00")
    assert shown2 == "2026-11-22T07:12:22.5+02:00"
    assert ns2 == 1795324342_500000000
    with pytest.raises(ValueError):
        parse_time("yesterday")


def test_parse_record() -> None:
    rec = parse_record(line("hello", stream="stderr"))
    assert rec is not None
    assert (rec.stream, rec.partial, rec.content) == (b"stderr", False, b"hello\n")
    part = parse_record(line("hel", tag="P"))
    assert part is not None and part.partial and part.content == b"hel"
    assert parse_record(f"{T0} stdout F\n".encode()).content == b"\n"  # type: ignore[union-attr]
    assert parse_record(b"garbage\n") is None
    assert parse_record(f"{T0} stdin F x\n".encode()) is None


def test_tail_start_counts_complete_lines(tmp_path: Path) -> None:
    p = tmp_path / "f"
    p.write_bytes(b"a\nb\nc\nincomplete")
    with p.open("rb") as f:
        assert tail_start(f, 2) == 2
        assert tail_start(f, 0) == 6
        assert tail_start(f, 10) == 0
        assert tail_start(f, -1) == 0


@pytest.fixture
def logfile(tmp_path: Path) -> Path:
    p = tmp_path / "0.log"
    p.write_bytes(
        line("one", stamp(1)) + line("two", stamp(2), "stderr") + line("thr", stamp(3), tag="P")
        + line("ee", stamp(4)) + line("four", stamp(5, "500000000")))
    return p


async def test_whole_log_joins_partial_lines(logfile: Path) -> None:
    assert await read_all(logfile, LogOptions()) == b"one\ntwo\nthree\nfour\n"


async def test_tail(logfile: Path) -> None:
    assert await read_all(logfile, LogOptions(tail=2)) == b"ee\nfour\n"
    assert await read_all(logfile, LogOptions(tail=1)) == b"four\n"
    assert await read_all(logfile, LogOptions(tail=0)) == b""


async def test_timestamps_prefix_each_new_line_once(logfile: Path) -> None:
    out = await read_all(logfile, LogOptions(timestamps=True, tail=3))
    assert out == (b"2026-11-22T05:12:03.000000001Z three\n"
                   b"2026-11-22T05:12:05.5Z four\n")


async def test_since(logfile: Path) -> None:
    since, _ = parse_time(stamp(2))
    assert await read_all(logfile, LogOptions(since_ns=since)) == b"two\nthree\nfour\n"
    late, _ = parse_time(stamp(59))
    assert await read_all(logfile, LogOptions(since_ns=late)) == b""


async def test_limit_bytes(logfile: Path) -> None:
    assert await read_all(logfile, LogOptions(limit_bytes=6)) == b"one\ntw"
    assert await read_all(logfile, LogOptions(limit_bytes=4)) == b"one\n"


async def test_incomplete_last_line_is_shown_when_not_following(tmp_path: Path) -> None:
    p = tmp_path / "0.log"
    p.write_bytes(line("a") + f"{T0} stdout F b".encode())
    assert await read_all(p, LogOptions()) == b"a\nb"


async def test_large_log_is_read_in_full(tmp_path: Path) -> None:
    p = tmp_path / "0.log"
    p.write_bytes(b"".join(line(f"line {i:06d}") for i in range(20000)))
    out = await read_all(p, LogOptions())
    assert out.count(b"\n") == 20000
    assert out.endswith(b"line 019999\n")


class Follower:
    """Runs stream_log with follow on, a wake-up event instead of polling sleeps, and a
    running flag the test controls."""

    def __init__(self, path: Path, opts: LogOptions) -> None:
        self.path = path
        self.out = bytearray()
        self.alive = True
        self.wake = asyncio.Event()
        self.changed = asyncio.Condition()
        self.task = asyncio.create_task(stream_log(path, opts, self._write,
                                                   running=self._running, wait=self._wait))

    async def _write(self, data: bytes) -> None:
        async with self.changed:
            self.out += data
            self.changed.notify_all()

    async def _running(self) -> bool:
        return self.alive

    async def _wait(self) -> None:
        await self.wake.wait()
        self.wake.clear()

    def append(self, data: bytes, path: Path | None = None) -> None:
        with (path or self.path).open("ab") as f:
            f.write(data)
        self.wake.set()

    async def until(self, expected: bytes) -> None:
        async def check() -> None:
            async with self.changed:
                await self.changed.wait_for(lambda: bytes(self.out) == expected)

        try:
            await asyncio.wait_for(check(), 5)
        except TimeoutError:
            raise AssertionError(f"got {bytes(self.out)!r}, wanted {expected!r}") from None


async def test_follow_growth_rotation_truncation_and_end(tmp_path: Path) -> None:
    p = tmp_path / "0.log"
    p.write_bytes(line("old") + line("start"))
    fl = Follower(p, LogOptions(follow=True, tail=1))
    try:
        await fl.until(b"start\n")
        fl.append(line("grown"))
        await fl.until(b"start\ngrown\n")
        # Half a record, then the rest: the line comes out once, whole.
        fl.append(f"{T0} stdout F spl".encode())
        fl.append(b"it\n")
        await fl.until(b"start\ngrown\nsplit\n")
        # Rotation: the file is renamed and a new one takes its name.
        p.rename(tmp_path / "0.log.20261122-051222")
        fl.append(line("rotated"))
        await fl.until(b"start\ngrown\nsplit\nrotated\n")
        # Truncation in place: reading starts again at the beginning.
        p.write_bytes(b"")
        fl.append(line("t"))
        await fl.until(b"start\ngrown\nsplit\nrotated\nt\n")
        # The container ends after a last line: it is delivered, then the stream ends.
        fl.append(line("bye"))
        fl.alive = False
        await asyncio.wait_for(fl.task, 5)
        assert bytes(fl.out) == b"start\ngrown\nsplit\nrotated\nt\nbye\n"
    finally:
        fl.task.cancel()


async def test_follow_stops_at_the_byte_limit(tmp_path: Path) -> None:
    p = tmp_path / "0.log"
    p.write_bytes(line("abc"))
    fl = Follower(p, LogOptions(follow=True, limit_bytes=6))
    try:
        await fl.until(b"abc\n")
        fl.append(line("defgh"))
        await asyncio.wait_for(fl.task, 5)
        assert bytes(fl.out) == b"abc\nde"
    finally:
        fl.task.cancel()


async def test_missing_file_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        await read_all(tmp_path / "nope.log", LogOptions())
