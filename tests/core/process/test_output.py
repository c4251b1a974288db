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


_pieces = st.lists(
    st.tuples(
        st.booleans(),
        st.lists(st.sampled_from([b"a", b"bb\n", b"\n", b"\r", b"\r\n", "é€".encode(), b"\xff", b"x" * 40]), max_size=60),
    ),
    max_size=25,
)


def reference_tail(
    feeds: list[tuple[Stream, bytes]], tail_lines: int, max_line_chars: int, final: bool = True
) -> list[tuple[Stream, str]]:
    """What the tail must be: every line of each stream, assembled one by one, in feed order
    (and, when `final`, the streams' last unfinished lines)."""
    asm = {s: LineAssembler(max_line_chars=max_line_chars) for s in (Stream.STDOUT, Stream.STDERR)}
    lines: list[tuple[Stream, str]] = []
    for stream, data in feeds:
        lines += [(stream, line) for line in asm[stream].feed_text(asm[stream].decode(data))]
    for stream in (Stream.STDOUT, Stream.STDERR) if final else ():
        lines += [(stream, line) for line in asm[stream].finish()]
    return lines[-tail_lines:]


@given(
    _pieces,
    st.integers(min_value=1, max_value=12),
    st.sampled_from([(0, 0), (8, 30), (4096, 1 << 20)]),
    st.sampled_from([1, 2, 96]),
)
def test_the_lazily_counted_tail_is_the_eagerly_assembled_one(pieces, tail_lines, limits, window):
    """Big blocks are counted only when the tail is trimmed or read, and a trim cuts a block to
    the lines a window at its end holds (window: characters per needed line): the tail must not notice."""
    from prismq_desktop.core.process import capture

    saved = capture.EAGER_COUNT_CHARS, capture.TRIM_CHARS, capture.WINDOW_PER_LINE
    capture.EAGER_COUNT_CHARS, capture.TRIM_CHARS = limits
    capture.WINDOW_PER_LINE = window
    try:
        feeds = [(Stream.STDERR if err else Stream.STDOUT, b"".join(parts)) for err, parts in pieces]
        cap = OutputCapture(None, tail_lines=tail_lines, max_line_chars=20)
        for i, (stream, data) in enumerate(feeds):
            cap.feed(stream, data)
            if i % 7 == 3:
                _ = cap.tail  # reading in the middle counts and trims; later feeds go on from there
        cap.finish()
        assert cap.tail == reference_tail(feeds, tail_lines, 20)
        assert cap.bytes_read[Stream.STDOUT] == sum(len(d) for s, d in feeds if s is Stream.STDOUT)
    finally:
        capture.EAGER_COUNT_CHARS, capture.TRIM_CHARS, capture.WINDOW_PER_LINE = saved


def test_a_firehose_tail_keeps_its_last_lines_and_bounded_text():
    from prismq_desktop.core.process import capture

    cap = OutputCapture(None, tail_lines=100)
    block = b"".join(b"%07d\n" % i for i in range(16384))  # 128 KiB, far past the eager count
    for _ in range(40):  # 5 MiB: several trims
        cap.feed(Stream.STDOUT, block)
    assert cap._uncounted <= capture.TRIM_CHARS and len(cap._blocks) <= capture.TRIM_CHARS // len(block) + 2
    tail = cap.tail
    assert len(tail) == 100 and tail[0] == (Stream.STDOUT, "0016284") and tail[-1] == (Stream.STDOUT, "0016383")


@given(st.text(alphabet="PRISMQ:OGE xQ\n", max_size=200), st.integers(min_value=0, max_value=200), st.booleans())
def test_has_protocol_is_the_substring_test(text, at, insert):
    from prismq_desktop.core.progress import PROTOCOL_PREFIX, has_protocol

    if insert:
        text = text[:at] + PROTOCOL_PREFIX + text[at:]
    assert has_protocol(text) == (PROTOCOL_PREFIX in text)


def test_a_trim_keeps_exactly_enough_blocks_for_the_tail():
    from prismq_desktop.core.process import capture

    saved = capture.EAGER_COUNT_CHARS, capture.TRIM_CHARS
    capture.EAGER_COUNT_CHARS, capture.TRIM_CHARS = 0, 0  # every block uncounted, trimmed at once
    try:
        for tail_lines in range(1, 10):
            cap = OutputCapture(None, tail_lines=tail_lines)
            feeds = [b"a\nb\nc\nd\n", b"e\nf\ng\nh\n", b"i\nj\n", b"k\nl\nm\n"]
            for data in feeds:
                cap.feed(Stream.STDOUT, data)
            want = [(Stream.STDOUT, c) for c in "abcdefghijklm"][-tail_lines:]
            assert cap.tail == want, tail_lines
    finally:
        capture.EAGER_COUNT_CHARS, capture.TRIM_CHARS = saved


def test_a_trim_that_cuts_a_block_to_its_last_lines_keeps_the_tail_exact():
    """A trim cuts a big block to the complete lines of a window at its end (both branches: one
    line left, several): whatever the window, the tail is the eagerly assembled one."""
    from prismq_desktop.core.process import capture

    saved = capture.EAGER_COUNT_CHARS, capture.TRIM_CHARS, capture.WINDOW_PER_LINE
    feeds = [
        (Stream.STDOUT, b"".join(b"%d%s\n" % (i, b"y" * (i % 7)) for i in range(300))),
        (Stream.STDERR, b"err-one\nerr-two\n" + b"z" * 50 + b"\n"),
        (Stream.STDOUT, b"tail of a line\n" + b"".join(b"l%03d\n" % i for i in range(120)) + b"partial"),
        (Stream.STDOUT, b"\xc3"),  # a split multibyte character across feeds
        (Stream.STDOUT, b"\xa9 done\n" + b"q" * 40 + b"\n" * 9),
        (Stream.STDOUT, b"".join(b"L%02d%s\n" % (i, b"w" * 30) for i in range(30))),  # long lines: clipped when read
    ]
    try:
        for window in (1, 2, 3, 8, 96):
            for tail_lines in (1, 2, 3, 5, 17, 200):
                capture.EAGER_COUNT_CHARS, capture.TRIM_CHARS, capture.WINDOW_PER_LINE = 0, 0, window
                cap = OutputCapture(None, tail_lines=tail_lines, max_line_chars=20)
                for i, (stream, data) in enumerate(feeds):
                    cap.feed(stream, data)
                    assert cap.tail == reference_tail(feeds[: i + 1], tail_lines, 20, final=False), (window, tail_lines, i)
                    for block in cap._blocks:  # a counted block's count is its lines, cut or not
                        lines = 1 if block[3] < 0 else 2 + block[2].count("\n", block[3], block[4])
                        assert block[5] in (-1, lines), (window, tail_lines, i)
                cap.finish()
                assert cap.tail == reference_tail(feeds, tail_lines, 20), (window, tail_lines)
    finally:
        capture.EAGER_COUNT_CHARS, capture.TRIM_CHARS, capture.WINDOW_PER_LINE = saved
