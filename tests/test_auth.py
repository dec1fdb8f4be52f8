"""Roles and tokens: every identity on every write route, read access, hashed tokens, `gridmap users`,
and the walk over ``app.url_map`` that fails on a write route without a declared role."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from flask import Blueprint

from gridmap.cli import main
from gridmap.domain import roles
from gridmap.errors import InputError
from gridmap.store import users
from gridmap.web import auth, create_app

import cityfactory as cf
from servers import serving

try:  # the headless Chromium of test_browser.py, for the map page's token box
    from test_browser import CHROMEDRIVER, CHROMIUM, _attr, _wait, browser  # noqa: F401 (a fixture)
except pytest.skip.Exception:  # no selenium: only that test skips
    CHROMIUM = CHROMEDRIVER = None

README = Path(__file__).resolve().parent.parent / "README.md"
YARD = "410199001001002"  # 120 households in two buildings: a partition dry run takes milliseconds
SAFE = {"GET", "HEAD", "OPTIONS"}
STAFF = ("viewer", "dispatcher", "planner", "admin")
#: identities that must be refused with 401 wherever a token is needed (revoked, expired and disabled
#: ones belong to admins: the highest role does not save a dead token)
DEAD = ("no token", "not bearer", "unknown token", "revoked", "expired", "disabled user")
IDENTITIES = DEAD + STAFF + ("ingest", "roster")

#: Every live token's role: who may sign out, follow a case or file a report.
ANY_TOKEN = {"viewer", "dispatcher", "planner", "admin", "ingest", "roster", "handler", "verifier", "supervisor"}
#: Who may file a case or follow one: every live token but the roster keeper's (who keeps the roster only).
CASE_FILERS = ANY_TOKEN - {"roster"}

#: The specification (issue 6 item 5), written independently of gridmap/web/auth.py: who may call
#: each write route.  A write route missing here must be planner+ (the boundary edits and OGC
#: transactions); anything else has to be added here on purpose.
WRITE_SPEC = {
    ("POST", "/api/v1/partition"): {"planner", "admin"},
    ("POST", "/api/v1/risk/visits"): {"dispatcher", "planner", "admin", "ingest"},
    # the grid people (issue 13): the roster keeper and admins
    ("POST", "/api/v1/people"): {"roster", "admin"},
    ("PATCH", "/api/v1/posts/<int:post_id>"): {"roster", "admin"},
    ("DELETE", "/api/v1/posts/<int:post_id>"): {"roster", "admin"},
    # issue 12: anyone with a token files a report; the event centre's roles read the map too
    ("POST", "/api/v1/events/<int:case_id>/followers"): CASE_FILERS,
    ("POST", "/api/v1/events"): CASE_FILERS,
    # public: signing in; signing out: any live token (the event centre's roles too)
    ("POST", "/api/v1/session"): ANY_TOKEN,
    ("DELETE", "/api/v1/session"): ANY_TOKEN,
}
#: Writes whose view checks the caller itself: a case's actions (a token, or the reporter's key; the
#: loop's table says who may take which action) and Open311 intake (its api_key form field).
SELF_CHECKED_POSTS = {
    ("POST", "/api/v1/events/<int:case_id>/<action>"),
    ("POST", "/open311/v2/requests.<any(json, xml):fmt>"),
}
#: Writes that change the caller's own token (signing out revokes it): test_signin.py tries them.
OWN_TOKEN = {("DELETE", "/api/v1/session")}
DEFAULT_WRITE = {"planner", "admin"}
#: Writes-by-method that are reads: open, or viewer+ and ingest with AUTH_READ=viewer.
READ_POSTS = {("POST", "/api/v1/lookup")}
#: Writes anyone may make: the scanned QR page's report and call button (the signed link is the check).
PUBLIC_POSTS = {("POST", "/g/<code>/report"), ("POST", "/g/<code>/call")}


def app_for(database_url, **config):
    return create_app({"DATABASE_URL": database_url, "TESTING": True, **config})


@pytest.fixture
def identities(engine):
    """Request headers per identity, each with its own user."""
    heads = {
        "no token": {},
        "not bearer": {"Authorization": "Basic dXNlcjpwYXNz"},
        "unknown token": {"Authorization": "Bearer " + roles.new_token()},
    }
    with engine.begin() as conn:
        for role in STAFF + ("ingest", "roster"):
            users.add_user(conn, f"u-{role}", role)
            heads[role] = {"Authorization": "Bearer " + users.issue_token(conn, f"u-{role}", label="test")}
        for dead in ("revoked", "expired", "disabled user"):
            name = "u-" + dead.replace(" ", "-")
            users.add_user(conn, name, "admin")
            token = users.issue_token(conn, name, expires_days=30)
            heads[dead] = {"Authorization": "Bearer " + token}
            if dead == "revoked":
                users.revoke_token(conn, roles.token_prefix(token))
            elif dead == "expired":
                conn.execute(
                    sa.text("UPDATE api_token SET expires_at = now() - interval '1 second' WHERE token_hash = :h"),
                    {"h": roles.token_hash(token)},
                )
            else:
                users.disable_user(conn, name)
    return heads


@pytest.fixture
def town(engine, cli, tmp_path):
    """The small test city with one red risk element (id 1) to visit."""
    cf.load(cli, cf.city(), tmp_path)
    path = tmp_path / "elements.csv"
    path.write_text(
        "kind,colour,name,reason,marked_by,marked_at,lon,lat\n"
        "person,red,张某,测试,王芳,2026-11-01T09:00:00+08:00,113.703,34.753\n",
        encoding="utf-8",
    )
    res = cli("risk", "import", path)
    assert res.exit_code == 0, res.output
    return engine


def check_refusal(res, identity, where):
    """A dead identity gets 401 with the Bearer challenge; a live one with too small a role 403."""
    body = res.get_json()
    if identity in DEAD:
        assert res.status_code == 401, (where, identity, res.status_code, body)
        assert res.headers["WWW-Authenticate"].startswith('Bearer realm="gridmap"'), where
        assert body["error"]["code"] == "unauthorized", body
    else:
        assert res.status_code == 403, (where, identity, res.status_code, body)
        assert body["error"]["code"] == "forbidden" and "needs the role" in body["error"]["message"], body
        assert "WWW-Authenticate" not in res.headers


# --- the declarations -----------------------------------------------------------------------------


def write_routes(app):
    return sorted(
        {(m, r.rule, r.endpoint) for r in app.url_map.iter_rules() for m in r.methods - SAFE},
        key=lambda t: (t[1], t[0]),
    )


def undeclared(app):
    """Write routes of ``app`` nobody declared a role for."""
    return [f"{m} {rule}" for m, rule, endpoint in write_routes(app) if auth.access(app, endpoint, m) is None]


def test_every_write_route_declares_a_role(database_url):
    app = app_for(database_url)
    assert write_routes(app), "the app has write routes"
    assert undeclared(app) == [], "declare who may call these with @require(...) (gridmap/web/auth.py)"


def test_an_undeclared_write_route_is_caught_and_refused(engine, database_url, identities):
    app = app_for(database_url)
    bp = Blueprint("careless", __name__)

    @bp.post("/api/v1/careless")
    def careless():
        return {"wrote": True}

    app.register_blueprint(bp)
    assert undeclared(app) == ["POST /api/v1/careless"]  # so the test above can fail
    res = app.test_client().post("/api/v1/careless", json={}, headers=identities["admin"])
    assert res.status_code == 403 and "has no role declared" in res.get_json()["error"]["message"]


def test_roles_per_method_on_one_view(engine, database_url, identities):
    """One view serving GET and POST (as OGC items do): POST needs a planner, GET stays a read."""
    app = app_for(database_url)
    bp = Blueprint("mixed", __name__)

    @bp.route("/api/v1/mixed", methods=["GET", "POST"])
    @auth.require("planner", methods=["POST"])
    def mixed():
        return {"ok": True}

    app.register_blueprint(bp)
    client = app.test_client()
    assert client.get("/api/v1/mixed").status_code == 200
    assert client.post("/api/v1/mixed", json={}).status_code == 401
    assert client.post("/api/v1/mixed", json={}, headers=identities["dispatcher"]).status_code == 403
    assert client.post("/api/v1/mixed", json={}, headers=identities["planner"]).status_code == 200
    assert ("POST", "/api/v1/mixed", "planner+") in auth.route_table(app)
    assert ("GET", "/api/v1/mixed", "read") in auth.route_table(app)


def allowed_roles(app, method, endpoint):
    needed = auth.access(app, endpoint, method)
    if auth.PUBLIC in needed:
        return set(roles.ROLES)
    return {r for r in roles.ROLES if roles.allowed_by_any(r, [("viewer" if n == auth.READ else n) for n in needed])}


def test_write_routes_allow_the_specified_roles(database_url):
    app = app_for(database_url)
    for method, rule, endpoint in write_routes(app):
        if (method, rule) in READ_POSTS:
            assert auth.access(app, endpoint, method) == (auth.READ, "ingest"), rule
            continue
        if (method, rule) in PUBLIC_POSTS | SELF_CHECKED_POSTS:
            assert auth.access(app, endpoint, method) == (auth.PUBLIC,), rule
            continue
        expected = WRITE_SPEC.get((method, rule), DEFAULT_WRITE)
        assert allowed_roles(app, method, endpoint) == expected, f"{method} {rule}"


def readme_roles_table() -> set[tuple[str, str, str]]:
    text = README.read_text(encoding="utf-8")
    section = text.split("## Roles and tokens", 1)[1].split("\n## ", 1)[0]
    rows = set()
    for line in section.splitlines():
        m = re.match(r"\|\s*(GET|POST|PUT|PATCH|DELETE)\s*\|\s*`([^`]+)`\s*\|\s*([^|]+?)\s*\|", line)
        if m:
            rows.add(m.groups())
    return rows


def test_readme_lists_every_route_with_its_role(database_url):
    actual = set(auth.route_table(app_for(database_url)))
    documented = readme_roles_table()
    assert sorted(actual - documented) == [], "add these rows to the README's 'Roles and tokens' table"
    assert sorted(documented - actual) == [], "the README lists routes or roles the app does not have"


# --- every identity on every write route ------------------------------------------------------------


def test_partition_by_every_identity(town, database_url, identities):
    client = app_for(database_url).test_client()
    for identity in IDENTITIES:
        res = client.post("/api/v1/partition", json={"courtyard": YARD}, headers=identities[identity])
        if identity in WRITE_SPEC[("POST", "/api/v1/partition")]:
            assert res.status_code == 200 and res.get_json()["dry_run"] is True, (identity, res.get_json())
        else:
            check_refusal(res, identity, "POST /api/v1/partition")
    # a commit is logged under the user's name
    res = client.post(
        "/api/v1/partition", json={"courtyard": YARD, "commit": True, "reason": "test"}, headers=identities["planner"]
    )
    assert res.status_code == 200 and res.get_json()["written"]["opened"] == 2
    with town.connect() as conn:
        actor = conn.execute(sa.text("SELECT actor FROM edit_log WHERE action = 'partition'")).scalar_one()
    assert actor == "u-planner"


def test_visits_by_every_identity(town, database_url, identities):
    client = app_for(database_url).test_client()
    for identity in IDENTITIES:
        res = client.post("/api/v1/risk/visits", json={"element": 1, "visitor": "王芳"}, headers=identities[identity])
        if identity in WRITE_SPEC[("POST", "/api/v1/risk/visits")]:
            assert res.status_code == 201 and res.get_json()["overdue"] is False, (identity, res.get_json())
        else:
            check_refusal(res, identity, "POST /api/v1/risk/visits")
    with town.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM risk_visit")).scalar_one() == 4
        actors = (
            conn.execute(sa.text("SELECT actor FROM edit_log WHERE action = 'record risk visit' ORDER BY id"))
            .scalars()
            .all()
        )
    assert actors == ["u-dispatcher", "u-planner", "u-admin", "u-ingest"]


def fill(rule: str) -> str:
    """A URL matching ``rule``: ``1`` for int parameters, the first choice of ``any(…)``, ``x`` for the others."""

    def value(m) -> str:
        kind = m.group(1) or ""
        if kind.startswith("any("):
            return kind[4:].split(",")[0].strip(" )")
        return "1" if kind == "int" else "x"

    return re.sub(r"<(?:([^:>]+):)?([^>]+)>", value, rule)


def test_every_write_route_refuses_and_admits_as_declared(town, database_url, identities):
    """Every write route of the app (today's and any added later), called with an empty JSON body:
    refused with 401/403 exactly as declared, otherwise it reaches its handler."""
    app = app_for(database_url)
    client = app.test_client()
    for method, rule, endpoint in write_routes(app):
        if (method, rule) in READ_POSTS:
            continue  # open by default: below, with AUTH_READ=viewer
        if (method, rule) in SELF_CHECKED_POSTS:
            continue  # their callers are checked in the view: tests/test_events.py
        if (method, rule) in OWN_TOKEN:
            continue  # it would revoke the identities' tokens for the routes after it
        admitted = allowed_roles(app, method, endpoint)
        public = auth.PUBLIC in auth.access(app, endpoint, method)  # signing in, the scanned page: any caller
        for identity in IDENTITIES:
            res = client.open(fill(rule), method=method, json={}, headers=identities[identity])
            if public or identity in admitted:
                assert res.status_code not in (401, 403), (method, rule, identity, res.get_json())
            else:
                check_refusal(res, identity, f"{method} {rule}")


def test_read_posts_follow_the_read_rule(town, database_url, identities):
    points = [{"lon": 113.703, "lat": 34.753, "id": "a"}]
    open_client = app_for(database_url).test_client()
    for identity in IDENTITIES:  # open: any token or none, not even looked at
        res = open_client.post("/api/v1/lookup", json=points, headers=identities[identity])
        assert res.status_code == 200, (identity, res.get_json())
    closed = app_for(database_url, AUTH_READ="viewer").test_client()
    for identity in IDENTITIES:
        res = closed.post("/api/v1/lookup", json=points, headers=identities[identity])
        if identity in DEAD or identity == "roster":  # the roster keeper reads the grid people only
            check_refusal(res, identity, "POST /api/v1/lookup")
        else:  # viewer and above, and ingest (scripts run lookups)
            assert res.status_code == 200 and res.get_json()["results"][0]["inside"] is True, identity


# --- reads ------------------------------------------------------------------------------------------


def test_reads_are_open_by_default(town, database_url, identities):
    client = app_for(database_url).test_client()
    for url in (
        "/api/v1/stats",
        "/api/v1/lookup?lon=113.703&lat=34.753",
        "/api/v1/risk/summary",
        "/tiles/street/12/3341/1624.pbf",
    ):
        assert client.get(url).status_code == 200, url
        assert client.get(url, headers=identities["unknown token"]).status_code == 200, url


def test_auth_read_viewer_makes_every_read_need_a_token(town, database_url, identities, monkeypatch):
    monkeypatch.setenv("GRIDMAP_AUTH_READ", "viewer")  # the deployment's setting, through the environment
    app = app_for(database_url)
    assert app.config["AUTH_READ"] == "viewer"
    client = app.test_client()
    reads = [r.rule for r in app.url_map.iter_rules() if "GET" in r.methods]
    assert {"/", "/api/v1/stats", "/tiles/<layer>/<z>/<x>/<y>.pbf"} <= set(reads)
    for rule in reads:
        url = fill(rule)
        endpoint = app.url_map.bind("").match(url, "GET")[0]
        needed = auth.access(app, endpoint, "GET")
        for identity in IDENTITIES:
            res = client.get(url, headers=identities[identity])
            wanted = [("viewer" if n == auth.READ else n) for n in needed]
            if auth.PUBLIC in needed:
                assert res.status_code not in (401, 403), (url, identity)
            elif auth.READ not in needed:  # a read for named roles only (the dispatchers' queue)
                if identity in allowed_roles(app, "GET", endpoint):
                    assert res.status_code not in (401, 403), (url, identity, res.get_json())
                else:
                    check_refusal(res, identity, f"GET {rule}")
            elif identity in DEAD or not roles.allowed_by_any(identity, wanted):
                check_refusal(res, identity, f"GET {rule}")
            else:
                assert res.status_code not in (401, 403), (url, identity, res.get_json())
    # the page and its assets stay open, so the page can ask for a token
    assert client.get("/").status_code == 200
    assert client.get("/static/gridmap.js").status_code == 200
    res = client.get("/api/v1/stats")
    assert res.status_code == 401 and "needs a token" in res.get_json()["error"]["message"]
    assert client.get("/api/v1/stats", headers=identities["viewer"]).get_json()["levels"]["micro"]["grids"] == 16
    res = client.get("/tiles/street/12/3341/1624.pbf", headers=identities["viewer"])
    assert res.status_code == 200 and res.mimetype == "application/vnd.mapbox-vector-tile"
    assert client.get("/api/v1/lookup?lon=113.703&lat=34.753", headers=identities["ingest"]).status_code == 200
    res = client.get("/api/v1/stats", headers=identities["ingest"])
    assert res.status_code == 403 and "needs the role viewer+" in res.get_json()["error"]["message"]


def test_a_bad_read_setting_is_a_clear_error(database_url, monkeypatch):
    with pytest.raises(InputError, match="must be open or viewer, got 'everyone'"):
        app_for(database_url, AUTH_READ="everyone")
    monkeypatch.setenv("GRIDMAP_AUTH_READ", "closed")
    res = CliRunner().invoke(main, ["serve", "--port", "1"], env={"GRIDMAP_DATABASE_URL": database_url})
    assert res.exit_code == 2
    assert res.output.strip() == "gridmap: error: GRIDMAP_AUTH_READ (AUTH_READ) must be open or viewer, got 'closed'"


# --- tokens -----------------------------------------------------------------------------------------


def test_refusals_say_why(town, database_url, identities):
    client = app_for(database_url).test_client()
    messages = {}
    for identity in DEAD:
        res = client.post("/api/v1/partition", json={"courtyard": YARD}, headers=identities[identity])
        messages[identity] = res.get_json()["error"]["message"]
        assert res.headers["WWW-Authenticate"] == (
            'Bearer realm="gridmap"' if identity == "no token" else 'Bearer realm="gridmap", error="invalid_token"'
        )
    assert messages["no token"].startswith("POST /api/v1/partition needs a token: send 'Authorization: Bearer <token>'")
    assert messages["not bearer"] == "the Authorization header must be 'Bearer <token>'"
    assert messages["unknown token"] == "unknown token"
    assert re.fullmatch(r"token gm_\S{8} was revoked", messages["revoked"]), messages
    assert re.fullmatch(r"token gm_\S{8} expired on .+", messages["expired"]), messages
    assert messages["disabled user"] == "user 'u-disabled-user' is disabled"
    res = client.post("/api/v1/partition", json={"courtyard": YARD}, headers=identities["dispatcher"])
    assert res.get_json()["error"]["message"] == (
        "POST /api/v1/partition needs the role planner+ ('+': or above); 'u-dispatcher' is dispatcher"
    )


def test_tokens_are_stored_hashed(cli, engine):
    res = cli("users", "add", "李娜", "--role", "planner", "--label", "laptop")
    assert res.exit_code == 0, res.output
    token = res.stdout.strip()
    assert re.fullmatch(r"gm_[A-Za-z0-9_-]{43}", token), res.stdout
    with engine.connect() as conn:
        row = conn.execute(sa.text("SELECT token_hash, prefix FROM api_token")).one()
        # no row of any table holds the token (or its secret part) in any column
        tables = conn.execute(sa.text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")).scalars().all()
        for table in tables:
            hits = conn.execute(
                sa.text(f'SELECT count(*) FROM "{table}" t WHERE t::text LIKE :s'),
                {"s": "%" + token[len(row.prefix) :] + "%"},
            ).scalar_one()
            assert hits == 0, table
    assert row.token_hash == hashlib.sha256(token.encode()).hexdigest() == roles.token_hash(token)
    assert row.prefix == token[:11]


def test_last_used_is_written_at_most_once_a_minute(town, database_url, identities):
    client = app_for(database_url).test_client()
    prefix = identities["planner"]["Authorization"].split()[1][:11]

    def last_used():
        with town.connect() as conn:
            return conn.execute(sa.text("SELECT last_used_at FROM api_token WHERE prefix = :p"), {"p": prefix}).scalar()

    assert last_used() is None
    client.post("/api/v1/partition", json={"courtyard": YARD}, headers=identities["planner"])
    first = last_used()
    assert first is not None
    client.post("/api/v1/partition", json={"courtyard": YARD}, headers=identities["planner"])
    assert last_used() == first
    with town.begin() as conn:
        conn.execute(
            sa.text("UPDATE api_token SET last_used_at = now() - interval '61 seconds' WHERE prefix = :p"),
            {"p": prefix},
        )
    before = last_used()
    client.post("/api/v1/partition", json={"courtyard": YARD}, headers=identities["planner"])
    assert last_used() > before


# --- gridmap users ----------------------------------------------------------------------------------


def test_users_commands(cli, engine, database_url):
    client = app_for(database_url).test_client()
    res = cli("users", "add", "王芳", "--role", "dispatcher")
    assert res.exit_code == 0, res.output
    first = res.stdout.strip()
    assert "shown this once" in res.stderr and first not in res.stderr
    res = cli("users", "add", "王芳", "--role", "admin")
    assert res.exit_code == 2 and res.output.strip() == (
        "gridmap: error: user '王芳' exists already (`gridmap users token 王芳` gives it another token)"
    )
    res = cli("users", "add", "x", "--role", "boss")
    assert res.exit_code == 2 and "'boss' is not one of" in res.output
    res = cli("users", "token", "王芳", "--label", "phone", "--expires-days", "30")
    assert res.exit_code == 0
    second = res.stdout.strip()
    assert second != first and second.startswith("gm_")
    assert cli("users", "token", "nobody").output.strip() == (
        "gridmap: error: no user 'nobody' (`gridmap users list` shows them)"
    )

    def visit(token):
        return client.post("/api/v1/risk/visits", json={}, headers={"Authorization": "Bearer " + token})

    assert visit(first).status_code == 400 and visit(second).status_code == 400  # past auth: the body is bad

    res = cli("users", "list")
    assert res.exit_code == 0
    assert first not in res.output and second not in res.output and first[11:] not in res.output
    lines = res.stdout.splitlines()
    assert lines[0].startswith("王芳\tdispatcher\tactive\tcreated ")
    assert lines[1].startswith(f"  {first[:11]}…\tlive\tcreated ") and "\tlast used 20" in lines[1]
    # every time with its offset (before: 2026-12-01 12:08, no zone)
    assert re.search(
        r"\tcreated \d{4}-\d\d-\d\dT\d\d:\d\d\+08:00\tlast used \d{4}-\d\d-\d\dT\d\d:\d\d\+08:00", lines[1]
    )
    assert lines[2].startswith(f"  {second[:11]}…\tlive\t") and lines[2].endswith("\tphone")
    listed = json.loads(cli("users", "list", "--format", "json").stdout)
    assert listed[0]["name"] == "王芳" and [t["prefix"] for t in listed[0]["tokens"]] == [first[:11], second[:11]]
    assert listed[0]["tokens"][1]["expires_at"] is not None and listed[0]["tokens"][0]["last_used_at"] is not None

    res = cli("users", "revoke", first[:11] + "…")  # as `users list` prints it
    assert res.exit_code == 0 and res.output.strip() == f"revoked token {first[:11]} of 王芳"
    assert visit(first).status_code == 401 and visit(second).status_code == 400
    assert cli("users", "revoke", first[:11]).output.strip() == f"gridmap: error: token {first[:11]} is revoked already"
    assert "no token with prefix 'gm_nothing'" in cli("users", "revoke", "gm_nothing").output
    assert "revoked" in cli("users", "list").stdout.splitlines()[1]

    res = cli("users", "disable", "王芳")
    assert res.exit_code == 0 and "disabled 王芳" in res.output
    assert visit(second).status_code == 401
    assert cli("users", "list").stdout.splitlines()[0].startswith("王芳\tdispatcher\tdisabled ")
    assert cli("users", "token", "王芳").output.strip() == "gridmap: error: user '王芳' is disabled: no new tokens"
    assert cli("users", "disable", "nobody").exit_code == 2


def test_users_on_a_database_not_upgraded(engine, database_url):
    """A database without the users tables (migration 0005 not applied) says how to fix it."""
    with engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE api_token RENAME TO api_token_away"))
    try:
        res = CliRunner().invoke(main, ["users", "list"], env={"GRIDMAP_DATABASE_URL": database_url})
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text("ALTER TABLE api_token_away RENAME TO api_token"))
    assert res.exit_code == 2 and res.output.strip() == (
        "gridmap: error: the database has no users tables: run `gridmap db upgrade`"
    )


def test_demo_load_gives_a_demo_admin_token_once(engine, database_url, capsys):
    from gridmap.cli.demo import demo_admin

    demo_admin(engine)
    out = capsys.readouterr()
    token = out.out.strip()
    assert "added user demo-admin (role admin)" in out.err and token.startswith("gm_")
    res = (
        app_for(database_url)
        .test_client()
        .post("/api/v1/partition", json={}, headers={"Authorization": "Bearer " + token})
    )
    assert res.status_code == 400  # admitted (an empty body is the handler's complaint)
    demo_admin(engine)  # a second load makes no new user and prints no token
    out = capsys.readouterr()
    assert out.out == "" and "gridmap users token demo-admin" in out.err
    with engine.connect() as conn:
        assert users.count_users(conn) == 1


# --- the roles themselves ---------------------------------------------------------------------------


def test_roles_order_and_ingest_apart():
    assert [r for r in roles.ROLES if roles.allows(r, "viewer")] == [
        "viewer",
        "dispatcher",
        "planner",
        "admin",
        "handler",
        "verifier",
        "supervisor",
    ]
    for event_role in roles.EVENT:  # the event centre's roles: outside the order, admins may act for them
        assert [r for r in roles.ROLES if roles.allows(r, event_role)] == ["admin", event_role]
    assert [r for r in roles.ROLES if roles.allows(r, "dispatcher")] == ["dispatcher", "planner", "admin"]
    assert [r for r in roles.ROLES if roles.allows(r, "planner")] == ["planner", "admin"]
    assert [r for r in roles.ROLES if roles.allows(r, "admin")] == ["admin"]
    assert [r for r in roles.ROLES if roles.allows(r, "ingest")] == ["admin", "ingest"]
    assert not roles.allows(None, "viewer") and not roles.allows("root", "viewer")
    with pytest.raises(InputError, match="unknown role 'boss'"):
        roles.allows("admin", "boss")
    with pytest.raises(InputError, match="unknown role"):
        auth.require("superuser")
    assert roles.describe(("dispatcher", "ingest")) == "dispatcher+, ingest"


# --- the map page asks for a token ------------------------------------------------------------------


def test_the_map_page_asks_for_a_token_and_uses_it(town, database_url, identities, request):
    """With AUTH_READ=viewer, the page (open) gets 401s and opens its sign-in form saying why; with a
    viewer token typed in, its API calls and vector tiles carry it, kept for this tab only."""
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip("needs Debian's chromium and chromium-driver (make test installs them)")
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    with serving(database_url, "--workers", "1", env={"GRIDMAP_AUTH_READ": "viewer"}) as (base, _port):
        driver = request.getfixturevalue("browser")
        driver.get(f"{base}/")
        driver.execute_script("localStorage.clear(); sessionStorage.clear();")
        driver.get(f"{base}/")
        _wait(driver, _attr("signin") + " === 'open'")
        box = driver.find_element(By.ID, "gridmap-signin")
        assert "needs a token" in box.text and not driver.execute_script("return " + _attr("stats"))
        token = identities["viewer"]["Authorization"].split()[1]
        box.find_element(By.NAME, "token").send_keys(token, Keys.ENTER)
        _wait(driver, _attr("stats") + " === 'ready'")
        drawn = "Array.from(document.body.attributes).some(a => a.name.startsWith('data-drawn-') && +a.value > 0)"
        _wait(driver, drawn)
        assert not driver.find_elements(By.ID, "gridmap-signin")
        _wait(driver, _attr("signed-in") + " === 'viewer'")
        assert driver.execute_script("return sessionStorage.getItem('gridmap.token')") == token
        assert driver.execute_script("return localStorage.getItem('gridmap.token')") is None
        driver.execute_script("sessionStorage.clear();")
