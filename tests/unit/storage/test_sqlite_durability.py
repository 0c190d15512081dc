"""SQLite-only guarantees: an acknowledged write survives kill -9, and a reopened store
continues the revision sequence."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

from pocketkube.storage.sqlite import SQLiteBackend

WAIT = 30.0
ACKS_BEFORE_KILL = 300

# Eight concurrent writers (so kills land inside group commits), each printing a line per
# acknowledged create: "<revision> <key>".
WRITER = """
import asyncio, sys
from pathlib import Path
from pocketkube.storage.sqlite import SQLiteBackend

async def main():
    store = SQLiteBackend(Path(sys.argv[1]))
    await store.start()

    async def writer(w):
        i = 0
        while True:
            key = f"/registry/crash/{w}-{i}"
            rev = await store.create(key, key.encode())
            sys.stdout.write(f"{rev} {key}\\n")
            sys.stdout.flush()
            i += 1

    await asyncio.gather(*(writer(w) for w in range(8)))

asyncio.run(main())
"""


async def test_acknowledged_writes_survive_kill_9(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", WRITER, str(db), stdout=asyncio.subprocess.PIPE)
    assert proc.stdout is not None
    acked: dict[str, int] = {}
    try:
        while len(acked) < ACKS_BEFORE_KILL:
            line = await asyncio.wait_for(proc.stdout.readline(), WAIT)
            assert line, "the writer process exited early"
            rev, key = line.decode().split()
            acked[key] = int(rev)
    finally:
        proc.send_signal(signal.SIGKILL)
    # Lines already in the pipe were acknowledged before the kill too.
    rest = await asyncio.wait_for(proc.stdout.read(), WAIT)
    for line in rest.decode().splitlines():
        rev, key = line.split()
        acked[key] = int(rev)
    assert await asyncio.wait_for(proc.wait(), WAIT) == -signal.SIGKILL

    store = SQLiteBackend(db)
    await store.start()
    try:
        for key, rev in acked.items():
            kv = await store.get(key)
            assert kv is not None, f"acknowledged {key} at {rev} was lost"
            assert (kv.value, kv.mod_revision) == (key.encode(), rev)
        current = await store.current_revision()
        kvs, _, _ = await store.list("/registry/crash/")
        assert current >= max(acked.values())
        assert current == max(kv.mod_revision for kv in kvs)
        assert await store.create("/registry/after-crash", b"x") == current + 1
    finally:
        await store.close()


async def test_reopen_continues_after_compacted_tail(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    store = SQLiteBackend(db)
    await store.start()
    created = await store.create("/k", b"1")
    deleted, _ = await store.delete("/k")
    await store.compact(deleted)  # removes every row: only the sequence remembers `deleted`
    await store.close()

    store = SQLiteBackend(db)
    await store.start()
    try:
        assert await store.current_revision() == deleted == created + 1
        assert await store.compacted_revision() == deleted
        assert await store.get("/k") is None
        assert await store.create("/k", b"2") == deleted + 1
    finally:
        await store.close()
