"""schemathesis over every operation of /api/openapi.json, in process, on PostgreSQL.

The document is read at collection time from an app that touches no database, so each
operation is its own test (spread over xdist's workers), and an operation that lands in a
blueprint is fuzzed without a change here. Each test then sends its cases to a seeded app on
the worker's PostgreSQL database as the organization's owner (tests/fuzz/conftest.py), with
rate limits off, and checks every answer: never a 5xx, a documented status, the documented
content type, body and headers (the error envelope with the status's codes, X-Request-ID).

Cases of the fuzzing phase draw, with the rest of the case, how the caller authenticates (the
owner's bearer token, an API key with every scope, or nothing but what schemathesis generated
for the security schemes) and whether known values (real ids, the owner's login and password)
replace random ones, and whether one field or query parameter holds a hostile value instead
(below); the coverage phase's boundary cases act with the owner's bearer token.
Nothing is excluded: a case that ends the caller's session (logout, logout-all, deleting the
current session, a password change) makes the next one log in again. The seed is fixed so CI
is reproducible.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import hypothesis
import schemathesis
from hypothesis import strategies as st

from tests.conftest import build_app
from tests.fuzz.conftest import Caller

# Cases per operation drawn by the fuzzing phase (the coverage phase adds its boundary cases):
# with the coverage phase about 1,700 cases in all. CI runs the fixed seed; explore locally
# with e.g. AUTHAPP_FUZZ_SEED=7 AUTHAPP_FUZZ_EXAMPLES=300.
MAX_EXAMPLES = int(os.environ.get("AUTHAPP_FUZZ_EXAMPLES", "25"))
CONFIG = schemathesis.Config.from_dict(
    {
        "seed": int(os.environ.get("AUTHAPP_FUZZ_SEED", "20261122")),
        "generation": {"max-examples": MAX_EXAMPLES, "database": "none"},
        "checks": {
            "enabled": False,
            "not_a_server_error": {"enabled": True},
            "status_code_conformance": {"enabled": True},
            "content_type_conformance": {"enabled": True},
            "response_schema_conformance": {"enabled": True},
            "response_headers_conformance": {"enabled": True},
        },
    }
)
# Only the document is read from this app: SQLite in memory is never connected to.
DOCUMENT_APP = build_app("sqlite://")
schema = schemathesis.openapi.from_wsgi("/api/openapi.json", DOCUMENT_APP, config=CONFIG)


AS = "X-Fuzz-As"  # how a case authenticates; drawn with the case, removed before it is sent
SECURITY_HEADERS = ("Authorization", "X-API-Key")
CREDENTIALS = ("bearer", "bearer", "bearer", "api_key", "api_key", "none")  # "none" last


# Hostile values (JW-8, IN-2): what a generator that follows the document never draws, and what
# broke real operations: a lone surrogate in a token (Python holds it, UTF-8 cannot encode it),
# control characters, huge values, JSON nested where a string belongs, and opaque strings (a
# cursor) that decode to JSON of any shape. One field of a case at most, so they cost no cases.
OFFSETS = st.timedeltas(min_value=timedelta(hours=-23), max_value=timedelta(hours=23))
TIMES = st.datetimes(timezones=OFFSETS.map(timezone)).map(datetime.isoformat)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=4) | TIMES | st.uuids().map(str),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=6,
)
# An opaque string (a cursor) that decodes to any JSON, or to the [time, id] pair the service
# writes in one with either part replaced by any value.
POSITIONS = st.tuples(TIMES | JSON_VALUES, st.uuids().map(str) | JSON_VALUES).map(list)
OPAQUE = (
    st.sampled_from([POSITIONS, POSITIONS, JSON_VALUES])
    .flatmap(lambda kind: kind)
    .map(lambda value: base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("="))
)
CONTROLS = st.text(st.characters(categories=["Cc"]), min_size=1, max_size=8)
HUGE = st.text(min_size=1, max_size=2).map(lambda text: text * 1_000)
# A URL cannot carry a lone surrogate: a query parameter gets the others.
HOSTILE_QUERY = st.sampled_from([OPAQUE, OPAQUE, CONTROLS, HUGE]).flatmap(lambda kind: kind)
SURROGATES = st.tuples(
    st.text(max_size=3), st.text(st.characters(categories=["Cs"]), min_size=1, max_size=3)
).map("".join)
NESTED = st.integers(1, 64).map(lambda depth: json.loads("[" * depth + "]" * depth))
HOSTILE_JSON = st.sampled_from(
    [SURROGATES, SURROGATES, CONTROLS, OPAQUE, HUGE, NESTED, JSON_VALUES]
).flatmap(lambda kind: kind)
Change = Callable[[schemathesis.Case], None]


def _hostile(case: schemathesis.Case) -> st.SearchStrategy[Change | None]:
    """Nothing, or putting a hostile value into one of the case's fields or query parameters."""
    body = case.body if isinstance(case.body, dict) else {}
    query = [parameter.name for parameter in case.operation.query]  # declared, sent or not
    targets = [("body", name) for name in body] + [("query", name) for name in query]
    if not targets:
        return st.none()
    changes = st.tuples(st.sampled_from(targets), HOSTILE_JSON, HOSTILE_QUERY).map(
        lambda drawn: _change(*drawn)
    )
    return st.sampled_from([False, True, True]).flatmap(
        lambda hostile: changes if hostile else st.none()
    )


def _surrogate_safe(case: schemathesis.Case, name: str) -> bool:
    """Whether schemathesis can check the field with a lone surrogate in it: its validator
    encodes the value as UTF-8 for a `format` or `pattern`, and fails on one. A form (token
    introspection) is encoded like a URL, which cannot carry one (nor JSON): it gets the
    query's hostile values."""
    if case.media_type == "application/x-www-form-urlencoded":
        return False
    body = case.operation.get_body_for_media_type(case.media_type or "application/json")
    field = (body.validation_schema.get("properties") or {}).get(name, {}) if body else {}
    text = json.dumps(field)
    return '"format"' not in text and '"pattern"' not in text


def _change(target: tuple[str, str], in_json: Any, in_query: str) -> Change:
    where, name = target

    def apply(case: schemathesis.Case) -> None:
        # New dicts: the drawn case's own may be mapped again while Hypothesis shrinks.
        if where == "body" and isinstance(case.body, dict):
            value = in_json if _surrogate_safe(case, name) else in_query
            case.body = {**case.body, name: value}
        elif where == "query":
            case.query = {**(case.query or {}), name: in_query}

    return apply


@schema.hook
def flatmap_case(_context: schemathesis.HookContext, case: schemathesis.Case) -> Any:
    """Fuzzing cases draw their credential, whether known values replace random ones, and
    whether a hostile value replaces one, so a failing case shrinks and replays as itself (the
    coverage phase's cases stay the owner's)."""
    return (
        _hostile(case)
        .flatmap(
            lambda hostile: st.tuples(
                # A hostile value is for the view to judge: sent with credentials that reach it.
                st.sampled_from(CREDENTIALS if hostile is None else CREDENTIALS[:-1]),
                st.booleans(),
                st.just(hostile),
            )
        )
        .map(lambda drawn: _marked(case, *drawn))
    )


def _marked(
    case: schemathesis.Case, credential: str, known: bool, hostile: Change | None
) -> schemathesis.Case:
    if hostile is not None:
        hostile(case)
    case.headers = {**(case.headers or {}), AS: f"{credential} known" if known else credential}
    return case


@schema.parametrize()
@hypothesis.settings(
    # One seeded app per operation, shared by its cases: the state they build up is the point.
    suppress_health_check=[hypothesis.HealthCheck.function_scoped_fixture],
)
def test_operations(case: schemathesis.Case, caller: Caller) -> None:
    credential, *known = (case.headers or {}).pop(AS, "bearer").split()
    if credential != "none":  # ours replace the credentials generated for the security schemes
        for name in SECURITY_HEADERS:
            (case.headers or {}).pop(name, None)
    if known:
        use_known_values(case, caller.known())
    response = case.call(app=caller.client.application, headers=caller.headers(credential))
    caller.record(case, response.status_code)
    case.validate_response(response)


def use_known_values(case: schemathesis.Case, values: dict[str, str]) -> None:
    """Put real ids and credentials where the case has a parameter or field of that name."""
    for name in case.path_parameters or {}:
        if name in values:
            case.path_parameters[name] = values[name]
    body: Any = case.body
    if isinstance(body, dict):
        for name in body.keys() & values.keys():
            body[name] = values[name]
