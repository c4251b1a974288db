"""Line assembly and the log file format, fed the awkward splits real pipes produce."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from prismq_desktop.core.process.capture import LineAssembler, OutputCapture
from prismq_desktop.core.process.logfile import LOG_MAGIC, LogWriter, Stream, read_log


def feed_all(asm: LineAssembler, pieces: list[bytes]) -> list[str]:
    lines: list[str] = []
    for piece in pieces:
        lines += asm.feed_text(asm.decode(piece))
    return lines + asm.finish()


def test_crlf_split_across_chunks_is_one_line_end():
    asm = LineAssembler()
    assert feed_all(asm, [b"one\r", b"\ntwo\r\n"]) == ["one", "two"]


def test_carriage_return_overwrites_within_a_line():
    asm = LineAssembler()
    assert feed_all(asm, [b"10%\r20%", b"\r30%\nnext\n"]) == ["30%", "next"]
    asm = LineAssembler()
    asm.feed_text(asm.decode(b"\r 5%"))
    assert asm.current() == " 5%"
    asm.feed_text(asm.decode(b"\r 6%"))
    assert asm.current() == " 6%"


def test_multibyte_character_split_between_chunks():
    data = "ünïcødé €\n".encode()
    asm = LineAssembler()
    assert feed_all(asm, [data[i : i + 1] for i in range(len(data))]) == ["ünïcødé €"]


def test_undecodable_bytes_become_replacement_characters():
    asm = LineAssembler()
    assert feed_all(asm, [b"ok \xff\xfe end\n"]) == ["ok \ufffd\ufffd end"]


def test_per_run_encoding():
    asm = LineAssembler("latin-1")
    assert feed_all(asm, [b"caf\xe9\n"]) == ["café"]


def test_long_lines_are_clipped_in_memory():
    asm = LineAssembler(max_line_chars=10)
    lines = feed_all(asm, [b"a" * 25, b"b" * 5 + b"\nshort\n" + b"c" * 30 + b"\n"])
    assert lines[0] == "a" * 10 + "… [20 more characters in the log file]"
    assert lines[1] == "short"
    assert lines[2] == "c" * 10 + "… [20 more characters in the log file]"


@given(st.binary(max_size=300), st.lists(st.integers(min_value=0, max_value=300), max_size=8))
def test_any_chunking_gives_the_same_lines(data, cuts):
    cuts = sorted({c for c in cuts if c <= len(data)})
    pieces = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
    assert feed_all(LineAssembler(), pieces) == feed_all(LineAssembler(), [data])


def test_log_roundtrip_and_torn_tail(tmp_path):
    path = str(tmp_path / "run.log")
    w = LogWriter(path)
    w.write(Stream.STDOUT, b"out\n")
    w.write(Stream.STDERR, b"\x00\xff binary\n")
    w.meta(event="end")
    w.close()
    with open(path, "rb") as fh:
        assert fh.read(len(LOG_MAGIC)) == LOG_MAGIC
    records = [r for r, _ in read_log(path)]
    assert [(r.stream, r.data) for r in records[:2]] == [(Stream.STDOUT, b"out\n"), (Stream.STDERR, b"\x00\xff binary\n")]
    assert records[2].stream is Stream.META
    with open(path, "ab") as fh:
        fh.write(b"o 1.0 100\npartial")  # the app died mid-record
    assert len(list(read_log(path))) == 3


def test_capture_tail_is_bounded_and_keeps_streams_apart():
    cap = OutputCapture(None, tail_lines=3)
    cap.feed(Stream.STDOUT, b"1\n2\n")
    cap.feed(Stream.STDERR, b"e1\n")
    cap.feed(Stream.STDOUT, b"3\n4")
    assert cap.tail_lines() == [(Stream.STDOUT, "2"), (Stream.STDERR, "e1"), (Stream.STDOUT, "3"), (Stream.STDOUT, "4")]
    cap.finish()
    assert list(cap.tail) == [(Stream.STDERR, "e1"), (Stream.STDOUT, "3"), (Stream.STDOUT, "4")]
    assert cap.bytes_read == {Stream.STDOUT: 7, Stream.STDERR: 3}
