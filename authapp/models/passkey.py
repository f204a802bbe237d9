from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from authapp.models.base import ID, Base, UTCDateTime, new_id
from authapp.platform import clock

# WebAuthn allows credential ids of up to 1,023 bytes: 1,364 characters of base64url.
CREDENTIAL_ID_LENGTH = 1400


class Passkey(Base):
    """A WebAuthn credential of an account (docs/api.md "Passkeys"): its public key, never a
    secret. Looked up by the credential id the authenticator names in every assertion."""

    __tablename__ = "passkeys"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(
        ID, sa.ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    credential_id: Mapped[str] = mapped_column(sa.String(CREDENTIAL_ID_LENGTH), unique=True)
    public_key: Mapped[bytes] = mapped_column(sa.LargeBinary)  # COSE_Key, as registered
    # The authenticator's signature counter (uint32); 0 for authenticators that keep none.
    sign_count: Mapped[int] = mapped_column(sa.BigInteger, default=0, server_default="0")
    name: Mapped[str] = mapped_column(sa.String(100))
    transports: Mapped[str] = mapped_column(sa.String(200), default="", server_default="")
    aaguid: Mapped[str] = mapped_column(sa.String(36), default="", server_default="")
    backed_up: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class PasskeyChallenge(Base):
    """A challenge handed out with WebAuthn options, until a response spends it (once) or it
    expires. Kept as its SHA-256: the row alone cannot answer a ceremony.

    `user_id` binds it to one account (registration; the login's second step), `session_id`
    to the session that asked (registration); a passwordless login's challenge has neither."""

    __tablename__ = "passkey_challenges"
    __table_args__ = (sa.CheckConstraint("purpose IN ('register', 'login')", name="purpose"),)

    challenge_hash: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    purpose: Mapped[str] = mapped_column(sa.String(16))
    user_id: Mapped[str | None] = mapped_column(ID, sa.ForeignKey("users.id", ondelete="CASCADE"))
    session_id: Mapped[str | None] = mapped_column(ID)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
