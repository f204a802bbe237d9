"""structlog for the app and for gunicorn: one JSON line per event, the request id on each.

The request id lives in structlog's contextvars, bound in hooks.py at the start of a request
and cleared there too, so stdlib loggers (gunicorn, SQLAlchemy, Flask) carry it as well.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, MutableMapping
from datetime import UTC, datetime
from typing import Any

import structlog

# gunicorn's access log passes its atoms as the record's args; these become fields.
ACCESS_FIELDS = {
    "h": "remote_addr",
    "m": "method",
    "U": "path",
    "s": "status",
    "B": "bytes",
    "D": "duration_us",
    "{x-request-id}o": "request_id",
    "a": "user_agent",
}


def _access_fields(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> Mapping[str, Any]:
    args = event_dict.pop("positional_args", None)
    if event_dict.get("logger") == "gunicorn.access" and isinstance(args, Mapping):
        atoms = args
        for atom, field in ACCESS_FIELDS.items():
            value = atoms.get(atom)
            if value not in (None, "-"):
                event_dict[field] = int(value) if field == "status" else value
        event_dict["event"] = "http.access"
    return event_dict


SHARED_PROCESSORS: list[Any] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


class Handler(logging.StreamHandler):  # type: ignore[type-arg]
    """Our stderr handler, recognisable so a second app in one process adds no duplicate.

    A line is formatted before the handler's lock is taken, not under it: every request writes
    one (gunicorn's access line), and with dozens of threads per worker the lock held through
    the formatting made threads queue for it."""

    def handle(self, record: logging.LogRecord) -> bool:
        if not self.filter(record):
            return False
        try:
            line = self.format(record) + self.terminator
        except Exception:  # logging's own rule: a bad record is reported, never raised
            self.handleError(record)
            return True
        with self.lock:  # type: ignore[union-attr]
            try:
                self.stream.write(line)
                self.flush()
            except Exception:
                self.handleError(record)
        return True


class Formatter(structlog.stdlib.ProcessorFormatter):
    """structlog's formatter, with a short way for gunicorn's JSON access lines: one per
    request, they went through the whole processor chain (a twentieth of a token check's CPU)
    to come out as this same line (tests/platform/test_conventions.py compares the two)."""

    def __init__(self, *args: Any, access_json: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.access_json = access_json

    def format(self, record: logging.LogRecord) -> str:
        if self.access_json and record.name == "gunicorn.access" and not record.exc_info:
            atoms = record.args
            if isinstance(atoms, Mapping):
                return json.dumps(access_line(record, atoms))
        return super().format(record)


def access_line(record: logging.LogRecord, atoms: Mapping[str, Any]) -> dict[str, Any]:
    line: dict[str, Any] = {"event": "http.access", **structlog.contextvars.get_contextvars()}
    line |= {
        "level": record.levelname.lower(),
        "logger": record.name,
        "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat().replace("+00:00", "Z"),
    }
    for atom, field in ACCESS_FIELDS.items():
        value = atoms.get(atom)
        if value not in (None, "-"):
            line[field] = int(value) if field == "status" else value
    return line


def make_formatter(log_format: str = "json") -> structlog.stdlib.ProcessorFormatter:
    """JSON (or console) lines; gunicorn.conf.py names this factory in its logconfig_dict."""
    renderer = (
        structlog.dev.ConsoleRenderer(colors=False)
        if log_format == "console"
        else structlog.processors.JSONRenderer()
    )
    return Formatter(
        access_json=log_format != "console",
        foreign_pre_chain=[*SHARED_PROCESSORS, structlog.stdlib.ExtraAdder()],
        pass_foreign_args=True,
        processors=[
            _access_fields,
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            renderer,
        ],
    )


def configure(settings: Mapping[str, Any]) -> None:
    structlog.configure(
        processors=[
            *SHARED_PROCESSORS,
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    root = logging.getLogger()
    root.setLevel(settings["LOG_LEVEL"])
    if any(isinstance(handler, Handler) for handler in root.handlers):
        return  # gunicorn.conf.py, or an earlier app in this process, installed it already
    handler = Handler()
    handler.setFormatter(make_formatter(settings["LOG_FORMAT"]))
    root.addHandler(handler)
