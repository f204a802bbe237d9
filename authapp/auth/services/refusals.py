"""Refusals are security events: a service's refusal is audited as `access.denied` (AU-1) and
committed in a transaction of its own, after what the service had changed is rolled back."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from functools import wraps
from typing import Any, Concatenate, ParamSpec, TypeVar

from authapp.auth.principals import Principal
from authapp.platform import hooks
from authapp.platform.errors import Conflict, Forbidden, NotFound
from authapp.platform.extensions import db
from authapp.security import audit

P = ParamSpec("P")
R = TypeVar("R")
# Refusals of an organization action that a service decides, past the permission guard: 403s
# (AC-3: acting on an owner or on a member with more rights, a scope the caller lacks...), ids
# answered 404 (unknown or another organization's, AC-2) and the last owner kept (409).
REFUSALS = (Forbidden, NotFound, Conflict)
REFUSED_CONFLICTS = frozenset({"last_owner"})


def audit_refusals(
    action: str, *, target: str | None = None
) -> Callable[[Callable[Concatenate[Principal, P], R]], Callable[Concatenate[Principal, P], R]]:
    """Audit a service's refusals as `access.denied` (AU-1) with the `action`, the error's code
    and message and, if `target` names a parameter, the id it acted on. What the service had
    changed is rolled back; the refusal is committed, then raised."""

    def decorator(
        service: Callable[Concatenate[Principal, P], R],
    ) -> Callable[Concatenate[Principal, P], R]:
        signature = inspect.signature(service)

        @wraps(service)
        def audited(principal: Principal, *args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return service(principal, *args, **kwargs)
            except REFUSALS as exc:
                if isinstance(exc, Conflict) and exc.code not in REFUSED_CONFLICTS:
                    raise
                db.session.rollback()
                data = {"action": action, "code": exc.code, "reason": exc.message}
                if target is not None:
                    bound = signature.bind(principal, *args, **kwargs)
                    data["target"] = str(bound.arguments[target])
                record_refusal(principal, **data)
                raise

        return audited

    return decorator


def record_refusal(principal: Principal, **data: Any) -> None:
    """AU-1: a refusal is a security event too, committed even though the action is not."""
    where = hooks.request_line()
    audit.by_principal(
        "access.denied",
        principal,
        user_id=principal.user.id if principal.user else None,
        **data,
        **where,
    )
    db.session.commit()
