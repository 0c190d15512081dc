"""SPDY/3.1 for the node agent's port-forward endpoint: framing, header compression, and a
server-side connection that multiplexes streams.

kubectl's port-forward speaks SPDY/3.1 (Go's moby/spdystream under k8s.io/apimachinery's
httpstream), either directly after an HTTP `Upgrade: SPDY/3.1` or tunnelled inside a websocket.
Browsers dropped SPDY in 2016 and no library on PyPI does SPDY/3.1 well: what exists is
unmaintained, predates 3.1 or binds the retired spdylay C library, and none gives an asyncio
server session. So pocketkube carries the small part it needs here:

* every SPDY/3 frame: SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS,
  WINDOW_UPDATE and DATA (with FIN);
* header blocks compressed with zlib primed with the SPDY/3 dictionary, one compression context
  per direction for the life of the connection, each block ended with a sync flush;
* flow control as spdystream does it: none. spdystream never sends WINDOW_UPDATE and ignores the
  ones it gets, so neither side may wait for window credit. Memory stays bounded because a stream
  whose reader falls behind stops the connection's reader (as spdystream's unbuffered channels
  do) and writers wait for the transport to drain.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import zlib
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

VERSION = 3
SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE = (
    1, 2, 3, 4, 6, 7, 8, 9)  # fmt: skip
FLAG_FIN = 0x01
FLAG_UNIDIRECTIONAL = 0x02
# RST_STREAM status codes (SPDY/3 section 2.4.2).
PROTOCOL_ERROR, INVALID_STREAM, REFUSED_STREAM, CANCEL, INTERNAL_ERROR = 1, 2, 3, 5, 6
MAX_LENGTH = 0xFFFFFF  # a frame's 24-bit length field
MAX_DATA = 32 * 1024  # what pocketkube puts in one DATA frame (spdystream's io.Copy size)

# The SPDY/3 header compression dictionary (draft 3, section 2.6.10.1): length-prefixed
# header names and common values, then an unprefixed tail of status codes, dates and types.
_WORDS = [
    "options", "head", "post", "put", "delete", "trace", "accept", "accept-charset",
    "accept-encoding", "accept-language", "accept-ranges", "age", "allow", "authorization",
    "cache-control", "connection", "content-base", "content-encoding", "content-language",
    "content-length", "content-location", "content-md5", "content-range", "content-type", "date",
    "etag", "expect", "expires", "from", "host", "if-match", "if-modified-since", "if-none-match",
    "if-range", "if-unmodified-since", "last-modified", "location", "max-forwards", "pragma",
    "proxy-authenticate", "proxy-authorization", "range", "referer", "retry-after", "server",
    "te", "trailer", "transfer-encoding", "upgrade", "user-agent", "vary", "via", "warning",
    "www-authenticate", "method", "get", "status", "200 OK", "version", "HTTP/1.1", "url",
    "public", "set-cookie", "keep-alive", "origin",
]  # fmt: skip
_TAIL = (
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504"
    "505203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request401 "
    "Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented503 "
    "Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, "
    "Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/gif,"
    "application/xml,application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age="
    "gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0."
)
DICTIONARY = (
    b"".join(struct.pack(">I", len(w)) + w.encode() for w in _WORDS) + _TAIL.encode()
)

Headers = dict[str, list[str]]  # lower-case name -> values (NUL-separated on the wire)


class SpdyError(Exception):
    """The peer broke the SPDY/3.1 framing; the connection cannot continue."""


@dataclass
class DataFrame:
    stream_id: int
    data: bytes = b""
    fin: bool = False


@dataclass
class SynStream:
    stream_id: int
    headers: Headers = field(default_factory=dict)
    associated_id: int = 0
    priority: int = 0
    slot: int = 0
    flags: int = 0


@dataclass
class SynReply:
    stream_id: int
    headers: Headers = field(default_factory=dict)
    flags: int = 0


@dataclass
class HeadersFrame:
    stream_id: int
    headers: Headers = field(default_factory=dict)
    flags: int = 0


@dataclass
class RstStream:
    stream_id: int
    status: int = CANCEL


@dataclass
class Settings:
    entries: list[tuple[int, int, int]] = field(default_factory=list)  # (flags, id, value)
    flags: int = 0


@dataclass
class Ping:
    id: int


@dataclass
class GoAway:
    last_good_stream_id: int
    status: int = 0


@dataclass
class WindowUpdate:
    stream_id: int
    delta: int


Frame = (DataFrame | SynStream | SynReply | HeadersFrame | RstStream | Settings | Ping | GoAway
         | WindowUpdate)  # fmt: skip


def _encode_block(headers: Headers) -> bytes:
    out = [struct.pack(">I", len(headers))]
    for name, values in headers.items():
        key, value = name.lower().encode(), "\x00".join(values).encode()
        out.append(struct.pack(">I", len(key)) + key + struct.pack(">I", len(value)) + value)
    return b"".join(out)


def _decode_block(raw: bytes) -> Headers:
    try:
        (count,), pos, headers = struct.unpack_from(">I", raw), 4, {}
        for _ in range(count):
            (n,) = struct.unpack_from(">I", raw, pos)
            name = raw[pos + 4 : pos + 4 + n].decode().lower()
            pos += 4 + n
            (n,) = struct.unpack_from(">I", raw, pos)
            value = raw[pos + 4 : pos + 4 + n].decode()
            pos += 4 + n
            headers.setdefault(name, []).extend(value.split("\x00"))
    except (struct.error, UnicodeDecodeError) as exc:
        raise SpdyError(f"invalid header block: {exc}") from exc
    return headers


class FrameWriter:
    """Encodes frames for one direction of a connection; owns that direction's compressor, so
    frames must be written to the wire in the order they were encoded."""

    def __init__(self) -> None:
        self._zlib = zlib.compressobj(zlib.Z_BEST_COMPRESSION, zlib.DEFLATED, 15, zdict=DICTIONARY)

    def _block(self, headers: Headers) -> bytes:
        return self._zlib.compress(_encode_block(headers)) + self._zlib.flush(zlib.Z_SYNC_FLUSH)

    def encode(self, frame: Frame) -> bytes:
        if isinstance(frame, DataFrame):
            flags = FLAG_FIN if frame.fin else 0
            head = struct.pack(">II", frame.stream_id & 0x7FFFFFFF, flags << 24 | len(frame.data))
            return head + frame.data
        if isinstance(frame, SynStream):
            kind, flags = SYN_STREAM, frame.flags
            body = struct.pack(">IIBB", frame.stream_id, frame.associated_id,
                               (frame.priority & 7) << 5, frame.slot) + self._block(frame.headers)  # fmt: skip
        elif isinstance(frame, SynReply | HeadersFrame):
            kind = SYN_REPLY if isinstance(frame, SynReply) else HEADERS
            flags, body = frame.flags, struct.pack(">I", frame.stream_id) + self._block(frame.headers)
        elif isinstance(frame, RstStream):
            kind, flags, body = RST_STREAM, 0, struct.pack(">II", frame.stream_id, frame.status)
        elif isinstance(frame, Settings):
            kind, flags = SETTINGS, frame.flags
            body = struct.pack(">I", len(frame.entries)) + b"".join(
                struct.pack(">II", f << 24 | i, v) for f, i, v in frame.entries)  # fmt: skip
        elif isinstance(frame, Ping):
            kind, flags, body = PING, 0, struct.pack(">I", frame.id)
        elif isinstance(frame, GoAway):
            kind, flags = GOAWAY, 0
            body = struct.pack(">II", frame.last_good_stream_id, frame.status)
        elif isinstance(frame, WindowUpdate):
            kind, flags, body = WINDOW_UPDATE, 0, struct.pack(">II", frame.stream_id, frame.delta)
        else:
            raise TypeError(f"not a SPDY frame: {frame!r}")
        return struct.pack(">HHI", 0x8000 | VERSION, kind, flags << 24 | len(body)) + body


class FrameReader:
    """Parses the bytes of one direction into frames, however they were split in transit; owns
    that direction's decompressor. Control frames of unknown types are skipped (SPDY/3 says
    receivers ignore them)."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._zlib = zlib.decompressobj(zdict=DICTIONARY)

    def _block(self, raw: bytes) -> Headers:
        try:
            return _decode_block(self._zlib.decompress(raw))
        except zlib.error as exc:
            raise SpdyError(f"cannot decompress header block: {exc}") from exc

    def feed(self, data: bytes) -> list[Frame]:
        self._buf += data
        frames: list[Frame] = []
        while len(self._buf) >= 8:
            word, flags_len = struct.unpack_from(">II", self._buf)
            flags, length = flags_len >> 24, flags_len & MAX_LENGTH
            if len(self._buf) < 8 + length:
                break
            body = bytes(self._buf[8 : 8 + length])
            del self._buf[: 8 + length]
            if not word & 0x80000000:
                frames.append(DataFrame(word, body, bool(flags & FLAG_FIN)))
                continue
            if word >> 16 & 0x7FFF != VERSION:
                raise SpdyError(f"unsupported SPDY version {word >> 16 & 0x7FFF}")
            frame = self._control(word & 0xFFFF, flags, body)
            if frame is not None:
                frames.append(frame)
        return frames

    def _control(self, kind: int, flags: int, body: bytes) -> Frame | None:
        try:
            if kind == SYN_STREAM:
                sid, assoc, pri, slot = struct.unpack_from(">IIBB", body)
                return SynStream(sid & 0x7FFFFFFF, self._block(body[10:]), assoc & 0x7FFFFFFF,
                                 pri >> 5, slot, flags)  # fmt: skip
            if kind in (SYN_REPLY, HEADERS):
                (sid,) = struct.unpack_from(">I", body)
                cls = SynReply if kind == SYN_REPLY else HeadersFrame
                return cls(sid & 0x7FFFFFFF, self._block(body[4:]), flags)
            if kind == RST_STREAM:
                sid, status = struct.unpack_from(">II", body)
                return RstStream(sid & 0x7FFFFFFF, status)
            if kind == SETTINGS:
                (count,) = struct.unpack_from(">I", body)
                pairs = [struct.unpack_from(">II", body, 4 + 8 * i) for i in range(count)]
                return Settings([(fi >> 24, fi & 0xFFFFFF, v) for fi, v in pairs], flags)
            if kind == PING:
                return Ping(struct.unpack_from(">I", body)[0])
            if kind == GOAWAY:
                last, status = struct.unpack_from(">II", body)
                return GoAway(last & 0x7FFFFFFF, status)
            if kind == WINDOW_UPDATE:
                sid, delta = struct.unpack_from(">II", body)
                return WindowUpdate(sid & 0x7FFFFFFF, delta & 0x7FFFFFFF)
        except struct.error as exc:
            raise SpdyError(f"short control frame of type {kind}") from exc
        return None


STREAM_BUFFER = 1 << 20  # bytes a stream holds for its reader before the connection waits


class StreamReset(ConnectionError):
    """The stream was reset, or its connection is gone."""


class SpdyStream:
    """One stream the peer opened: read what it sends (b"" after its FIN), write back, close
    (our FIN) or reset."""

    def __init__(self, conn: SpdyConnection, frame: SynStream) -> None:
        self.id = frame.stream_id
        self.headers = frame.headers
        self._conn = conn
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self.remote_closed = bool(frame.flags & FLAG_FIN)
        self.local_closed = bool(frame.flags & FLAG_UNIDIRECTIONAL)
        self.reset = False
        self._discarding = False
        self._changed = asyncio.Event()
        self._drained = asyncio.Event()

    def header(self, name: str) -> str:
        values = self.headers.get(name.lower())
        return values[0] if values else ""

    async def read(self) -> bytes:
        """The next chunk the peer sent; b"" once it half-closed; StreamReset on reset."""
        while not self._chunks:
            if self.reset:
                raise StreamReset(f"stream {self.id} reset")
            if self.remote_closed:
                return b""
            self._changed.clear()
            await self._changed.wait()
        if self.reset:
            raise StreamReset(f"stream {self.id} reset")
        chunk = self._chunks.popleft()
        self._buffered -= len(chunk)
        if self._buffered <= STREAM_BUFFER:
            self._drained.set()
        return chunk

    async def write(self, data: bytes) -> None:
        for start in range(0, len(data), MAX_DATA):
            if self.reset or self.local_closed:
                raise StreamReset(f"stream {self.id} is closed for writing")
            await self._conn.send(DataFrame(self.id, data[start : start + MAX_DATA]))

    async def close(self) -> None:
        """Half-close: a DATA frame with FIN (once; nothing after a reset)."""
        if self.local_closed or self.reset:
            return
        self.local_closed = True
        try:
            await self._conn.send(DataFrame(self.id, b"", fin=True))
        finally:
            self._conn._forget(self)

    async def reset_stream(self, status: int = CANCEL) -> None:
        if not self.reset:
            self._terminate()
            self._conn._forget(self)
            await self._conn.send(RstStream(self.id, status))

    def discard(self) -> None:
        """Nothing reads this stream any more: drop what it holds and whatever still comes, so
        it cannot hold up the connection."""
        self._discarding = True
        self._chunks.clear()
        self._buffered = 0
        self._drained.set()

    async def _deliver(self, data: bytes) -> None:
        if self.reset or self.remote_closed or self._discarding:
            return
        self._chunks.append(data)
        self._buffered += len(data)
        self._changed.set()
        # No flow control in spdystream: a slow reader holds up the whole connection instead.
        while self._buffered > STREAM_BUFFER and not self.reset:
            self._drained.clear()
            await self._drained.wait()

    def _remote_fin(self) -> None:
        self.remote_closed = True
        self._changed.set()
        self._conn._forget(self)

    def _terminate(self) -> None:
        self.reset = True
        self._changed.set()
        self._drained.set()


class SpdyConnection:
    """The server side of a SPDY/3.1 connection over any byte transport.

    `send` writes bytes to the peer and waits while the transport is backed up. Feed what the
    peer sends to `feed()`. For each SYN_STREAM `accept(stream)` returns None to accept (the
    stream gets its SYN_REPLY, then `opened(stream)` is called) or a reason to reject it with
    RST_STREAM, as apimachinery's connection does."""

    def __init__(self, send: Callable[[bytes], Awaitable[None]], *,
                 accept: Callable[[SpdyStream], str | None],
                 opened: Callable[[SpdyStream], None]) -> None:  # fmt: skip
        self._send_bytes = send
        self._accept = accept
        self._opened = opened
        self._reader = FrameReader()
        self._writer = FrameWriter()
        self._write_lock = asyncio.Lock()
        self.streams: dict[int, SpdyStream] = {}
        self.last_stream_id = 0
        self.going_away = False
        self.closed = False

    async def send(self, frame: Frame) -> None:
        if self.closed:
            raise StreamReset("connection closed")
        async with self._write_lock:  # the compressor's state must follow the wire order
            try:
                await self._send_bytes(self._writer.encode(frame))
            except (ConnectionError, RuntimeError) as exc:  # the transport went away
                self.terminate()
                raise StreamReset(f"connection closed: {exc}") from exc

    async def feed(self, data: bytes) -> None:
        for frame in self._reader.feed(data):
            await self._handle(frame)

    async def _handle(self, frame: Frame) -> None:
        if isinstance(frame, DataFrame):
            stream = self.streams.get(frame.stream_id)
            if stream is not None:  # frames for forgotten streams are dropped, as spdystream does
                if frame.data:
                    await stream._deliver(frame.data)
                if frame.fin:
                    stream._remote_fin()
        elif isinstance(frame, SynStream):
            await self._syn_stream(frame)
        elif isinstance(frame, RstStream):
            stream = self.streams.pop(frame.stream_id, None)
            if stream is not None:
                stream._terminate()
        elif isinstance(frame, Ping):
            if frame.id & 1:  # the client's pings are odd; ours (none are sent) would be even
                await self.send(frame)
        elif isinstance(frame, GoAway):
            self.going_away = True
        elif isinstance(frame, HeadersFrame) and frame.flags & FLAG_FIN:
            stream = self.streams.get(frame.stream_id)
            if stream is not None:
                stream._remote_fin()
        # SETTINGS, WINDOW_UPDATE and SYN_REPLY (we open no streams) need nothing.

    async def _syn_stream(self, frame: SynStream) -> None:
        sid = frame.stream_id
        if self.going_away:  # no new streams after GOAWAY (spdystream drops them too)
            return
        if sid < self.last_stream_id or sid in self.streams:  # spdystream's validateStreamId
            await self.send(RstStream(sid, PROTOCOL_ERROR))
            return
        self.last_stream_id = sid
        stream = SpdyStream(self, frame)
        reason = self._accept(stream)
        if reason is not None:
            log.warning("Stream rejected: %s", reason)
            stream._terminate()
            await self.send(RstStream(sid, CANCEL))
            return
        if not (stream.local_closed and stream.remote_closed):
            self.streams[sid] = stream
        await self.send(SynReply(sid))
        self._opened(stream)

    def _forget(self, stream: SpdyStream) -> None:
        if stream.reset or (stream.local_closed and stream.remote_closed):
            self.streams.pop(stream.id, None)

    async def go_away(self) -> None:
        """Tell the peer no more streams are accepted (GOAWAY, status OK)."""
        if not self.closed and not self.going_away:
            self.going_away = True
            await self.send(GoAway(self.last_stream_id, 0))

    def terminate(self) -> None:
        """The transport is gone: every stream's readers and writers fail with StreamReset."""
        self.closed = True
        for stream in self.streams.values():
            stream._terminate()
        self.streams.clear()
