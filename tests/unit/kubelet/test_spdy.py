"""SPDY/3.1 framing and header compression (pocketkube.kubelet.server.spdy); the port-forward
handler driven by a hand-written client is in test_spdy_portforward.py."""

from __future__ import annotations

import struct
import zlib

import pytest

from pocketkube.kubelet.server.spdy import (
    CANCEL,
    DICTIONARY,
    FLAG_FIN,
    DataFrame,
    FrameReader,
    FrameWriter,
    GoAway,
    HeadersFrame,
    Ping,
    RstStream,
    Settings,
    SpdyError,
    SynReply,
    SynStream,
    WindowUpdate,
)

# The first frames kubectl 1.32 sent pocketkube for one local connection over plain SPDY: the
# error stream's SYN_STREAM, its half-close, then the data stream's SYN_STREAM. Their header
# blocks only inflate with the exact SPDY/3 dictionary (zlib checks its Adler-32, e3c6a7c2).
KUBECTL_FRAMES = bytes.fromhex(
    "800300010000003d0000000100000000000078f9e3c6a7c202253a703a2b294a4dcc851625aca9a0808614cb45"
    "a024cc6461c0c0c0c0590489c44c50e2663400000000ffff"
    "0000000101000000"
    "800300010000001a00000003000000000000826a25a406d56850299508000000ffff"
)


def test_dictionary_has_the_spdy3_layout() -> None:
    assert len(DICTIONARY) == 1423
    assert DICTIONARY.startswith(b"\x00\x00\x00\x07options\x00\x00\x00\x04head")
    assert b"\x00\x00\x00\x06200 OK\x00\x00\x00\x07version" in DICTIONARY
    assert DICTIONARY.endswith(b"charset=iso-8859-1,utf-,*,enq=0.")
    assert zlib.adler32(DICTIONARY) == 0xE3C6A7C2


def test_decodes_what_kubectl_sends_byte_by_byte() -> None:
    reader = FrameReader()
    frames = [f for i in range(len(KUBECTL_FRAMES)) for f in reader.feed(KUBECTL_FRAMES[i : i + 1])]
    assert frames == [
        SynStream(1, {"streamtype": ["error"], "port": ["80"], "requestid": ["0"]}),
        DataFrame(1, b"", fin=True),
        SynStream(3, {"port": ["80"], "requestid": ["0"], "streamtype": ["data"]}),
    ]


def test_every_frame_round_trips() -> None:
    frames = [
        SynStream(5, {"port": ["8080"], "x": ["a", "b"]}, associated_id=3, priority=7, slot=2,
                  flags=FLAG_FIN),
        SynReply(5, {}, flags=FLAG_FIN),
        HeadersFrame(5, {"k": ["v"]}),
        RstStream(7, CANCEL),
        Settings([(0, 4, 100), (1, 7, 65536)], flags=1),
        Ping(9),
        GoAway(11, 0),
        WindowUpdate(5, 65535),
        DataFrame(5, b"payload"),
        DataFrame(5, b"", fin=True),
        DataFrame(0x7FFFFFFF, bytes(70000)),
    ]  # fmt: skip
    writer, reader = FrameWriter(), FrameReader()
    wire = b"".join(writer.encode(f) for f in frames)
    assert reader.feed(wire[:100]) + reader.feed(wire[100:]) == frames


def test_header_blocks_share_one_compression_context_per_direction() -> None:
    writer, reader = FrameWriter(), FrameReader()
    headers = {"streamtype": ["data"], "port": ["80"], "requestid": ["41"]}
    encoded = [writer.encode(SynStream(i, headers)) for i in (1, 3, 5)]
    # Later blocks lean on what earlier ones left in the window.
    assert len(encoded[1]) < len(encoded[0]) and len(encoded[2]) < len(encoded[0])
    assert [f.headers for f in reader.feed(b"".join(encoded))] == [headers] * 3
    # So a block cannot be read without the ones before it.
    with pytest.raises(SpdyError):
        FrameReader().feed(encoded[1])


def test_control_frames_keep_their_wire_layout() -> None:
    assert FrameWriter().encode(Ping(3)) == b"\x80\x03\x00\x06\x00\x00\x00\x04\x00\x00\x00\x03"
    assert FrameWriter().encode(DataFrame(3, b"ab", fin=True)) == b"\x00\x00\x00\x03\x01\x00\x00\x02ab"
    assert FrameWriter().encode(RstStream(3, CANCEL)) == struct.pack(">HHIII", 0x8003, 3, 8, 3, 5)


def test_unknown_control_frames_are_skipped_and_bad_versions_refused() -> None:
    unknown = struct.pack(">HHI", 0x8003, 0x55, 4) + b"abcd"
    assert FrameReader().feed(unknown + FrameWriter().encode(Ping(1))) == [Ping(1)]
    with pytest.raises(SpdyError, match="version 2"):
        FrameReader().feed(struct.pack(">HHII", 0x8002, 6, 4, 1))
