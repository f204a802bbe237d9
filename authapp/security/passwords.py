"""Password hashing and the password policy (docs/api.md "Passwords"; docs/security.md
"Passwords and hashing").

Stored form: bcrypt(base64(HMAC-SHA384(PASSWORD_PEPPER, NFKC(password)))). The pre-hash makes
every character count despite bcrypt's 72-byte limit, base64 keeps NUL bytes out of bcrypt, and
the pepper lives outside the database.

bcrypt runs on the process's own hashing threads, PASSWORD_HASH_CONCURRENCY of them, at a lower
OS priority (PASSWORD_HASH_NICE): a login flood then takes only the CPU that token checks and the
other requests leave, instead of starving them (docs/decisions.md "The hashing line"). The
requests for those threads form a line, first come, first served, of at most PASSWORD_HASH_QUEUE
waiting places: one that finds the line full is answered 503 at once, before any other work, and one
in line waits at most PASSWORD_HASH_WAIT_SECONDS (F11). A waiting request holds its gunicorn thread.
By default the line is longer than a worker's threads, so the threads bound it and a burst (F8's 100
sign-ups at once) waits its turn instead of failing; a line shorter than GUNICORN_THREADS keeps
threads free for token checks during a flood larger than the thread count, at the price of 503s in
bursts.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
import threading
import unicodedata
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import cache
from importlib import resources
from typing import TypeVar

import bcrypt
import structlog
from flask import Flask, current_app

from authapp.platform.errors import ServiceUnavailable

log = structlog.get_logger(__name__)
T = TypeVar("T")
MAX_LENGTH = 256
LINE_KEY = "authapp.password_line"
HASHERS_KEY = "authapp.password_hashers"
# Context words shorter than this are too common inside unrelated passwords to forbid.
MIN_CONTEXT_WORD = 4
_UNPAIRED_SURROGATE = re.compile("[\ud800-\udfff]")
_NOT_ALNUM = re.compile(r"[\W_]+")


class HashingLine:
    """The requests of one process that need a hashing thread: at most `concurrency` hashing
    (bcrypt releases the GIL, so this bounds how many cores it takes) and `queue` waiting, served
    first come, first served. A semaphore lets a newcomer take a slot that frees before the
    longest waiter wakes, and under load some waiters then sat out their whole wait and got a
    503 while others passed in milliseconds; here a freed slot goes to the head of the line."""

    def __init__(self, concurrency: int, queue: int) -> None:
        self._free = concurrency
        self._places = concurrency + queue
        self._in_line = 0
        self._waiting: deque[threading.Event] = deque()
        self._lock = threading.Lock()

    @property
    def in_line(self) -> int:
        return self._in_line  # read without the lock: a hint (refuse_if_full, tests)

    @property
    def full(self) -> bool:
        return self.in_line >= self._places

    @contextmanager
    def turn(self, wait: float) -> Iterator[None]:
        """Holds a hashing slot for the block, or raises the 503 when the line is full or no
        slot comes within `wait` seconds."""
        with self._lock:
            if self._in_line >= self._places:
                raise _busy()
            self._in_line += 1
            granted = self._free > 0 and not self._waiting
            if granted:
                self._free -= 1
            else:
                ticket = threading.Event()
                self._waiting.append(ticket)
        try:
            if not granted and not ticket.wait(wait) and not self._withdraw(ticket):
                raise _busy()
            try:
                yield
            finally:
                self._release()
        finally:
            with self._lock:
                self._in_line -= 1

    def _withdraw(self, ticket: threading.Event) -> bool:
        """Leaves the line after the wait ran out; True when the slot came just then."""
        with self._lock:
            if ticket.is_set():
                return True
            self._waiting.remove(ticket)
            return False

    def _release(self) -> None:
        with self._lock:
            if self._waiting:
                self._waiting.popleft().set()  # the slot passes straight to the longest waiter
            else:
                self._free += 1


def init_app(app: Flask) -> None:
    # Per process and never shared between processes.
    concurrency = app.config["PASSWORD_HASH_CONCURRENCY"]
    app.extensions[LINE_KEY] = HashingLine(concurrency, app.config["PASSWORD_HASH_QUEUE"])
    app.extensions[HASHERS_KEY] = _hashers(concurrency, app.config["PASSWORD_HASH_NICE"])


@cache  # one pool per process and setting (tests build many apps in one process)
def _hashers(concurrency: int, nice: int) -> ThreadPoolExecutor:
    """As many threads as slots, so a request holding a slot never waits for a thread; they
    start on first use."""
    return ThreadPoolExecutor(
        max_workers=concurrency,
        thread_name_prefix="bcrypt",
        initializer=_lower_priority,
        initargs=(nice,),
    )


def _lower_priority(nice: int) -> None:
    """Raise this thread's nice value (Linux schedules threads on their own): the scheduler
    then serves the request threads first whenever both want a core. Lowering one's own
    priority needs no privilege."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
    except (OSError, AttributeError) as exc:  # not Linux, or a sandbox refusing it
        log.warning("passwords.priority_unchanged", error=str(exc))


def normalize(password: str) -> str:
    return unicodedata.normalize("NFKC", password)


def _prehash(password: str) -> bytes:
    pepper = current_app.config["PASSWORD_PEPPER"].encode()
    # surrogatepass: a lone surrogate from JSON must fail to match, not raise.
    message = normalize(password).encode("utf-8", "surrogatepass")
    return base64.b64encode(hmac.new(pepper, message, hashlib.sha384).digest())


def _busy() -> ServiceUnavailable:
    return ServiceUnavailable(
        "The service is busy checking passwords; try again in a moment.",
        headers={"Retry-After": "1"},
    )


def refuse_if_full() -> None:
    """Raises the 503 now when the hashing line is full, so that a request bound to be refused
    does no database or Redis work first: in a flood, those refusals are most requests."""
    line: HashingLine = current_app.extensions[LINE_KEY]
    if line.full:
        raise _busy()


def _on_hashing_thread(work: Callable[[], T]) -> T:
    """Run `work` (bcrypt) on one of the process's hashing threads, in turn (F11)."""
    line: HashingLine = current_app.extensions[LINE_KEY]
    with line.turn(current_app.config["PASSWORD_HASH_WAIT_SECONDS"]):
        hashers: ThreadPoolExecutor = current_app.extensions[HASHERS_KEY]
        return hashers.submit(work).result()


def hash_password(password: str) -> str:
    salt, prehashed = bcrypt.gensalt(current_app.config["BCRYPT_ROUNDS"]), _prehash(password)
    return _on_hashing_thread(lambda: bcrypt.hashpw(prehashed, salt).decode())


def unusable_hash() -> str:
    """The hash of an account without a password (one made through an identity provider): of a
    random secret nobody holds, so every password path works unchanged and none opens."""
    return hash_password(secrets.token_urlsafe(32))


def verify_password(password: str, stored_hash: str | None) -> bool:
    """Checks against a dummy hash when there is no account, so both take the same time."""
    prehashed, rounds = _prehash(password), current_app.config["BCRYPT_ROUNDS"]

    def check() -> bool:
        return bcrypt.checkpw(prehashed, (stored_hash or _dummy_hash(rounds)).encode())

    return _on_hashing_thread(check) and stored_hash is not None


def needs_rehash(stored_hash: str) -> bool:
    return _rounds(stored_hash) != current_app.config["BCRYPT_ROUNDS"]


def _rounds(stored_hash: str) -> int:
    return int(stored_hash.split("$")[2])  # $2b$12$<salt+hash>


_dummy_lock = threading.Lock()


def _dummy_hash(rounds: int) -> str:
    """Made once per process (under a lock: a flood right after a worker starts must not make
    it on every thread at once), on a hashing thread."""
    with _dummy_lock:
        return _make_dummy_hash(rounds)


@cache
def _make_dummy_hash(rounds: int) -> str:
    return bcrypt.hashpw(b"no such account", bcrypt.gensalt(rounds)).decode()


@cache
def _common_passwords() -> frozenset[str]:
    text = resources.files("authapp").joinpath("data/common_passwords.txt").read_text("utf-8")
    return frozenset(line.strip() for line in text.splitlines() if line.strip())


def _squash(text: str) -> str:
    return _NOT_ALNUM.sub("", normalize(text).casefold())


def _context_words(email: str, username: str | None, full_name: str | None) -> set[str]:
    local_part = email.rsplit("@", 1)[0]
    words = {email, local_part, username or "", full_name or ""}
    words |= set(re.split(r"[\s._+-]+", f"{local_part} {full_name or ''}"))
    squashed = {_squash(word) for word in words}
    return {word for word in squashed if len(word) >= MIN_CONTEXT_WORD}


class Accepted(str):
    """A password the policy accepted beside these words (email, username, full name): a
    schema that judged it (auth/schemas.py SignupIn, so a form shows every error at once)
    hands the service this, and the service's own check (the one every caller passes through)
    does not judge it twice."""

    words: tuple[str, str | None, str | None]


def judge(
    password: str, *, email: str, username: str | None = None, full_name: str | None = None
) -> tuple[list[str], str]:
    """The policy's reasons, and `password` marked Accepted when there are none."""
    reasons = policy_errors(password, email=email, username=username, full_name=full_name)
    if reasons:
        return reasons, password
    marked = Accepted(password)
    marked.words = (email, username, full_name)
    return reasons, marked


def is_accepted(
    password: str, *, email: str, username: str | None = None, full_name: str | None = None
) -> bool:
    return isinstance(password, Accepted) and password.words == (email, username, full_name)


def policy_errors(
    password: str,
    *,
    email: str,
    username: str | None = None,
    full_name: str | None = None,
) -> list[str]:
    """Why `password` is refused (empty when it is fine); the same rules everywhere (PW-1..5)."""
    if _UNPAIRED_SURROGATE.search(password):
        return ["Contains invalid characters (unpaired surrogates)."]
    normalized = normalize(password)
    minimum = current_app.config["PASSWORD_MIN_LENGTH"]
    errors = []
    if len(normalized) < minimum:
        errors.append(f"Must be at least {minimum} characters.")
    if len(normalized) > MAX_LENGTH:
        errors.append(f"Must be at most {MAX_LENGTH} characters.")
    if normalized.casefold() in _common_passwords():
        errors.append("Is one of the most commonly used passwords; choose another.")
    squashed = _squash(password)
    if any(word in squashed for word in _context_words(email, username, full_name)):
        errors.append("Must not contain your email address, username or name.")
    return errors
