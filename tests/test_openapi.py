"""The OpenAPI document: it describes every route of the app (and nothing else), and schemathesis,
sending requests generated from it to the real app over the demo city, finds no server error (5xx).

The schemathesis run writes (edits through /ogc and /api/v1/edits, visits, partitions with a planner's
token), so it works on a copy of the demo city loaded into the test database, not the shared demo one.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import schemathesis
from conftest import DEMO_SEED
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from gridmap.domain.risk import Rules
from gridmap.services.demo import load_demo
from gridmap.store import db, users
from gridmap.web import create_app
from gridmap.web.openapi import document

from servers import serving

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
