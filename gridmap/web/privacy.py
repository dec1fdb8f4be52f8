"""Personal data is private by default: one rule, used by every route that returns some.

Open reads (``GRIDMAP_AUTH_READ=open``) give anyone the map: grid geometry, codes, names, levels and
counts.  Data about people — names and phones of the people responsible for a grid, risk elements'
names, reasons, markers and free attributes (and where a *person* element is), report texts and
addresses, residents — needs a token of the viewer role or above, whatever the read mode.  A route
returns its records through :func:`private` (or :func:`private_each`), naming the personal fields;
for a caller without such a token those fields are left out.  The README's "Personal data" table
lists them field by field.

Phone numbers are one step further in (issue 13): shown whole only to dispatchers and above
(:data:`PHONE_ROLE`); a viewer gets them masked (``138****5678``, :func:`gridmap.domain.people.mask_phone`),
wherever they sit inside a personal field (a lookup's people, a post, a party organisation's
secretary).  A route may name a narrower or other set of ``readers`` and of roles seeing ``phones``
whole: the grid people routes admit the street office's roster keeper (:data:`ROSTER_READERS`,
:data:`ROSTER_PHONES`), who sees there what a dispatcher sees and nothing personal elsewhere.  The
scanned QR page is public: it shows the people serving a place with names and phones masked for
everyone (:func:`public_page`).  The event centre's case routes name :data:`CASE_READERS` (those who
work cases); a route that names only its readers lets them see the phones in what they read whole (a
handler calls the reporter back).

Usage::

    feature["properties"] = private(feature["properties"], "people")
    private_each(body["features"], "text", "address", within="properties")
    private_each(posts, "name", "phone", readers=ROSTER_READERS, phones=ROSTER_PHONES)
    private(case, "text", "contacts", readers=CASE_READERS)  # the event centre's narrower set
"""

from __future__ import annotations

from flask import g, request

from ..domain import roles
from ..domain.events.intake import PERSONAL_READERS
from ..domain.people import mask_name, mask_phone
from ..errors import Unauthorized
from .auth import authenticate

#: The lowest role that may read personal data.
ROLE = "viewer"
#: The lowest role that sees phone numbers whole; below it (viewers) they are masked.
PHONE_ROLE = "dispatcher"
#: The grid people routes: who reads them (viewer and above, the roster keeper) and who sees phones
#: whole there (dispatcher and above, the roster keeper).
ROSTER_READERS = (*roles.ORDER, roles.ROSTER)
ROSTER_PHONES = (*roles.ORDER[roles.ORDER.index(PHONE_ROLE) :], roles.ROSTER)
#: Keys that hold a phone number, at any depth of a personal field.
PHONE_KEYS = frozenset({"phone", "secretary_phone"})
#: Roles that may read what reporters sent the event centre (their texts, names, phones, photos, the
#: case log's notes and actors): those who work cases — a viewer sees the case, not who reported it.
CASE_READERS = PERSONAL_READERS


def role_sees(role: str | None, readers=None) -> bool:
    """The rule itself: whether a caller of ``role`` (None: no good token) may read personal data —
    :data:`ROLE` or above, or one of ``readers`` when a route names its own set."""
    if role is None:
        return False
    return role in readers if readers is not None else roles.allows(role, ROLE)


def role_sees_phones(role: str | None, phones=None) -> bool:
    """Whether a caller of ``role`` sees phone numbers whole: :data:`PHONE_ROLE` or above, or one of
    ``phones`` when a route names its own set."""
    if role is None:
        return False
    return role in phones if phones is not None else roles.allows(role, PHONE_ROLE)


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


def sees_phones(phones=None) -> bool:
    """Whether this request sees phone numbers whole (:func:`role_sees_phones` of its token's role)."""
    return role_sees_phones(_role(), phones)


def _masked(value, key: str | None = None):
    """``value`` with every phone number in it masked, at any depth."""
    if isinstance(value, dict):
        return {k: _masked(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_masked(v, key) for v in value]
    if isinstance(value, str) and key in PHONE_KEYS:
        return mask_phone(value)
    return value


def private(record: dict, *fields: str, readers=None, phones=None) -> dict:
    """``record`` without ``fields`` unless the caller may read personal data, and with the phone
    numbers in them masked unless the caller may see them whole — :data:`PHONE_ROLE` and above, or
    ``phones``, or ``readers`` when a route names readers and not phones (changed in place)."""
    if not fields:
        return record
    if phones is None:
        phones = readers  # a route's own set of readers sees the phones in what it may read
    if not sees_private(readers):
        for field in fields:
            record.pop(field, None)
    elif not sees_phones(phones):
        for field in fields:
            if field in record:
                record[field] = _masked(record[field], field)
    return record


def private_each(records, *fields: str, within: str | None = None, readers=None, phones=None) -> list:
    """:func:`private` on every record (on ``record[within]`` when given, e.g. a Feature's properties)."""
    for record in records:
        private(record[within] if within else record, *fields, readers=readers, phones=phones)
    return records


def public_page(records, *, names=(), phones=()) -> list:
    """What the public scanned page shows of each record whatever the caller's token: the ``names``
    fields masked (张* / 王*明), the ``phones`` fields masked (138****5678); changed in place."""
    for record in records:
        for key in names:
            record[key] = mask_name(record.get(key))
        for key in phones:
            record[key] = mask_phone(record.get(key))
    return records
