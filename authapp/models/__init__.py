"""Tables only: columns, relationships, named constraints; no rules and no commits."""

from authapp.models.audit import AuditEvent
from authapp.models.base import Base
from authapp.models.credential import ApiKey
from authapp.models.identity import Identity
from authapp.models.membership import Invitation, Membership, membership_roles
from authapp.models.mfa import RecoveryCode
from authapp.models.organization import TIER_RATE_LIMITS, Organization
from authapp.models.outbox import OneTimeToken, OutboxMessage
from authapp.models.passkey import Passkey, PasskeyChallenge
from authapp.models.role import Permission, Role, role_permissions
from authapp.models.session import RefreshToken, Session
from authapp.models.testing_clock import TestingClock
from authapp.models.throttle import LoginThrottle
from authapp.models.user import User

__all__ = [
    "ApiKey",
    "TIER_RATE_LIMITS",
    "AuditEvent",
    "Base",
    "Identity",
    "Invitation",
    "Membership",
    "OneTimeToken",
    "LoginThrottle",
    "Organization",
    "OutboxMessage",
    "Passkey",
    "PasskeyChallenge",
    "Permission",
    "RecoveryCode",
    "RefreshToken",
    "Role",
    "Session",
    "TestingClock",
    "User",
    "membership_roles",
    "role_permissions",
]
