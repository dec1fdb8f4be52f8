"""The OpenAPI document: it describes every route of the app (and nothing else), and schemathesis,
sending requests generated from it to the real app over the demo city, finds no server error (5xx).

The schemathesis run writes (edits through /ogc and /api/v1/edits, visits, partitions with a planner's
token), so it works on a copy of the demo city loaded into the test database, not the shared demo one.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from pathlib import Path

import pytest
import requests
import schemathesis
from conftest import DEMO_SEED
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode, Response
from schemathesis.checks import (
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from gridmap.domain.risk import Rules
from gridmap.services.demo import load_demo
from gridmap.store import db, users
from gridmap.web import create_app
from gridmap.web.guard import Guard
from gridmap.web.openapi import document

from eventcity import lonlat, pick
from servers import free_port, serving

#: Examples per operation: enough to reach past the 400s into every handler, and the run stays under a minute.
EXAMPLES = 30


def _anonymous(path: str) -> str:
    return re.sub(r"\{[^}]*\}", "{}", path)


def test_every_route_is_documented(demo_client):
    app = demo_client.application
    routes = set()
    for rule in app.url_map.iter_rules():
        methods = set(rule.methods) - {"HEAD"}
        if rule.provide_automatic_options:
            methods.discard("OPTIONS")  # Flask's own, on every route
        path = _anonymous(re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule))
        routes |= {(path, m.lower()) for m in methods}
    with app.test_request_context():
        doc = document()
    documented = {(_anonymous(p), m) for p, ops_ in doc["paths"].items() for m in ops_}
    assert routes - documented == set(), "routes missing from gridmap/web/openapi.py"
    assert documented - routes == set(), "documented operations the app does not have"
    # the same document at both addresses
    assert demo_client.get("/api/v1/openapi.json").get_json() == demo_client.get("/ogc/api").get_json()


def test_operations_have_unique_parameters_and_known_refs(demo_client):
    doc = demo_client.get("/api/v1/openapi.json").get_json()
    schemas = doc["components"]["schemas"]
    text = str(doc)
    for ref in re.findall(r"#/components/schemas/([A-Za-z]+)", text):
        assert ref in schemas
    for path, operations in doc["paths"].items():
        for method, op in operations.items():
            names = [(p["in"], p["name"]) for p in op["parameters"]]
            assert len(names) == len(set(names)), (path, method)
            for p in op["parameters"]:
                if p["in"] == "path":
                    assert "{" + p["name"] + "}" in path, (path, method, p["name"])


@pytest.fixture(scope="module")
def city_copy(database_url):
    """The demo city in the (writable) test database, and a planner's token for the writes."""
    eng = db.engine(database_url)
    with eng.begin() as conn:
        db.truncate_all(conn)
        users.truncate(conn)
    load_demo(eng, "guancheng", DEMO_SEED, rules=Rules(), fresh=True)
    with eng.begin() as conn:
        users.add_user(conn, "schemathesis", "planner")
        token = users.issue_token(conn, "schemathesis")
    yield database_url, {"Authorization": f"Bearer {token}"}
    with eng.begin() as conn:
        db.truncate_all(conn)
        users.truncate(conn)


@pytest.fixture(scope="module")
def api_schema(city_copy):
    url, _ = city_copy
    app = create_app({"DATABASE_URL": url, "TESTING": True})
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)

    @schema.hook("filter_body")
    def no_whole_city_partition(ctx, body):
        # Partitioning the whole city takes ~10 s (far longer with a tiny band); test_partition covers it.
        return not (ctx.operation.path == "/api/v1/partition" and isinstance(body, dict) and body.get("all"))

    return schema


def _no_server_error(operation, strategy, headers, examples: int) -> str | None:
    """Run ``examples`` generated requests of one operation; the first 5xx, described, or None."""

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.explicit, Phase.generate],
    )
    @given(case=strategy)
    def run(case):
        case.call_and_validate(headers=headers, checks=[not_a_server_error])

    try:
        run()
    except Unsatisfiable:  # nothing to generate (no parameters to make invalid, in negative mode)
        return None
    except Exception as exc:  # schemathesis' failure names the request and the response
        return f"{operation.method.upper()} {operation.path}: {exc}"
    return None


def test_schemathesis_finds_no_server_error(api_schema, city_copy):
    """Every operation with generated valid inputs (EXAMPLES each) and invalid ones (a third as many),
    a planner's token on every request so the writes reach the edit engine."""
    _, headers = city_copy
    failures, operations = [], 0
    for result in api_schema.get_all_operations():
        operation = result.ok()
        operations += 1
        if (operation.method.upper(), operation.path) == ("DELETE", "/api/v1/session"):
            continue  # signing out would revoke the planner token every later request carries (test_signin.py)
        for mode, n in ((GenerationMode.POSITIVE, EXAMPLES), (GenerationMode.NEGATIVE, EXAMPLES // 3)):
            problem = _no_server_error(operation, operation.as_strategy(generation_mode=mode), headers, n)
            if problem:
                failures.append(f"[{mode.value}] {problem}")
    assert not failures, "\n\n".join(failures)
    # every operation was run, but GET /api/v1/openapi.json: schemathesis leaves out the document it loaded
    assert operations == sum(len(ops_) for ops_ in api_schema.raw_schema["paths"].values()) - 1


def test_schemathesis_stateful_and_negative_phases_find_no_server_error(city_copy, tmp_path):
    """schemathesis' own runner against `gridmap serve` (the guard, granian, worker threads): generated
    data valid and invalid (``--mode all``), then its stateful phase, which follows the links it infers
    (a created feature's Location into reads, patches and deletes); a 5xx anywhere fails."""
    url, headers = city_copy
    with serving(url, "--workers", "1") as (base, _):
        res = subprocess.run(
            [
                str(Path(sys.executable).with_name("schemathesis")),
                "run",
                f"{base}/api/v1/openapi.json",
                "--phases=fuzzing,stateful",
                "--mode=all",
                "--max-examples=5",
                "--checks=not_a_server_error",
                # signing out would revoke the planner token every later request carries, and leave the
                # stateful phase's writes (POST, then PATCH and DELETE of the created grid) at 401
                "--exclude-name=DELETE /api/v1/session",
                f"--header=Authorization: {headers['Authorization']}",
                "--seed=17",
                "--workers=1",
                "--no-color",
            ],
            capture_output=True,
            text=True,
            timeout=600,
            cwd=tmp_path,  # its cache folder (.schemathesis) goes there, not into the checkout
        )
    assert res.returncode == 0, res.stdout[-4000:]
    assert re.search(r"✅ Stateful", res.stdout) and re.search(r"✅ Fuzzing", res.stdout), res.stdout[-2000:]


def test_the_documented_report_text_limit_is_the_one_enforced(client, event_city):
    """POST /api/v1/events: a text of the documented maxLength is filed, one character more is refused."""
    doc = client.get("/api/v1/openapi.json").get_json()
    report = doc["paths"]["/api/v1/events"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    most = report["properties"]["text"]["maxLength"]
    lon, lat = lonlat(300, 500)
    body = {"matter": pick(True, "community", "cg").code, "lon": lon, "lat": lat}
    res = client.post("/api/v1/events", json={**body, "text": "井" * most}, headers=event_city["ingest"])
    assert res.status_code == 201, res.get_json()
    res = client.post("/api/v1/events", json={**body, "text": "井" * (most + 1)}, headers=event_city["ingest"])
    assert res.status_code == 400 and f"at most {most}" in res.get_json()["error"]["message"]


# --- the responses every route may give (the guard's, the faults', the sign-in throttle's) ---------------


def test_shared_responses_are_described_once_and_referenced(demo_client):
    """408, 413, 429 and 503 are described once under components/responses (with Retry-After where the
    server sends it) and every operation refers to them: 503 on all, 408 and 413 on those with a body,
    429 on sign-in."""
    doc = demo_client.get("/api/v1/openapi.json").get_json()
    shared = doc["components"]["responses"]
    assert set(shared) == {"RequestTimeout", "PayloadTooLarge", "TooManyRequests", "Unavailable"}
    for name in ("TooManyRequests", "Unavailable"):
        assert "Retry-After" in shared[name]["headers"]
    for name, response in shared.items():
        assert response["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}, name
    for path, operations in doc["paths"].items():
        for method, op in operations.items():
            responses = op["responses"]
            wanted = {"503"} | ({"408", "413"} if "requestBody" in op else set())
            assert wanted <= set(responses), (path, method, wanted - set(responses))
            for status in {"408", "413", "429", "503"} & set(responses):  # never a copy of the shared text
                ref = responses[status].get("$ref", "")
                assert ref.startswith("#/components/responses/") and ref.rsplit("/", 1)[1] in shared, (path, status)
    assert "429" in doc["paths"]["/api/v1/session"]["post"]["responses"]


CONFORMANCE = [status_code_conformance, response_schema_conformance, response_headers_conformance]


def _guarded(app, method: str, path: str, headers: list, body: bytes, **limits) -> Response:
    """One request through the real request guard (web/guard.py) in front of ``app``; a client that sends
    ``body`` and then nothing more."""

    async def call():
        sent = []
        chunks = [body] if body else []

        async def receive():
            if chunks:
                return {"type": "http.request", "body": chunks.pop(), "more_body": True}
            await asyncio.sleep(3600)  # the client stalls

        async def send(message):
            sent.append(message)

        scope = {"type": "http", "method": method, "path": path, "query_string": b"", "headers": headers}
        await Guard(app, **limits)(scope, receive, send)
        return sent

    start, content = asyncio.run(call())
    return Response(
        status_code=start["status"],
        headers={k.decode(): [v.decode()] for k, v in start["headers"]},
        content=content["body"],
        request=requests.Request(method, "http://localhost" + path).prepare(),
        elapsed=0.0,
        verify=False,
    )


def test_real_408_413_429_503_conform_to_the_document(demo_url, database_url):
    """The document describes what the server really sends: schemathesis' status, body and header
    checks pass on a stalled body (408) and an announced 1 GB body (413) through the guard, a sign-in
    past its failure limit (429), and a database that cannot be reached (503)."""
    app = create_app({"DATABASE_URL": demo_url, "TESTING": True, "SIGN_IN_LIMIT": "1 per minute"})
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    json_type = (b"content-type", b"application/json")
    stalled = _guarded(app, "POST", "/api/v1/session", [json_type], b'{"name": ', body_timeout=0.2)
    assert stalled.status_code == 408
    schema["/api/v1/session"]["POST"].Case().validate_response(stalled, checks=CONFORMANCE)
    for path in ("/api/v1/edits", "/api/v1/lookup"):
        huge = _guarded(app, "POST", path, [json_type, (b"content-length", b"1000000000")], b"")
        assert huge.status_code == 413
        schema[path]["POST"].Case().validate_response(huge, checks=CONFORMANCE)
    sign_in = schema["/api/v1/session"]["POST"]
    statuses = []
    for _ in range(2):
        res = sign_in.Case(body={"name": "nobody", "password": "wrong horse"}).call()
        statuses.append(res.status_code)
    assert statuses == [401, 429]
    sign_in.Case().validate_response(res, checks=CONFORMANCE)
    # a database nobody listens on: every route 503 with Retry-After
    nowhere = create_app({"DATABASE_URL": f"postgresql://postgres@127.0.0.1:{free_port()}/x", "TESTING": True})
    down = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", nowhere)
    for path, method, kwargs in (
        ("/api/v1/stats", "GET", {}),
        ("/api/v1/grids/{code}/panel", "GET", {"path_parameters": {"code": "410104"}}),
        ("/ogc/collections/{collectionId}/items", "GET", {"path_parameters": {"collectionId": "micro"}}),
    ):
        case = down[path][method].Case(**kwargs)
        res = case.call()
        assert res.status_code == 503, (path, res.text)
        case.validate_response(res, checks=CONFORMANCE)
