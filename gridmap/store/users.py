"""Users and their API tokens: all the SQL (tokens arrive here already hashed)."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..domain import roles
from ..errors import DatabaseUnavailable, InputError, NotFound

#: ``last_used_at`` is written at most this often per token, not on every request.
TOUCH_EVERY = timedelta(minutes=1)


def check_schema(conn: Connection) -> None:
    """DatabaseUnavailable with the fix when the users tables are missing (a database not upgraded)."""
    if conn.execute(sa.text("SELECT to_regclass('api_token')")).scalar() is None:
        raise DatabaseUnavailable("the database has no users tables: run `gridmap db upgrade`")


def add_user(conn: Connection, name: str, role: str) -> int:
    """A new user; a taken name or an unknown role is an InputError."""
    roles.check_role(role)
    if not name or not name.strip() or name != name.strip():
        raise InputError(f"a user name must be non-empty without surrounding spaces, got {name!r}")
    row = conn.execute(
        sa.text("INSERT INTO app_user (name, role) VALUES (:n, :r) ON CONFLICT (name) DO NOTHING RETURNING id"),
        {"n": name, "r": role},
    ).first()
    if row is None:
        raise InputError(f"user {name!r} exists already (`gridmap users token {name}` gives it another token)")
    return row[0]


def user(conn: Connection, name: str) -> dict:
    """One user by name (NotFound naming it otherwise)."""
    row = (
        conn.execute(
            sa.text("SELECT id, name, role, created_at, disabled_at FROM app_user WHERE name = :n"), {"n": name}
        )
        .mappings()
        .first()
    )
    if row is None:
        raise NotFound(f"no user {name!r} (`gridmap users list` shows them)")
    return dict(row)


def add_token(
    conn: Connection,
    user_id: int,
    token_hash: str,
    prefix: str,
    *,
    label: str | None = None,
    expires_days: int | None = None,
) -> dict:
    """Keep a token's hash for a user; ``expires_days`` from now, or never."""
    row = (
        conn.execute(
            sa.text(
                "INSERT INTO api_token (user_id, token_hash, prefix, label, expires_at) "
                "VALUES (:u, :h, :p, :l, CASE WHEN CAST(:d AS integer) IS NULL THEN NULL "
                "ELSE now() + make_interval(days => CAST(:d AS integer)) END) "
                "RETURNING prefix, label, created_at, expires_at"
            ),
            {"u": user_id, "h": token_hash, "p": prefix, "l": label, "d": expires_days},
        )
        .mappings()
        .one()
    )
    return dict(row)


def issue_token(conn: Connection, name: str, *, label: str | None = None, expires_days: int | None = None) -> str:
    """A new token for the user ``name`` (not disabled): kept hashed, returned in clear this once."""
    found = user(conn, name)
    if found["disabled_at"] is not None:
        raise InputError(f"user {name!r} is disabled: no new tokens")
    token = roles.new_token()
    add_token(
        conn, found["id"], roles.token_hash(token), roles.token_prefix(token), label=label, expires_days=expires_days
    )
    return token


def list_users(conn: Connection) -> list[dict]:
    """Every user with its tokens (prefix, label, created, last used, expires, revoked; never a secret)."""
    users = [
        dict(r)
        for r in conn.execute(
            sa.text("SELECT id, name, role, created_at, disabled_at FROM app_user ORDER BY name")
        ).mappings()
    ]
    tokens: dict[int, list] = {}
    for r in conn.execute(
        sa.text(
            "SELECT user_id, prefix, label, created_at, last_used_at, expires_at, revoked_at, "
            "expires_at IS NOT NULL AND expires_at <= now() AS expired "
            "FROM api_token ORDER BY created_at, id"
        )
    ).mappings():
        t = dict(r)
        tokens.setdefault(t.pop("user_id"), []).append(t)
    for u in users:
        u["tokens"] = tokens.get(u.pop("id"), [])
    return users


def disable_user(conn: Connection, name: str) -> None:
    """Refuse every token of a user from now on (the user and its history stay)."""
    user(conn, name)
    conn.execute(
        sa.text("UPDATE app_user SET disabled_at = now() WHERE name = :n AND disabled_at IS NULL"), {"n": name}
    )


def revoke_token(conn: Connection, prefix: str) -> dict:
    """Revoke the one live token whose prefix is ``prefix``; the token's owner and prefix."""
    rows = (
        conn.execute(
            sa.text(
                "SELECT t.id, t.prefix, u.name FROM api_token t JOIN app_user u ON u.id = t.user_id "
                "WHERE t.prefix = :p AND t.revoked_at IS NULL"
            ),
            {"p": prefix},
        )
        .mappings()
        .all()
    )
    if not rows:
        known = conn.execute(sa.text("SELECT 1 FROM api_token WHERE prefix = :p"), {"p": prefix}).first()
        raise NotFound(
            f"token {prefix} is revoked already"
            if known
            else f"no token with prefix {prefix!r} (`gridmap users list` shows the prefixes)"
        )
    if len(rows) > 1:  # 48 random bits: practically never
        raise InputError(
            f"{len(rows)} live tokens share the prefix {prefix!r} "
            f"(users {', '.join(sorted(r['name'] for r in rows))}); disable the user instead"
        )
    conn.execute(sa.text("UPDATE api_token SET revoked_at = now() WHERE id = :i"), {"i": rows[0]["id"]})
    return {"prefix": rows[0]["prefix"], "user": rows[0]["name"]}


def resolve(conn: Connection, token_hash: str) -> dict | None:
    """The token with this hash and its user, and why it is refused (``refused``: None when usable)."""
    row = (
        conn.execute(
            sa.text(
                "SELECT t.id AS token_id, t.prefix, t.last_used_at, t.expires_at, t.revoked_at, u.name, u.role, "
                "u.disabled_at, now() AS now FROM api_token t JOIN app_user u ON u.id = t.user_id "
                "WHERE t.token_hash = :h"
            ),
            {"h": token_hash},
        )
        .mappings()
        .first()
    )
    if row is None:
        return None
    found = dict(row)
    if found["revoked_at"] is not None:
        found["refused"] = f"token {found['prefix']} was revoked"
    elif found["expires_at"] is not None and found["expires_at"] <= found["now"]:
        found["refused"] = f"token {found['prefix']} expired on {found['expires_at']:%Y-%m-%d %H:%M %Z}"
    elif found["disabled_at"] is not None:
        found["refused"] = f"user {found['name']!r} is disabled"
    else:
        found["refused"] = None
    return found


def touch(conn: Connection, found: dict) -> bool:
    """Record that a resolved token was used, when it was last recorded over a minute ago."""
    last = found["last_used_at"]
    if last is not None and found["now"] - last < TOUCH_EVERY:
        return False
    conn.execute(
        sa.text(
            "UPDATE api_token SET last_used_at = now() WHERE id = :i "
            "AND (last_used_at IS NULL OR last_used_at < now() - make_interval(secs => :s))"
        ),
        {"i": found["token_id"], "s": TOUCH_EVERY.total_seconds()},
    )
    return True


def count_users(conn: Connection, *, active: bool = True) -> int:
    """Users (only those not disabled, with ``active``)."""
    where = " WHERE disabled_at IS NULL" if active else ""
    return conn.execute(sa.text("SELECT count(*) FROM app_user" + where)).scalar_one()


def truncate(conn: Connection) -> None:
    """Forget every user and token (tests; ``truncate_all`` keeps them: reloading data is no reason
    to lock people out)."""
    conn.execute(sa.text("TRUNCATE app_user, api_token, department_member RESTART IDENTITY"))


def set_password(conn: Connection, name: str, password_hash: str | None) -> None:
    """Keep the hash of user ``name``'s sign-in password (None: no password); NotFound naming it."""
    user(conn, name)
    conn.execute(sa.text("UPDATE app_user SET password_hash = :h WHERE name = :n"), {"h": password_hash, "n": name})


def sign_in_record(conn: Connection, name: str) -> dict | None:
    """Name, role, disabled time and password hash of user ``name``; None when there is no such user."""
    row = (
        conn.execute(
            sa.text("SELECT name, role, disabled_at, password_hash FROM app_user WHERE name = :n"), {"n": name}
        )
        .mappings()
        .first()
    )
    return dict(row) if row else None


def revoke_by_hash(conn: Connection, token_hash: str) -> bool:
    """Revoke the live token with this hash (signing out); whether there was one."""
    done = conn.execute(
        sa.text("UPDATE api_token SET revoked_at = now() WHERE token_hash = :h AND revoked_at IS NULL RETURNING id"),
        {"h": token_hash},
    ).first()
    return done is not None
