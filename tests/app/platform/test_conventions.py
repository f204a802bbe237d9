"""The JSON conventions of docs/api.md on every endpoint: IN-1, IN-4, ER-1."""

import json
import logging
import re

import pytest
import structlog

from authapp.platform import logs
from tests.conftest import PASSWORD

SIGNUP = "/api/v1/auth/signup"
LOGIN = "/api/v1/auth/login"


def assert_envelope(response, status, code):
    assert response.status_code == status
    assert response.mimetype == "application/json"
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"  # WB-7
    body = response.json
    assert set(body) == {"error", "request_id"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str)
    assert body["error"]["message"]
    assert body["request_id"] == response.headers["X-Request-ID"]
    assert "Traceback" not in response.get_data(as_text=True)


@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        ("email=a@example.com&password=x", "application/x-www-form-urlencoded"),
        ('{"email": "a@example.com"}', "text/plain"),
        ("<xml/>", "application/xml"),
        ('{"login": "a"}', None),
    ],
)
def test_non_json_body_is_415(client, data, content_type):
    """IN-1."""
    response = client.post(LOGIN, data=data, content_type=content_type)

    assert_envelope(response, 415, "unsupported_media_type")


@pytest.mark.parametrize("data", ['{"login": ', "{'login': 'a'}", "nul\x00", b"\xff\xfe{}"])
def test_broken_json_is_400_invalid_json(client, data):
    """IN-1."""
    response = client.post(LOGIN, data=data, content_type="application/json")

    assert_envelope(response, 400, "invalid_json")


def test_json_with_charset_is_accepted(client, make_user):
    make_user()
    response = client.post(
        LOGIN,
        data=f'{{"login": "ada@example.com", "password": "{PASSWORD}"}}',
        content_type="application/json; charset=utf-8",
    )

    assert response.status_code == 200


def test_body_over_the_limit_is_413(client):
    """IN-1: 64 KiB by default, also when the body is streamed without a length."""
    big = '{"login": "' + "x" * 70_000 + '", "password": "p"}'

    response = client.post(LOGIN, data=big, content_type="application/json")

    assert_envelope(response, 413, "payload_too_large")


@pytest.mark.config(MAX_CONTENT_LENGTH=2048)
def test_limit_follows_max_content_length(client):
    response = client.post(LOGIN, json={"login": "x" * 3000, "password": "p"})

    assert_envelope(response, 413, "payload_too_large")


def test_validation_error_has_fields_and_others_do_not(client):
    invalid = client.post(SIGNUP, json={"email": "nope", "password": PASSWORD})
    unknown = client.post(LOGIN, json={"login": "nobody@example.com", "password": PASSWORD})

    assert_envelope(invalid, 422, "validation_error")
    assert invalid.json["error"]["fields"]["email"]
    assert_envelope(unknown, 401, "invalid_credentials")
    assert "fields" not in unknown.json["error"]


def test_sane_request_id_is_echoed(client):
    """IN-4."""
    response = client.get("/healthz", headers={"X-Request-ID": "abc.DEF_123-xyz"})

    assert response.headers["X-Request-ID"] == "abc.DEF_123-xyz"


@pytest.mark.parametrize("incoming", ["has space", "x" * 65, "<script>", "semi;colon", ""])
def test_unsafe_request_id_is_replaced(client, incoming):
    """IN-4: an id that could inject into logs is never echoed."""
    response = client.post(LOGIN, json={"login": "nobody"}, headers={"X-Request-ID": incoming})

    replaced = response.headers["X-Request-ID"]
    assert replaced != incoming
    assert re.fullmatch(r"[A-Za-z0-9._-]{1,64}", replaced)
    assert response.json["request_id"] == replaced


def test_request_ids_differ_per_request(client):
    ids = {client.get("/healthz").headers["X-Request-ID"] for _ in range(5)}

    assert len(ids) == 5


def test_unknown_api_path_is_404_envelope(client):
    assert_envelope(client.get("/api/v1/nothing-here"), 404, "not_found")


@pytest.mark.parametrize("method", ["TRACE", "PUT", "DELETE"])
def test_wrong_method_is_405_envelope(client, method):
    """IN-4."""
    response = client.open("/api/v1/auth/login", method=method)

    assert_envelope(response, 405, "method_not_allowed")
    assert "POST" in response.headers["Allow"]


def test_unhandled_exception_is_a_generic_500(app, caplog):
    """ER-1: the client sees no trace; the log has it, with the request id."""

    @app.get("/api/v1/_boom")
    def boom():
        raise RuntimeError("secret internals: SELECT password_hash FROM users")

    response = app.test_client().get("/api/v1/_boom")

    assert_envelope(response, 500, "internal_error")
    text = response.get_data(as_text=True)
    assert "secret internals" not in text
    assert "RuntimeError" not in text
    logged = [r for r in caplog.records if "request.unhandled_error" in str(r.msg)]
    assert logged
    assert logged[0].exc_info is not None
    assert logged[0].msg["request_id"] == response.json["request_id"]


def test_api_answers_are_not_cached_and_carry_security_headers(client):
    """WB-4 (API part)."""
    response = client.post(LOGIN, json={"login": "nobody@example.com", "password": PASSWORD})

    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    csp = response.headers["Content-Security-Policy"]
    for directive in ("object-src 'none'", "base-uri 'none'", "frame-ancestors 'none'"):
        assert directive in csp
    assert response.headers["Referrer-Policy"]
    assert "Strict-Transport-Security" not in response.headers  # production only


@pytest.mark.config(AUTHAPP_ENV="production", BCRYPT_ROUNDS=10)
def test_production_answers_carry_hsts(client):
    response = client.get("/healthz")

    assert "max-age=31536000" in response.headers["Strict-Transport-Security"]


def test_duplicate_json_keys_take_the_last_value_consistently(client, make_user):
    """IN-4: parsed once, by one parser; the last duplicate wins everywhere."""
    make_user()
    body = (
        f'{{"login": "nobody@example.com", "login": "ada@example.com", "password": "{PASSWORD}"}}'
    )

    response = client.post(LOGIN, data=body, content_type="application/json")

    assert response.status_code == 200
    assert response.json["user"]["email"] == "ada@example.com"


def test_the_short_access_line_is_the_processor_chains_line():
    """logs.Formatter writes gunicorn's JSON access lines itself (a request's cheapest log
    line); it must be the line structlog's processor chain writes, timestamp aside."""

    atoms = {
        "h": "127.0.0.1",
        "r": "GET /api/v1/auth/me HTTP/1.1",
        "m": "GET",
        "U": "/api/v1/auth/me",
        "s": "200",
        "B": "321",
        "D": "1500",
        "{x-request-id}o": "abc-123",
        "a": "-",
    }
    record = logging.LogRecord(
        "gunicorn.access", logging.INFO, __file__, 1, '%(h)s "%(r)s" %(s)s', (atoms,), None
    )
    structlog.contextvars.bind_contextvars(request_id="abc-123")
    try:
        short = json.loads(logs.make_formatter("json").format(record))
        chain = json.loads(
            structlog.stdlib.ProcessorFormatter.format(logs.make_formatter(), record)
        )
    finally:
        structlog.contextvars.clear_contextvars()

    assert short.pop("timestamp").endswith("Z")
    chain.pop("timestamp")
    assert short == chain
    assert short["status"] == 200
    assert "user_agent" not in short


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def _access_record(logger_class: type, access_log_format: str) -> logging.LogRecord:
    """One access record as a gunicorn logger of that class writes it, for a request whose URI
    and user agent hold quotes."""
    from datetime import timedelta
    from types import SimpleNamespace

    from gunicorn.config import Config

    cfg = Config()
    cfg.set("access_log_format", access_log_format)
    cfg.set("accesslog", "-")
    logger = logger_class(cfg)
    records = _Records()
    logger.access_log.handlers = [records]
    environ = {
        "REQUEST_METHOD": "GET",
        "RAW_URI": '/api/v1/auth/me?q="x"',
        "PATH_INFO": '/api/v1/"me"',
        "QUERY_STRING": 'q="x"',
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "10.0.0.7",
        "HTTP_USER_AGENT": 'curl "8"',
        "HTTP_AUTHORIZATION": "Bearer secret",
    }
    response = SimpleNamespace(
        status="201 CREATED",
        sent=321,
        headers=[("Content-Type", "application/json"), ("X-Request-ID", "abc-123")],
    )
    request = SimpleNamespace(headers=[("AUTHORIZATION", "Bearer secret")])
    logger.access(response, request, environ, timedelta(seconds=1, microseconds=2345))
    assert len(records.records) == 1
    return records.records[0]


def test_the_access_logger_gathers_the_atoms_gunicorn_gathers():
    """logs.AccessLogger builds only the atoms the access line prints (gunicorn builds ~60 per
    request): the record's message and every field of the JSON line are gunicorn's own."""
    from gunicorn.glogging import Logger

    access_format = '%(h)s "%(r)s" %(s)s %(B)s %(D)s %({x-request-id}o)s'
    ours = _access_record(logs.AccessLogger, access_format)
    theirs = _access_record(Logger, access_format)

    assert set(ours.args) == logs.ACCESS_ATOMS  # type: ignore[arg-type]
    assert "{authorization}i" in theirs.args  # type: ignore[operator]
    assert ours.getMessage() == theirs.getMessage()
    assert ours.getMessage() == (
        '10.0.0.7 "GET /api/v1/auth/me?q=\\"x\\" HTTP/1.1" 201 321 1002345 abc-123'
    )
    line = logs.access_line(ours, ours.args)  # type: ignore[arg-type]
    gunicorns = logs.access_line(theirs, theirs.args)  # type: ignore[arg-type]
    assert line.pop("timestamp")
    assert gunicorns.pop("timestamp")
    assert line == gunicorns
    assert line["user_agent"] == 'curl \\"8\\"'
    assert line["path"] == '/api/v1/\\"me\\"'


def test_an_access_format_with_other_atoms_is_gunicorns_own():
    from gunicorn.glogging import Logger

    access_format = "%(h)s %({authorization}i)s %(q)s %(t)s"
    ours = _access_record(logs.AccessLogger, access_format)
    theirs = _access_record(Logger, access_format)

    assert ours.getMessage().split()[:3] == ["10.0.0.7", "Bearer", "secret"]
    assert ours.getMessage()[:40] == theirs.getMessage()[:40]


def test_hooks_and_views_are_not_asked_on_every_request_whether_they_are_coroutines(
    app, client, monkeypatch
):
    """hooks.SyncFlask asks once per function; Flask asked 16 times a request."""
    import flask.app

    from authapp.platform import hooks

    asked: list[object] = []

    def counting(func: object) -> bool:
        asked.append(func)
        return False

    monkeypatch.setattr(flask.app, "iscoroutinefunction", counting)
    monkeypatch.setattr(hooks, "iscoroutinefunction", counting)
    hooks._is_coroutine_function.cache_clear()
    assert client.get("/healthz").status_code == 200
    first = len(asked)

    assert client.get("/healthz").status_code == 200
    assert client.get("/healthz").status_code == 200
    assert first > 0
    assert len(asked) == first


def test_a_coroutine_view_still_gets_flasks_own_treatment(app):
    """Wrapped to run in an event loop when asgiref is installed, refused otherwise."""
    from flask import Flask

    async def view() -> str:
        return "not for a sync app"

    def outcome(flask_app: Flask) -> tuple[str, str]:
        try:
            made = flask_app.ensure_sync(view)
        except RuntimeError as exc:
            return ("refused", str(exc))
        return ("wrapped" if made is not view else "as is", "")

    assert outcome(app) == outcome(Flask("plain"))
    assert outcome(app)[0] != "as is"


def test_the_access_line_skips_logging_when_our_handler_alone_would_write_it(monkeypatch):
    """With gunicorn.conf.py's logging (the access logger propagating to our one JSON handler),
    AccessLogger hands that handler the finished line; it is the line logging would write."""
    import io
    from datetime import timedelta
    from types import SimpleNamespace

    from gunicorn.config import Config

    stream = io.StringIO()
    handler = logs.Handler(stream)
    handler.setFormatter(logs.make_formatter("json"))
    monkeypatch.setattr(logging.root, "handlers", [handler])
    cfg = Config()
    cfg.set("accesslog", "-")
    cfg.set("access_log_format", '%(h)s "%(r)s" %(s)s %(B)s %(D)s %({x-request-id}o)s')
    logger = logs.AccessLogger(cfg)
    monkeypatch.setattr(logger.access_log, "handlers", [])
    monkeypatch.setattr(logger.access_log, "propagate", True)
    environ = {
        "REQUEST_METHOD": "GET",
        "RAW_URI": "/healthz",
        "PATH_INFO": "/healthz",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "10.0.0.7",
    }
    response = SimpleNamespace(status="200 OK", sent=15, headers=[("X-Request-ID", "abc")])

    def no_record(*_args: object, **_kwargs: object) -> logging.LogRecord:
        raise AssertionError("the direct line should not need a LogRecord")

    with monkeypatch.context() as patched:
        patched.setattr(logger.access_log, "makeRecord", no_record)
        logger.access(response, None, environ, timedelta(microseconds=1500))
    logger.access_log.addFilter(lambda _record: True)  # a filter: logging's own way
    try:
        logger.access(response, None, environ, timedelta(microseconds=1500))
    finally:
        logger.access_log.filters.clear()

    direct, through_logging = (json.loads(line) for line in stream.getvalue().splitlines())
    assert direct.pop("timestamp").endswith("Z")
    through_logging.pop("timestamp")
    assert direct == through_logging
    assert direct["status"] == 200
    assert direct["request_id"] == "abc"
