"""SQL for cases (the ``report`` table in the event centre) and their log, contacts and media:
writes in bulk and one at a time, the row lock a transition takes, the tick's due cases with
``SKIP LOCKED``, and open cases near a point for duplicates.

Column names in statements come from :data:`COLUMNS` only, never from a request.
"""

from __future__ import annotations

import json
import math

import lazy_loader
import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..geo import METRIC_SRID
from .db import copy_frame, copy_frames

pd = lazy_loader.load("pandas")

CHAIN_COLUMNS = ("micro_code", "courtyard_code", "community_code", "street_code", "district_code")
#: Columns a service may write (besides id): anything else is a bug, refused.
COLUMNS = (
    "received_at",
    "reported_at",
    "source",
    "external_id",
    "text",
    "address",
    "source_lon",
    "source_lat",
    "source_crs",
    "geom",
    *CHAIN_COLUMNS,
    "special_code",
    "outside",
    "state",
    "matter_code",
    "handling_level",
    "department_code",
    "assignee",
    "route",
    "due_at",
    "warn_at",
    "warned_at",
    "tick_at",
    "paused_at",
    "paused_seconds",
    "escalations",
    "escalated_at",
    "supervised_at",
    "disposed_by",
    "verified_by",
    "closed_at",
    "rating",
    "rating_reasons",
    "rated_at",
    "reopened",
    "parent_id",
    "merged_into",
    "attrs",
)
#: The largest id a bigint holds: a larger one names no case (and must not reach PostgreSQL).
MAX_ID = 2**63 - 1
LOG_COLUMNS = ("report_id", "at", "actor", "role", "action", "from_state", "to_state", "note", "detail")
_JSON = ("route", "attrs", "detail")


def _check(columns) -> list[str]:
    columns = list(columns)
    bad = [c for c in columns if c not in COLUMNS]
    if bad:
        raise ValueError(f"not a case column: {bad[0]}")  # a programming error, not user input
    return list(columns)


def allocate_ids(conn: Connection, n: int) -> np.ndarray:
    """``n`` fresh case ids from the table's sequence (bulk writes know their ids before COPY).  They
    come back as a first and last id when no other session drew from the sequence meanwhile, else as
    one text.  The sequence is named once, not per id (``pg_get_serial_sequence`` per id was 2 s of a
    million; 0.35 s now, measured on the bench database)."""
    first, last, spread = conn.execute(
        sa.text("""WITH s AS MATERIALIZED (SELECT CAST(pg_get_serial_sequence('report', 'id') AS regclass) AS seq),
                   v AS MATERIALIZED (SELECT nextval(s.seq) AS id FROM generate_series(1, :n), s)
                   SELECT min(id), max(id),
                          CASE WHEN max(id) - min(id) + 1 <> count(*)
                               THEN (SELECT string_agg(id::text, ',' ORDER BY id) FROM v) END
                   FROM v"""),
        {"n": n},
    ).one()
    if first is None:
        return np.zeros(0, dtype=np.int64)
    if spread is None:
        return np.arange(first, last + 1, dtype=np.int64)
    return np.array(spread.split(","), dtype=np.int64)


def copy_cases(conn: Connection, frame: pd.DataFrame) -> int:
    """COPY cases (``id`` plus columns of :data:`COLUMNS`; ``geom`` as EWKB hex; JSON as text)."""
    columns = ["id", *_check(c for c in frame.columns if c != "id")]
    copy_frame(conn, "report", columns, frame[columns])
    return len(frame)


def copy_cases_from(conn: Connection, columns: list[str], frames, progress=None) -> int:
    """COPY the cases of every frame ``frames`` yields (``columns``: ``id`` and columns of :data:`COLUMNS`)
    as one COPY, each frame made while PostgreSQL writes the one before; the cases written."""
    return copy_frames(conn, "report", ["id", *_check(c for c in columns if c != "id")], frames, progress)


def staged_known_ids(conn: Connection, stage: str, source: str) -> list[tuple]:
    """(part, seq, external_id) of the staged cases whose id was already received from ``source``."""
    rows = conn.execute(
        sa.text(f"""SELECT s.part, s.seq, s.external_id FROM {stage} s
                    WHERE s.external_id IS NOT NULL AND EXISTS (
                        SELECT 1 FROM report r WHERE r.source = :source AND r.external_id = s.external_id)"""),
        {"source": source},
    ).all()
    return [tuple(r) for r in rows]


def move_staged(conn: Connection, stage: str, columns: list[str], channel: str) -> tuple[int, int, int, int]:
    """The staged cases (``columns`` of :data:`COLUMNS`, plus ``contact_name``, ``contact_phone``,
    ``part``, ``seq``) into ``report`` with ids in (part, seq) order, and their reporters into
    ``report_contact``, in one statement; (first id, last id, cases, reporters)."""
    cols = ", ".join(_check(columns))
    first, last, n, contacts = conn.execute(
        sa.text(f"""
        WITH s AS MATERIALIZED (SELECT CAST(pg_get_serial_sequence('report', 'id') AS regclass) AS seq),
        src AS MATERIALIZED (
            SELECT nextval(s.seq) AS id, q.*
            FROM (SELECT * FROM {stage} ORDER BY part, seq) q, s),
        ins AS (INSERT INTO report (id, {cols}) SELECT id, {cols} FROM src RETURNING id),
        con AS (INSERT INTO report_contact (report_id, kind, channel, name, phone)
                SELECT id, 'reporter', :channel, contact_name, contact_phone FROM src
                WHERE contact_name IS NOT NULL OR contact_phone IS NOT NULL RETURNING 1)
        SELECT (SELECT min(id) FROM ins), (SELECT max(id) FROM ins), (SELECT count(*) FROM ins),
               (SELECT count(*) FROM con)"""),
        {"channel": channel},
    ).one()
    return first or 0, last or 0, n, contacts


def copy_log(conn: Connection, frame: pd.DataFrame) -> int:
    """COPY log entries (:data:`LOG_COLUMNS`)."""
    copy_frame(conn, "report_log", list(LOG_COLUMNS), frame[list(LOG_COLUMNS)])
    return len(frame)


def insert(conn: Connection, values: dict) -> int:
    """One case; its id.  ``geom`` is given as ``lon``/``lat`` (storage CRS) or not at all."""
    values = dict(values)
    lon, lat = values.pop("lon", None), values.pop("lat", None)
    names = _check(values)
    params = {k: json.dumps(v, ensure_ascii=False) if k in _JSON else v for k, v in values.items()}
    params.update(lon=lon, lat=lat)
    cols = ", ".join(names + ["geom"])
    x, y = "CAST(:lon AS double precision)", "CAST(:lat AS double precision)"  # typed: they may be NULL
    vals = ", ".join([f":{n}" for n in names] + [f"ST_SetSRID(ST_MakePoint({x}, {y}), 4326)"])
    return conn.execute(sa.text(f"INSERT INTO report ({cols}) VALUES ({vals}) RETURNING id"), params).scalar_one()


def log(conn: Connection, entries: list[dict]) -> list[int]:
    """Log entries (keys of :data:`LOG_COLUMNS`, ``at`` optional: now); their ids."""
    out = []
    for e in entries:
        params = {k: e.get(k) for k in LOG_COLUMNS}
        params["detail"] = json.dumps(e.get("detail") or {}, ensure_ascii=False)
        out.append(
            conn.execute(
                sa.text("""INSERT INTO report_log (report_id, at, actor, role, action, from_state, to_state, note,
                                                      detail)
                           VALUES (:report_id, coalesce(:at, now()), :actor, :role, :action, :from_state, :to_state,
                                   :note, CAST(:detail AS jsonb)) RETURNING id"""),
                params,
            ).scalar_one()
        )
    return out


def add_contact(conn: Connection, report_id: int, kind: str, contact: dict) -> None:
    """A reporter or follower of a case (personal data)."""
    conn.execute(
        sa.text("""INSERT INTO report_contact (report_id, kind, name, phone, email, account_id, device_id, channel)
                   VALUES (:rid, :kind, :name, :phone, :email, :account_id, :device_id, :channel)"""),
        {
            "rid": report_id,
            "kind": kind,
            **{k: contact.get(k) for k in ("name", "phone", "email", "account_id", "device_id", "channel")},
        },
    )


def move_contacts(conn: Connection, from_id: int, to_id: int) -> int:
    """A merged case's reporters and followers follow the case it was merged into."""
    return conn.execute(
        sa.text("""INSERT INTO report_contact (report_id, kind, name, phone, email, account_id, device_id, channel, at)
                   SELECT :to, 'follower', name, phone, email, account_id, device_id, channel, at
                   FROM report_contact WHERE report_id = :from"""),
        {"from": from_id, "to": to_id},
    ).rowcount


def add_media(conn: Connection, report_id: int, log_id: int | None, stage: str, item: dict, added_by: str) -> int:
    """A photo: a stored file (``path``, ``content_type``, ``bytes``, ``sha256``) or a ``url``."""
    return conn.execute(
        sa.text("""INSERT INTO report_media (report_id, log_id, stage, path, url, content_type, bytes, sha256, added_by)
                   VALUES (:rid, :log, :stage, :path, :url, :ctype, :bytes, :sha, :by) RETURNING id"""),
        {
            "rid": report_id,
            "log": log_id,
            "stage": stage,
            "path": item.get("path"),
            "url": item.get("url"),
            "ctype": item.get("content_type"),
            "bytes": item.get("bytes"),
            "sha": item.get("sha256"),
            "by": added_by,
        },
    ).scalar_one()


_SELECT = "SELECT r.*, ST_X(r.geom) AS lon, ST_Y(r.geom) AS lat FROM report r"


def lock(conn: Connection, case_id: int) -> dict | None:
    """The case's row, locked until the transaction ends (a transition), or None."""
    if not 0 < case_id <= MAX_ID:
        return None
    row = conn.execute(sa.text(f"{_SELECT} WHERE r.id = :id FOR UPDATE"), {"id": case_id}).mappings().first()
    return dict(row) if row else None


def get(conn: Connection, case_id: int) -> dict | None:
    if not 0 < case_id <= MAX_ID:
        return None
    row = conn.execute(sa.text(f"{_SELECT} WHERE r.id = :id"), {"id": case_id}).mappings().first()
    return dict(row) if row else None


def update(conn: Connection, case_id: int, values: dict) -> int:
    """Write ``values`` to the case and bump its version; the new version."""
    names = _check(values)
    params = {k: json.dumps(v, ensure_ascii=False) if k in _JSON else v for k, v in values.items()}
    sets = ", ".join([f"{n} = :{n}" for n in names] + ["version = version + 1"])
    return conn.execute(
        sa.text(f"UPDATE report SET {sets} WHERE id = :_id RETURNING version"), {**params, "_id": case_id}
    ).scalar_one()


def children_open(conn: Connection, parent_id: int) -> int:
    return conn.execute(
        sa.text("SELECT count(*) FROM report WHERE parent_id = :id AND status = 'open'"), {"id": parent_id}
    ).scalar_one()


def timeline(conn: Connection, case_id: int) -> list[dict]:
    """The case's log, oldest first, each entry with its media."""
    rows = conn.execute(
        sa.text("""SELECT l.id, l.at, l.actor, l.role, l.action, l.from_state, l.to_state, l.note, l.detail,
                          coalesce((SELECT json_agg(json_build_object('id', m.id, 'stage', m.stage, 'url', m.url,
                                    'file', m.path IS NOT NULL, 'content_type', m.content_type) ORDER BY m.id)
                                    FROM report_media m WHERE m.log_id = l.id), '[]') AS media
                   FROM report_log l WHERE l.report_id = :id ORDER BY l.at, l.id"""),
        {"id": case_id},
    ).mappings()
    return [dict(r) for r in rows]


def contacts(conn: Connection, case_id: int) -> list[dict]:
    rows = conn.execute(
        sa.text("""SELECT kind, name, phone, email, account_id, channel, at FROM report_contact
                   WHERE report_id = :id ORDER BY id"""),
        {"id": case_id},
    ).mappings()
    return [dict(r) for r in rows]


def media_item(conn: Connection, media_id: int) -> dict | None:
    if not 0 < media_id <= MAX_ID:
        return None
    row = conn.execute(sa.text("SELECT * FROM report_media WHERE id = :id"), {"id": media_id}).mappings().first()
    return dict(row) if row else None


def media_of(conn: Connection, case_id: int, stage: str) -> list[dict]:
    rows = conn.execute(
        sa.text("SELECT * FROM report_media WHERE report_id = :id AND stage = :stage ORDER BY id"),
        {"id": case_id, "stage": stage},
    ).mappings()
    return [dict(r) for r in rows]


def due(conn: Connection, now, limit: int) -> list[dict]:
    """Cases whose tick time has come, locked; rows another ticker holds are skipped (exactly once)."""
    rows = conn.execute(
        sa.text(f"""SELECT id, state, matter_code, handling_level, department_code, assignee, warn_at, warned_at,
                           due_at, escalations, {", ".join(CHAIN_COLUMNS)}
                    FROM report WHERE tick_at <= :now ORDER BY tick_at LIMIT :limit FOR UPDATE SKIP LOCKED"""),
        {"now": now, "limit": limit},
    ).mappings()
    return [dict(r) for r in rows]


def nearby_open(conn: Connection, matter: str, lon: float, lat: float, radius_m: float, since, exclude=None) -> list:
    """Open cases of ``matter`` received since ``since`` within ``radius_m`` of the point: (id, dx, dy,
    reported_at), offsets in metres from the point.  Read through the open cases' (matter, received)
    index; a box in degrees a little larger than the circle drops the far ones before any of them is
    projected."""
    dy = radius_m / 110_000.0 * 1.01  # metres per degree of latitude >= 110,574
    dx = radius_m / (111_320.0 * max(math.cos(math.radians(lat)), 0.01)) * 1.01
    rows = conn.execute(
        sa.text(f"""WITH p AS (SELECT ST_SetSRID(ST_MakePoint(:lon, :lat), 4326) AS g),
                         q AS (SELECT g, ST_Transform(g, {METRIC_SRID}) AS m FROM p)
                    SELECT r.id, ST_X(ST_Transform(r.geom, {METRIC_SRID})) - ST_X(q.m),
                           ST_Y(ST_Transform(r.geom, {METRIC_SRID})) - ST_Y(q.m), r.reported_at
                    FROM report r, q
                    WHERE r.matter_code = :matter AND r.received_at >= :since AND r.status = 'open'
                      AND r.id IS DISTINCT FROM :exclude
                      AND r.geom && ST_Expand(q.g, :dx, :dy)
                      AND ST_DWithin(ST_Transform(r.geom, {METRIC_SRID}), q.m, :radius)"""),
        {
            "lon": lon,
            "lat": lat,
            "matter": matter,
            "since": since,
            "radius": radius_m,
            "exclude": exclude,
            "dx": dx,
            "dy": dy,
        },
    )
    return [tuple(r) for r in rows]


def by_external_id(conn: Connection, source: str, external_id: str) -> int | None:
    """The case already received from ``source`` with that id (intake is idempotent per channel)."""
    return conn.execute(
        sa.text("SELECT id FROM report WHERE source = :source AND external_id = :ext"),
        {"source": source, "ext": external_id},
    ).scalar()


def known_external_ids(conn: Connection, source: str, ids: list[str]) -> set[str]:
    """Which of ``ids`` were already received from ``source`` (none asked when nothing was: sending a
    million ids costs a second)."""
    received = conn.execute(
        sa.text("SELECT EXISTS (SELECT 1 FROM report WHERE source = :source AND external_id IS NOT NULL)"),
        {"source": source},
    ).scalar_one()
    if not received:
        return set()
    rows = conn.execute(
        sa.text("SELECT external_id FROM report WHERE source = :source AND external_id = ANY(:ids)"),
        {"source": source, "ids": ids},
    )
    return {r[0] for r in rows}


def copy_contacts(conn: Connection, frame: pd.DataFrame) -> int:
    """COPY reporters (report_id, kind, channel, name, phone)."""
    columns = ["report_id", "kind", "channel", "name", "phone"]
    copy_frame(conn, "report_contact", columns, frame[columns])
    return len(frame)


def by_reporter_key(conn: Connection, key_hash: str) -> int | None:
    return conn.execute(sa.text("SELECT id FROM report WHERE attrs->>'reporter_key' = :h"), {"h": key_hash}).scalar()


def update_many(conn: Connection, updates: list[tuple[int, dict]]) -> int:
    """:func:`update` for many cases, one executemany per set of columns written."""
    groups: dict[tuple, list[dict]] = {}
    for case_id, values in updates:
        groups.setdefault(tuple(sorted(values)), []).append(
            {**{k: json.dumps(v, ensure_ascii=False) if k in _JSON else v for k, v in values.items()}, "_id": case_id}
        )
    for names, rows in groups.items():
        sets = ", ".join([f"{n} = :{n}" for n in _check(names)] + ["version = version + 1"])
        conn.execute(sa.text(f"UPDATE report SET {sets} WHERE id = :_id"), rows)
    return len(updates)


def log_many(conn: Connection, entries: list[dict]) -> int:
    """Log entries in one executemany (no ids back: the tick's warnings and escalations)."""
    if not entries:
        return 0
    rows = [
        {**{k: e.get(k) for k in LOG_COLUMNS}, "detail": json.dumps(e.get("detail") or {}, ensure_ascii=False)}
        for e in entries
    ]
    conn.execute(
        sa.text("""INSERT INTO report_log (report_id, at, actor, role, action, from_state, to_state, note, detail)
                   VALUES (:report_id, :at, :actor, :role, :action, :from_state, :to_state, :note,
                           CAST(:detail AS jsonb))"""),
        rows,
    )
    return len(rows)


def count_contacts(conn: Connection, case_id: int, kind: str) -> int:
    return conn.execute(
        sa.text("SELECT count(*) FROM report_contact WHERE report_id = :id AND kind = :kind"),
        {"id": case_id, "kind": kind},
    ).scalar_one()


def log_copied(conn: Connection, first: int, last: int, source: str, at, steps, detail: dict) -> int:
    """The log of the cases just copied (ids ``first``..``last`` received at ``at`` from ``source``),
    written by PostgreSQL itself in one statement: for each case, each of ``steps`` (from, action, to,
    actor, role, only in state or None) in their order, those whose state is their ``only`` one."""
    values, params = [], {}
    for k, (src, action, dst, actor, role, only) in enumerate(steps):
        values.append(
            f"({k}, CAST(:src{k} AS text), CAST(:action{k} AS text), CAST(:dst{k} AS text), "
            f"CAST(:actor{k} AS text), CAST(:role{k} AS text), CAST(:only{k} AS text))"
        )
        params.update(
            {f"src{k}": src, f"action{k}": action, f"dst{k}": dst, f"actor{k}": actor, f"role{k}": role}
            | {f"only{k}": only}
        )
    if not values:
        return 0
    # the steps joined to each case in turn: a case's entries get ascending ids in the steps' order
    return conn.execute(
        sa.text(f"""INSERT INTO report_log (report_id, at, actor, role, action, from_state, to_state, detail)
                   SELECT r.id, :at, s.actor, s.role, s.action, s.src, s.dst, CAST(:detail AS jsonb)
                   FROM report r CROSS JOIN LATERAL (VALUES {", ".join(values)})
                        AS s (k, src, action, dst, actor, role, only_in)
                   WHERE r.id BETWEEN :first AND :last AND r.source = :source AND r.received_at = :at
                     AND (s.only_in IS NULL OR r.state = s.only_in)"""),
        params
        | {
            "first": first,
            "last": last,
            "source": source,
            "at": at,
            "detail": json.dumps(detail, ensure_ascii=False),
        },
    ).rowcount
