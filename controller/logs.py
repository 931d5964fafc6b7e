"""Logging per GBT-8.4.2: every record carries level, module, pid, process name,
time and content; levels error/warning/info/debug plus KEY for key events.

Rules:
- Records go to stderr (human form) and, when a state directory is given, to
  ``<state>/logs/cpn.jsonl`` (one JSON object per line, rotated at 10 MB × 5) so
  ``cpn logs`` and ``GET /api/v1/logs`` can search and download them.
- ``key_event(logger, msg, **fields)`` logs at KEY level (between INFO and
  WARNING) with structured fields: use it for things an operator must see
  (config applied, flow moved, site stale).
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

KEY = 25
logging.addLevelName(KEY, "KEY")

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "key": KEY,
          "warning": logging.WARNING, "error": logging.ERROR}
LOG_FILE = "logs/cpn.jsonl"


def key_event(logger: logging.Logger, msg: str, /, **fields: Any) -> None:
    """Log a key event (GBT-8.4.2 'key events') with structured ``fields``."""
    logger.log(KEY, msg, extra={"fields": fields})


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts % 1 * 1000):03d}Z"


def record_dict(record: logging.LogRecord) -> dict[str, Any]:
    out: dict[str, Any] = {
        "time": _iso(record.created),
        "level": record.levelname.lower(),
        "module": record.name,
        "pid": record.process,
        "process": record.processName if record.processName != "MainProcess"
        else _process_name(),
        "content": record.getMessage(),
    }
    fields = getattr(record, "fields", None)
    if fields:
        out["fields"] = fields
    if record.exc_info:
        out["exception"] = logging.Formatter().formatException(record.exc_info)
    return out


def _process_name() -> str:
    return os.environ.get("CPN_PROCESS_NAME") or Path(sys.argv[0]).name or "python"


class JsonLinesFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(record_dict(record), default=str, ensure_ascii=False)


class HumanFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        d = record_dict(record)
        extra = ""
        if "fields" in d:
            extra = " " + " ".join(f"{k}={v}" for k, v in d["fields"].items())
        text = (f"{d['time']} {d['level'].upper():7} {d['module']} "
                f"[{d['process']}:{d['pid']}] {d['content']}{extra}")
        if "exception" in d:
            text += "\n" + d["exception"]
        return text


def setup(level: str = "info", state_dir: str | Path | None = None, *, json_stderr: bool = False,
          process_name: str | None = None) -> Path | None:
    """Configure the root logger; returns the JSON-lines log path if any."""
    if process_name:
        os.environ["CPN_PROCESS_NAME"] = process_name
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, "_cpn", False):
            root.removeHandler(h)
    root.setLevel(LEVELS.get(level, logging.INFO))
    stderr = logging.StreamHandler(sys.stderr)
    stderr.setFormatter(JsonLinesFormatter() if json_stderr else HumanFormatter())
    stderr._cpn = True  # type: ignore[attr-defined]
    root.addHandler(stderr)
    path = None
    if state_dir is not None:
        path = Path(state_dir) / LOG_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        fh = logging.handlers.RotatingFileHandler(path, maxBytes=10_000_000, backupCount=5)
        fh.setFormatter(JsonLinesFormatter())
        fh.setLevel(logging.DEBUG)
        fh._cpn = True  # type: ignore[attr-defined]
        root.addHandler(fh)
    for noisy in ("uvicorn.access", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return path


def search(state_dir: str | Path, *, grep: str | None = None, level: str | None = None,
           module: str | None = None, limit: int = 1000) -> Iterator[dict[str, Any]]:
    """Records from the stored logs (oldest first, rotated files included), filtered:
    ``grep`` is a case-insensitive keyword, ``level`` the minimum level."""
    base = Path(state_dir) / LOG_FILE
    files = [base.with_name(f"{base.name}.{i}") for i in range(5, 0, -1)] + [base]
    min_level = LEVELS.get(level or "debug", logging.DEBUG)
    needle = grep.lower() if grep else None
    count = 0
    for f in files:
        if not f.exists():
            continue
        with f.open(encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if needle and needle not in line.lower():
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if LEVELS.get(rec.get("level", "info"), logging.INFO) < min_level:
                    continue
                if module and not str(rec.get("module", "")).startswith(module):
                    continue
                yield rec
                count += 1
                if count >= limit:
                    return
