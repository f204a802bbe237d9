"""structlog for the app and for gunicorn: one JSON line per event, the request id on each.

The request id lives in structlog's contextvars, bound in platform/hooks.py at the start of a
request and cleared there too, so stdlib loggers (gunicorn, SQLAlchemy, Flask) carry it as well.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Mapping, MutableMapping
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from gunicorn.glogging import Logger as GunicornLogger

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


# The atoms AccessLogger gathers: gunicorn.conf.py's access_log_format, and the JSON fields.
ACCESS_ATOMS = frozenset(ACCESS_FIELDS) | {"r"}
FORMAT_ATOM = re.compile(r"%\(([^)]*)\)")


class AccessLogger(GunicornLogger):
    """gunicorn's logger (gunicorn.conf.py's `logger_class`), with a cheaper access line.

    For each request gunicorn gathers ~60 atoms (every request header, response header and
    environ variable) and copies them again to escape quotes: about 35 µs of a token check's
    CPU, for a line that reads the nine of ACCESS_ATOMS. This gathers those nine, with
    the same values and escaping, and hands the same record to logging. A format that asks for
    any other atom (an operator's `--access-logformat`) gets gunicorn's own way."""

    def __init__(self, cfg: Any) -> None:
        super().__init__(cfg)
        wanted = set(FORMAT_ATOM.findall(cfg.access_log_format))
        self.short_atoms = wanted <= ACCESS_ATOMS

    def access(
        self, resp: Any, req: Any, environ: Mapping[str, Any], request_time: timedelta
    ) -> None:
        if not self.short_atoms:
            super().access(resp, req, environ, request_time)
            return
        log = self.access_log
        if not self.access_log_enabled or not log.isEnabledFor(logging.INFO):
            return
        atoms: dict[str, Any] = dict(
            h=environ.get("REMOTE_ADDR", "-"),
            r=_escaped(
                f"{environ['REQUEST_METHOD']} {environ['RAW_URI']} {environ['SERVER_PROTOCOL']}"
            ),
            s=str(resp.status).split(None, 1)[0],
            m=environ.get("REQUEST_METHOD"),
            U=_escaped(environ.get("PATH_INFO", "")),
            a=_escaped(environ.get("HTTP_USER_AGENT", "-")),
            B=getattr(resp, "sent", None),
            D=request_time.seconds * 1_000_000 + request_time.microseconds,
        )
        atoms["{x-request-id}o"] = _escaped(_header(resp.headers, "x-request-id"))
        handler = _only_handler(log)
        if handler is not None:  # all logging would do is hand our handler this line
            handler.write(json.dumps(access_fields(log.name, "info", time.time(), atoms)))
            return
        # makeRecord, not info(): logging would walk the stack for a caller nobody prints.
        log.handle(
            log.makeRecord(
                log.name, logging.INFO, "", 0, self.cfg.access_log_format, (atoms,), None
            )
        )


def _only_handler(log: logging.Logger) -> Handler | None:
    """The one handler a record of `log` reaches, when it is ours writing JSON access lines
    (gunicorn.conf.py's logging): then the access line skips the LogRecord and logging's
    dispatch. Any other set-up (a filter, another handler, a console format) gets logging's."""
    if log.handlers or log.filters or not log.propagate or log.parent is not logging.root:
        return None
    handlers = logging.root.handlers
    if len(handlers) != 1:
        return None
    handler = handlers[0]
    if not isinstance(handler, Handler) or handler.filters or handler.level > logging.INFO:
        return None
    formatter = handler.formatter
    return handler if isinstance(formatter, Formatter) and formatter.access_json else None


def _escaped(value: str) -> str:
    return value.replace('"', '\\"') if '"' in value else value


def _header(headers: list[tuple[str, str]], name: str) -> str:
    for key, value in headers:
        if key.lower() == name:
            return value
    return "-"


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
            line = self.format(record)
        except Exception:  # logging's own rule: a bad record is reported, never raised
            self.handleError(record)
            return True
        self.write(line, record)
        return True

    def write(self, line: str, record: logging.LogRecord | None = None) -> None:
        """One finished line, under the lock."""
        with self.lock:  # type: ignore[union-attr]
            try:
                self.stream.write(line + self.terminator)
                self.flush()
            except Exception:
                self.handleError(record or logging.makeLogRecord({"msg": line}))


class Formatter(structlog.stdlib.ProcessorFormatter):
    """structlog's formatter, with a short way for gunicorn's JSON access lines: one per
    request, they went through the whole processor chain (a twentieth of a token check's CPU)
    to come out as this same line (tests/app/platform/test_conventions.py compares the two)."""

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
    return access_fields(record.name, record.levelname.lower(), record.created, atoms)


def access_fields(
    logger: str, level: str, created: float, atoms: Mapping[str, Any]
) -> dict[str, Any]:
    """An access line's fields: what structlog's processor chain makes of gunicorn's record."""
    line: dict[str, Any] = {"event": "http.access", **structlog.contextvars.get_contextvars()}
    line |= {
        "level": level,
        "logger": logger,
        "timestamp": datetime.fromtimestamp(created, UTC).isoformat().replace("+00:00", "Z"),
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


def configure_mounted() -> None:
    """Mounted in a host app, authapp's events go to the host's logging as finished lines
    (key=value): the host's handlers and levels decide, and nothing of its set-up is replaced.
    A host that configured structlog itself keeps its configuration."""
    if structlog.is_configured():
        return
    structlog.configure(
        processors=[*SHARED_PROCESSORS, structlog.processors.KeyValueRenderer()],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
