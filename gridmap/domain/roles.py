"""Who may do what: the roles of gridmap's users and API tokens (no SQL, no HTTP).

Staff roles are ordered, each allowed what the one below it is: ``viewer`` reads the map,
``dispatcher`` also records visits, ``planner`` also changes grids (partition, edits), ``admin``
everything.  ``ingest`` is outside the order: the role of scripts, which may record reports, risk
elements and visits and run lookups, nothing else (not even read the map).
"""

from __future__ import annotations

import hashlib
import secrets

from werkzeug.security import check_password_hash, generate_password_hash

from ..errors import InputError

#: Staff roles, lowest first.
ORDER = ("viewer", "dispatcher", "planner", "admin")
INGEST = "ingest"
ROLES = ORDER + (INGEST,)


def check_role(role: str) -> str:
    if role not in ROLES:
        raise InputError(f"unknown role {role!r}; roles: {', '.join(ROLES)}")
    return role


def allows(role: str | None, needed: str) -> bool:
    """Whether a user of ``role`` may do what needs ``needed``: a staff role at or above it in the
    order, or exactly ``ingest`` where ``ingest`` is needed (admins may do what scripts do)."""
    if role is None or role not in ROLES:
        return False
    if needed == INGEST:
        return role in (INGEST, "admin")
    check_role(needed)
    return role in ORDER and ORDER.index(role) >= ORDER.index(needed)


def allowed_by_any(role: str | None, needed) -> bool:
    """Whether ``role`` satisfies at least one of the ``needed`` roles."""
    return any(allows(role, n) for n in needed)


def describe(needed) -> str:
    """``("dispatcher", "ingest")`` → ``"dispatcher+, ingest"`` (``+``: or any role above it)."""
    return ", ".join(n if n == INGEST or n == ORDER[-1] else n + "+" for n in needed)


# --- tokens ---------------------------------------------------------------------------------------

TOKEN_PREFIX = "gm_"
#: Characters of a token kept in clear to name it (``gm_`` and 8 more): in ``gridmap users list``
#: and ``gridmap users revoke PREFIX``.
PREFIX_CHARS = len(TOKEN_PREFIX) + 8


def new_token() -> str:
    """A fresh bearer token: ``gm_`` and 256 random bits (43 URL-safe characters)."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """What the database keeps of a token: its SHA-256, hex.

    A fast hash is the right tool here: a token is 256 random bits, so nobody can guess it from
    its hash by trying candidates, slow hash or not.  Password KDFs (argon2, scrypt, bcrypt) exist
    to slow down guessing *low-entropy* secrets that people choose; they would only add tens of
    milliseconds to every authenticated request.  Being deterministic, it is also the lookup key.
    """
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def token_prefix(token: str) -> str:
    return token[:PREFIX_CHARS]


# --- passwords (map sign-in) ----------------------------------------------------------------------

#: Fewest characters of a sign-in password.
PASSWORD_MIN = 8
#: A token from a password sign-in lasts this many days (then the page asks to sign in again).
SESSION_DAYS = 1
SESSION_LABEL = "sign-in"
#: Checked against when the user is unknown, so a wrong name costs as long as a wrong password.
_DUMMY_HASH = generate_password_hash("not a password of anyone")


def check_password(password: str) -> str:
    """InputError unless ``password`` has at least :data:`PASSWORD_MIN` characters, not all spaces."""
    if len(password) < PASSWORD_MIN or not password.strip():
        raise InputError(f"a password needs at least {PASSWORD_MIN} characters")
    return password


def hash_password(password: str) -> str:
    """A salted scrypt hash (werkzeug.security, Flask's own), unlike tokens: people choose passwords, so
    guessing them must be slow."""
    return generate_password_hash(check_password(password))


def password_matches(stored: str | None, password: str) -> bool:
    """Whether ``password`` is the one ``stored`` hashes; False (after as long a check) for no hash."""
    if not stored:
        check_password_hash(_DUMMY_HASH, password)
        return False
    return check_password_hash(stored, password)
