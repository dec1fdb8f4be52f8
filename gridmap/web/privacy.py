"""Personal data is private by default: one rule, used by every route that returns some.

Open reads (``GRIDMAP_AUTH_READ=open``) give anyone the map: grid geometry, codes, names, levels and
counts.  Data about people — names and phones of the people responsible for a grid, risk elements'
names, reasons, markers and free attributes (and where a *person* element is), report texts and
addresses, residents — needs a token of the viewer role or above, whatever the read mode.  A route
returns its records through :func:`private` (or :func:`private_each`), naming the personal fields;
for a caller without such a token those fields are left out.  The README's "Personal data" table
lists them field by field.

Usage::

    feature["properties"] = private(feature["properties"], "people")
    private_each(body["features"], "text", "address", within="properties")
"""

from __future__ import annotations

from flask import g, request

from ..domain import roles
from ..errors import Unauthorized
from .auth import authenticate

#: The lowest role that may read personal data.
ROLE = "viewer"


def sees_private() -> bool:
    """Whether this request may read personal data: a live token of :data:`ROLE` or above.  No token,
    or one that is not good (unknown, revoked, expired): False — an open read stays open, it just
    leaves the personal fields out."""
    cached = g.get("gridmap_sees_private")
    if cached is None:
        cached = False
        if "gridmap_actor" in g or request.headers.get("Authorization", "").strip():
            try:
                cached = roles.allows(authenticate().role, ROLE)
            except Unauthorized:
                cached = False
        g.gridmap_sees_private = cached
    return cached


def private(record: dict, *fields: str) -> dict:
    """``record`` without ``fields`` unless the caller may read personal data (changed in place)."""
    if fields and not sees_private():
        for field in fields:
            record.pop(field, None)
    return record


def private_each(records, *fields: str, within: str | None = None) -> list:
    """:func:`private` on every record (on ``record[within]`` when given, e.g. a Feature's properties)."""
    for record in records:
        private(record[within] if within else record, *fields)
    return records
