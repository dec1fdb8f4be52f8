"""Signing in on the map (issue #15 item 3), the server side: `gridmap users password`, a token for a
user name and password, who a token belongs to, signing out.  The page itself: test_browser_day.py."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import sqlalchemy as sa

from gridmap.store import users
from gridmap.web import create_app


def _user(engine, name="王规划", role="planner"):
    with engine.begin() as conn:
        users.add_user(conn, name, role)


def test_password_is_set_hashed_and_signs_in(engine, cli, client):
    _user(engine)
    res = cli("users", "password", "王规划", input="correct horse\ncorrect horse\n")
    assert res.exit_code == 0, res.output
    with engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT password_hash FROM app_user WHERE name = '王规划'")).scalar_one()
    assert stored.startswith("scrypt:") and "correct horse" not in stored
    res = client.post("/api/v1/session", json={"name": "王规划", "password": "correct horse"})
    assert res.status_code == 201, res.get_json()
    body = res.get_json()
    assert body["role"] == "planner" and body["may_edit"] is True and body["token"].startswith("gm_")
    bearer = {"Authorization": "Bearer " + body["token"]}
    assert client.get("/api/v1/session", headers=bearer).get_json() == {
        "name": "王规划",
        "role": "planner",
        "may_edit": True,
    }
    # the sign-in token is an ordinary, expiring token: it lists under the user with its label
    with engine.connect() as conn:
        (listed,) = [u for u in users.list_users(conn) if u["name"] == "王规划"]
    (token,) = listed["tokens"]
    assert token["label"] == "sign-in" and token["expires_at"] is not None
    # signing out revokes it at once
    assert client.delete("/api/v1/session", headers=bearer).status_code == 204
    res = client.get("/api/v1/session", headers=bearer)
    assert res.status_code == 401 and "revoked" in res.get_json()["error"]["message"]


def test_wrong_name_or_password_is_one_401(engine, cli, client):
    _user(engine)
    cli("users", "password", "王规划", input="correct horse\ncorrect horse\n")
    wrong_pw = client.post("/api/v1/session", json={"name": "王规划", "password": "wrong horse"})
    no_user = client.post("/api/v1/session", json={"name": "nobody", "password": "correct horse"})
    assert wrong_pw.status_code == no_user.status_code == 401
    assert wrong_pw.get_json() == no_user.get_json()
    assert wrong_pw.get_json()["error"]["message"] == "wrong user name or password"
    bad = client.post("/api/v1/session", json={"name": "王规划"})
    assert bad.status_code == 400 and "password" in bad.get_json()["error"]["message"]
    extra = client.post("/api/v1/session", json={"name": "王规划", "password": "x", "role": "admin"})
    assert extra.status_code == 400 and "role" in extra.get_json()["error"]["message"]


def test_user_without_password_or_disabled_cannot_sign_in(engine, cli, client):
    _user(engine, "无密码", "viewer")
    res = client.post("/api/v1/session", json={"name": "无密码", "password": "anything at all"})
    assert res.status_code == 401
    cli("users", "password", "无密码", input="long enough\nlong enough\n")
    cli("users", "disable", "无密码")
    res = client.post("/api/v1/session", json={"name": "无密码", "password": "long enough"})
    assert res.status_code == 401 and "disabled" in res.get_json()["error"]["message"]


def test_password_cli_errors_are_one_line(engine, cli):
    _user(engine)
    short = cli("users", "password", "王规划", input="short\nshort\n")
    assert short.exit_code == 2 and "at least 8 characters" in short.output
    nobody = cli("users", "password", "nobody", input="long enough\nlong enough\n")
    assert nobody.exit_code != 0 and "no user 'nobody'" in nobody.output
    mismatch = cli("users", "password", "王规划", input="long enough\nother thing\nlong enough\nlong enough\n")
    assert mismatch.exit_code == 0 and "do not match" in mismatch.output
    removed = cli("users", "password", "王规划", "--remove")
    assert removed.exit_code == 0
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT password_hash FROM app_user WHERE name = '王规划'")).scalar_one() is None


def test_password_for_an_unknown_user_is_refused_before_asking(engine, cli):
    res = cli("users", "password", "nobody")  # nothing typed: a prompt would abort
    assert res.exit_code == 2, res.output
    assert res.output.strip() == "gridmap: error: no user 'nobody' (`gridmap users list` shows them)"


def test_who_am_i_needs_a_token_even_with_open_reads(engine, client, bearer):
    res = client.get("/api/v1/session")
    assert res.status_code == 401
    assert client.get("/api/v1/session", headers=bearer("dispatcher")).get_json()["may_edit"] is False
    assert client.get("/api/v1/session", headers=bearer("ingest")).get_json()["role"] == "ingest"


def _sign_in(client, name, password, address="10.0.0.1"):
    return client.post(
        "/api/v1/session", json={"name": name, "password": password}, environ_base={"REMOTE_ADDR": address}
    )


def _app(database_url, limit):
    return create_app({"DATABASE_URL": database_url, "TESTING": True, "SIGN_IN_LIMIT": limit})


def test_failed_sign_ins_are_bounded_per_address_and_per_user(engine, cli, database_url):
    """A password guesser gets 10 failures per 5 minutes from one address, and 10 per user name from
    any number of addresses; then 429 with Retry-After and a JSON body naming the problem, before any
    password is checked (the right one too).  Other addresses and users are not held up."""
    _user(engine)
    cli("users", "password", "王规划", input="correct horse\ncorrect horse\n")
    client = create_app({"DATABASE_URL": database_url, "TESTING": True}).test_client()
    for n in range(10):
        assert _sign_in(client, "王规划", f"guess {n}").status_code == 401
    for password in ("guess 10", "correct horse"):
        res = _sign_in(client, "王规划", password)
        assert res.status_code == 429, res.get_json()
        error = res.get_json()["error"]
        assert error["code"] == "too_many_attempts" and "too many failed sign-ins" in error["message"]
        assert error["detail"]["limit"] == "10 per 5 minutes"
        assert 290 <= int(res.headers["Retry-After"]) <= 300 and error["detail"]["retry_after"] == int(
            res.headers["Retry-After"]
        )
    # the user name is held from every address; the address for every user name
    res = _sign_in(client, "王规划", "correct horse", address="10.0.0.2")
    assert res.status_code == 429 and "this user name" in res.get_json()["error"]["message"]
    res = _sign_in(client, "someone else", "anything", address="10.0.0.1")
    assert res.status_code == 429 and "this client address" in res.get_json()["error"]["message"]
    # spraying many names from one address stops at the address's limit
    for n in range(10):
        assert _sign_in(client, f"user {n}", "password", address="10.0.0.3").status_code == 401
    assert _sign_in(client, "user 10", "password", address="10.0.0.3").status_code == 429
    # nobody else is held up, and a successful sign-in is not counted
    other = create_app({"DATABASE_URL": database_url, "TESTING": True}).test_client()
    for _ in range(12):
        assert _sign_in(other, "王规划", "correct horse", address="10.0.0.4").status_code == 201


def test_the_failure_window_moves(engine, database_url):
    """Failures leave the window as it moves: after Retry-After seconds the next guess is checked again."""
    client = _app(database_url, "2 per 2 seconds").test_client()
    assert [_sign_in(client, "nobody", "x").status_code for _ in range(3)] == [401, 401, 429]
    wait = int(_sign_in(client, "nobody", "x").headers["Retry-After"])
    assert 1 <= wait <= 2
    time.sleep(wait + 0.1)
    assert _sign_in(client, "nobody", "x").status_code == 401


def test_the_failure_limit_holds_across_threads(engine, database_url):
    """20 concurrent guesses against a limit of 5: exactly 5 are checked (401), the rest refused (429),
    however the request threads interleave."""
    app = _app(database_url, "5 per minute")
    start = threading.Barrier(20)

    def guess(n):
        client = app.test_client()
        start.wait()
        return _sign_in(client, "王规划", f"guess {n}").status_code

    with ThreadPoolExecutor(20) as pool:
        statuses = list(pool.map(guess, range(20)))
    assert sorted(statuses) == [401] * 5 + [429] * 15, statuses
