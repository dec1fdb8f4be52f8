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
    private(case, "text", "contacts", readers=CASE_READERS)  # the event centre's narrower set
"""

from __future__ import annotations

from flask import g, request

from ..domain import roles
from ..domain.events.intake import PERSONAL_READERS
from ..errors import Unauthorized
from .auth import authenticate

#: The lowest role that may read personal data.
ROLE = "viewer"
#: Roles that may read what reporters sent the event centre (their texts, names, phones, photos, the
#: case log's notes and actors): those who work cases — a viewer sees the case, not who reported it.
CASE_READERS = PERSONAL_READERS


def role_sees(role: str | None, readers=None) -> bool:
    """The rule itself: whether a caller of ``role`` (None: no good token) may read personal data —
    :data:`ROLE` or above, or one of ``readers`` when a route names a narrower set."""
    if role is None:
        return False
    return role in readers if readers is not None else roles.allows(role, ROLE)


def _role() -> str | None:
    """The role of this request's live token, None without one (unknown, revoked, expired: None)."""
    if "gridmap_private_role" not in g:
        role = None
        if "gridmap_actor" in g or request.headers.get("Authorization", "").strip():
            try:
                role = authenticate().role
            except Unauthorized:
                role = None
        g.gridmap_private_role = role
    return g.gridmap_private_role


def sees_private(readers=None) -> bool:
    """Whether this request may read personal data (:func:`role_sees` of its token's role).  No token,
    or one that is not good (unknown, revoked, expired): False — an open read stays open, it just
    leaves the personal fields out."""
    return role_sees(_role(), readers)


def private(record: dict, *fields: str, readers=None) -> dict:
    """``record`` without ``fields`` unless the caller may read personal data (changed in place)."""
    if fields and not sees_private(readers):
        for field in fields:
            record.pop(field, None)
    return record


def private_each(records, *fields: str, within: str | None = None, readers=None) -> list:
    """:func:`private` on every record (on ``record[within]`` when given, e.g. a Feature's properties)."""
    for record in records:
        private(record[within] if within else record, *fields, readers=readers)
    return records
