"""Partitioning courtyards into micro-grids over HTTP: ``POST /api/v1/partition``."""

from __future__ import annotations

from flask import Blueprint, jsonify

from ..domain.levels import HOUSEHOLD_BAND
from ..domain.partition import Band
from ..services import partitioning
from . import params
from .auth import current_actor, require
from .context import engine, risk_rules

bp = Blueprint("partition", __name__, url_prefix="/api/v1")

FIELDS = ("courtyard", "community", "all", "min", "max", "policy", "seed", "commit", "reason")


@bp.post("/partition")
@require("planner")  # a dry run too: it is heavy
def partition():
    """Propose micro-grids of ``min``..``max`` households for a ``courtyard``, a ``community`` or
    ``all``; writes them as a new version only with ``"commit": true``."""
    body = params.json_body(dict, 'send a JSON object: {"courtyard": "...", "min": 50, "max": 70, "commit": false}')
    params.body_keys(body, FIELDS)
    band = Band(
        params.body_int(body, "min", HOUSEHOLD_BAND[0], 1, 10_000),
        params.body_int(body, "max", HOUSEHOLD_BAND[1], 1, 10_000),
        params.body_str(body, "policy", 16) or "keep",
    )
    report = partitioning.run(
        engine(),
        rules=risk_rules(),
        courtyard=params.body_code(body, "courtyard", "courtyard"),
        community=params.body_code(body, "community", "community"),
        everything=params.body_bool(body, "all"),
        band=band,
        seed=params.body_int(body, "seed", 0, 0, 2**32 - 1),
        dry_run=not params.body_bool(body, "commit"),
        actor=current_actor(),
        reason=params.body_str(body, "reason"),
        with_preview=True,
    )
    return jsonify(report)
