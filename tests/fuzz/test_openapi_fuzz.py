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
replace random ones; the coverage phase's boundary cases act with the owner's bearer token.
Nothing is excluded: a case that ends the caller's session (logout, logout-all, deleting the
current session, a password change) makes the next one log in again. The seed is fixed so CI
is reproducible.
"""

from __future__ import annotations

import os
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
CREDENTIALS = ("bearer", "bearer", "bearer", "api_key", "api_key", "none")


@schema.hook
def flatmap_case(_context: schemathesis.HookContext, case: schemathesis.Case) -> Any:
    """Fuzzing cases draw their credential and whether known values replace random ones, so a
    failing case shrinks and replays as itself (the coverage phase's cases stay the owner's)."""
    return st.tuples(st.sampled_from(CREDENTIALS), st.booleans()).map(
        lambda drawn: _marked(case, *drawn)
    )


def _marked(case: schemathesis.Case, credential: str, known: bool) -> schemathesis.Case:
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
