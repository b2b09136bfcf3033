"""The dry-run printer: one flushed stdout line per log line, tokens as fingerprints."""

from __future__ import annotations

import io
from datetime import datetime, timezone

import pytest

from logstream.deliver.printer import PrintSink
from logstream.lines import AgentToken, Level, LogLine, LineSink, fingerprint

TOKEN = AgentToken("5f0c7a4e-4a43-4d6f-9a0e-3b1f0b1c2d3e")
WHEN = datetime(2026, 1, 1, 10, 0, 0, 123000, tzinfo=timezone.utc)


def test_prints_time_level_fingerprint_text(capsys: pytest.CaptureFixture[str]) -> None:
    sink: LineSink = PrintSink()

    sink.submit(LogLine(TOKEN, Level.WARN, "Back-off pulling image", WHEN))
    sink.submit(LogLine(TOKEN, Level.DEBUG, "Scheduled", WHEN))

    assert capsys.readouterr().out.splitlines() == [
        f"2026-01-01T10:00:00.123Z warn {fingerprint(TOKEN)} Back-off pulling image",
        f"2026-01-01T10:00:00.123Z debug {fingerprint(TOKEN)} Scheduled",
    ]


def test_line_breaks_escaped_to_keep_one_line() -> None:
    stream = io.StringIO()
    sink = PrintSink(stream=stream)

    sink.submit(LogLine(TOKEN, Level.ERROR, "first\nsecond\r", WHEN))

    assert stream.getvalue() == f"2026-01-01T10:00:00.123Z error {fingerprint(TOKEN)} first\\nsecond\\r\n"


def test_token_never_printed_and_release_is_noop() -> None:
    stream = io.StringIO()
    sink = PrintSink(stream=stream)

    sink.submit(LogLine(TOKEN, Level.INFO, "hello", WHEN))
    sink.release(TOKEN)

    assert TOKEN not in stream.getvalue()
    assert stream.getvalue().count("\n") == 1


def test_each_line_flushed() -> None:
    class CountingStream(io.StringIO):
        flushes = 0

        def flush(self) -> None:
            self.flushes += 1

    stream = CountingStream()
    sink = PrintSink(stream=stream)

    sink.submit(LogLine(TOKEN, Level.INFO, "one", WHEN))
    sink.submit(LogLine(TOKEN, Level.INFO, "two", WHEN))

    assert stream.flushes == 2
