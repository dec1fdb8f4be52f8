"""SQL of the scanned page: where a building stands, how far a phone is from its grid, recent QR
reports (for rate limits), and the report a resident files through a QR code."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

SOURCE = "qr"


def building(conn: Connection, code: str) -> dict | None:
    """A current building: ``code``, ``name``, ``courtyard_code``, the micro-grid holding its point
    (``micro_code``, None when none does); None when unknown."""
    row = conn.execute(
        sa.text(
            "SELECT b.code, b.name, b.courtyard_code, (SELECT g.code FROM grid g WHERE g.valid_to IS NULL "
            "AND g.level = 'micro' AND ST_Covers(g.geom, ST_PointOnSurface(b.geom)) ORDER BY g.code LIMIT 1) "
            "FROM building b WHERE b.code = :c AND b.valid_to IS NULL"
        ),
        {"c": code},
    ).first()
    return dict(zip(("code", "name", "courtyard_code", "micro_code"), row, strict=True)) if row else None


def place(conn: Connection, code: str, lon: float | None, lat: float | None) -> dict:
    """The current grid ``code``'s point on surface (lon, lat) and, for a phone position, its distance
    in metres to the grid (0 inside)."""
    row = conn.execute(
        sa.text(
            "SELECT ST_X(p), ST_Y(p), CASE WHEN CAST(:lon AS float8) IS NULL THEN NULL ELSE "
            "ST_Distance(geom::geography, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)::geography) END "
            "FROM (SELECT geom, ST_PointOnSurface(geom) AS p FROM grid WHERE code = :c AND valid_to IS NULL) g"
        ),
        {"c": code, "lon": lon, "lat": lat},
    ).first()
    return {"lon": row[0], "lat": row[1], "distance_m": row[2]}


def lock_grid(conn: Connection, code: str) -> None:
    """Serialise QR reports on one grid for this transaction, so two at once both see the other."""
    conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext('qr-report:' || :c))"), {"c": code})


def recent(conn: Connection, *, client: str, code: str, since: datetime) -> tuple[int, int]:
    """(reports from ``client``, reports on grid ``code``) through QR codes since ``since``."""
    row = conn.execute(
        sa.text(
            "SELECT count(*) FILTER (WHERE attrs->'qr'->>'client' = :client), "
            "count(*) FILTER (WHERE attrs->'qr'->>'code' = :code) "
            "FROM report WHERE source = :src AND received_at >= :since"
        ),
        {"client": client, "code": code, "since": since, "src": SOURCE},
    ).first()
    return int(row[0]), int(row[1])


def insert_media(conn: Connection, report_id: int, path: str, content_type: str, size: int, sha256: str) -> None:
    """A photo filed with the report (stage ``report``), kept as a file under the media folder."""
    conn.execute(
        sa.text(
            "INSERT INTO report_media (report_id, stage, path, content_type, bytes, sha256) "
            "VALUES (:r, 'report', :p, :t, :b, :h)"
        ),
        {"r": report_id, "p": path, "t": content_type, "b": size, "h": sha256},
    )
