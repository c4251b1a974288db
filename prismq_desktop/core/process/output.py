"""Output of a run: kept as one import path for existing callers.

The code lives in logfile.py (`LogWriter`, `read_log`, the framing, `Stream`) and capture.py
(`OutputCapture`, `LineAssembler`, `OutputChunk`); new code imports from there or from
`prismq_desktop.core.process`.
"""

from prismq_desktop.core.process.capture import CHUNK_SIZE, URGENT_BATCH_BYTES, LineAssembler, OutputCapture, OutputChunk
from prismq_desktop.core.process.logfile import LOG_MAGIC, LogRecord, LogWriter, Stream, read_log

__all__ = [
    "CHUNK_SIZE",
    "LOG_MAGIC",
    "URGENT_BATCH_BYTES",
    "LineAssembler",
    "LogRecord",
    "LogWriter",
    "OutputCapture",
    "OutputChunk",
    "Stream",
    "read_log",
]
