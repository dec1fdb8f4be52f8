"""The page a resident reaches by scanning a QR code, and the report filed from it (channel ``qr``).

The page shows who serves the place, names and phones masked by the web layer's privacy rule
(:func:`gridmap.web.privacy.public_page`); a call button asks for one
worker's number (``call_number``), which is given only for a correctly signed code and counted
against the caller's limit, so the numbers cannot be gathered by walking the codes.  A report is
checked whole before anything is written; its photo is written under a temporary name, the rows
inserted, the file renamed, and the transaction committed; any failure removes the file and rolls
back, so nothing is half-written.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import uuid
from datetime import datetime, timedelta
from pathlib import Path

from cachetools import TTLCache
from sqlalchemy.engine import Connection, Engine

from ..domain import people as people_domain
from ..domain import qr
from ..domain import scan as domain
from ..domain.events.catalogue import LEVELS_UP
from ..domain.events.intake import Report
from ..domain.levels import LABELS as LEVEL_LABELS
from ..domain.party import ORG_KINDS
from ..errors import NotFound, RateLimited
from ..store import party as party_store
from ..store import people as people_store
from ..store import scan as store
from ..store.grids import chain as grid_chain
from . import events
from . import qr as qr_service

#: Roles a resident may call from the page, in the page's order.
CALLABLE = ("grid_worker", "grid_leader", "building_lead", "unit_lead")


def _where(conn: Connection, target: qr.Target) -> dict:
    """The grid chain and the post places of a target; NotFound when it is not current."""
    building = unit = None
    if target.kind == "g":
        grid = target.code
    else:
        building, unit = qr.split_unit(target.code) if target.kind == "u" else (target.code, None)
        found = store.building(conn, building)
        if found is None:
            raise NotFound(f"楼栋 {building} 已不存在 / building {building} no longer exists")
        grid = found["micro_code"] or found["courtyard_code"]
        building = found
    chain = grid_chain(conn, grid)
    if not chain:
        raise NotFound(f"网格 {grid} 已撤销 / grid {grid} no longer exists: the code on the wall is out of date")
    return {"grid": grid, "chain": chain, "building": building, "unit": unit}


def _visible_posts(conn: Connection, where: dict) -> list[dict]:
    codes = [g["code"] for g in where["chain"]]
    own = where["chain"][-1]["code"]
    out = []
    for p in people_store.posts(conn, grids=codes):
        if p["role"] in ("party_member",):
            continue
        if p["building_code"]:  # only the leads of this building (and of this unit)
            b = where["building"]
            if not b or p["building_code"] != b["code"] or (where["unit"] and p["unit"] not in (None, where["unit"])):
                continue
        elif p["grid_code"] != own and p["role"] != "grid_leader":
            continue  # from the grids above: their leaders only
        out.append(p)
    order = {r: i for i, r in enumerate(people_domain.PUBLIC_ORDER)}
    depth = {c: i for i, c in enumerate(reversed(codes))}
    out.sort(key=lambda p: (order.get(p["role"], 99), depth.get(p["grid_code"], 99), p["id"]))
    return out


def open_page(eng: Engine, code: str, args) -> dict:
    """What the page of a scanned link shows; InputError / BadSignature / NotFound when the link is
    malformed, forged or copied, or its place no longer current."""
    with eng.connect() as conn:
        return _page(conn, qr_service.verify(conn, code, args))


def _page(conn: Connection, target: qr.Target) -> dict:
    """The place, its chain, the people serving it, the party organisation (names and phones as
    stored: the page masks them)."""
    where = _where(conn, target)
    people = [
        {
            "id": p["id"],
            "role": p["role"],
            "role_label": people_domain.LABELS[p["role"]],
            "name": p["name"],
            "phone": p["phone"],
            "callable": p["role"] in CALLABLE and bool(p["phone"]),
            "where": p["grid_code"] if not p["building_code"] else None,
        }
        for p in _visible_posts(conn, where)
    ]
    orgs = party_store.covering(conn, [g["code"] for g in where["chain"]])
    title = where["chain"][-1]["name"]
    if where["building"]:
        title = where["building"]["name"] + (f"{where['unit']}单元" if where["unit"] else "")
    return {
        "kind": target.kind,
        "code": target.code,
        "title": title,
        "chain": [{**g, "level_label": LEVEL_LABELS[g["level"]]} for g in where["chain"]],
        "people": people,
        "orgs": [
            {
                "name": o["name"],
                "kind_label": ORG_KINDS[o["kind"]],
                "parent": o["parent_name"],
                "secretary": o["secretary_name"],
            }
            for o in orgs[:2]
        ],
    }


def _client(conn: Connection, remote: str, agent: str) -> str:
    """A stable pseudonym of a phone (address and browser), keyed so no address is stored."""
    key = qr_service.keys(conn)[1]
    return hmac.new(key, f"{remote}|{agent}".encode(), hashlib.sha256).hexdigest()[:20]


class CallLimiter:
    """Numbers revealed per client per hour, counted in this process (a worker process each: the
    limit is per process, which is enough to stop a crawl; reports are limited in the database)."""

    def __init__(self, per_hour: int = domain.CALLS_PER_HOUR):
        self.per_hour = per_hour
        self.counts = TTLCache(maxsize=100_000, ttl=3600)

    def take(self, client: str) -> None:
        """Count one reveal; RateLimited past the limit."""
        n = self.counts.get(client, 0)
        if n >= self.per_hour:
            raise RateLimited(f"查看电话太频繁 / at most {self.per_hour} numbers an hour: please try later")
        self.counts[client] = n + 1


def call_number(eng: Engine, code: str, args, post_id: int, *, remote: str, agent: str, limiter: CallLimiter) -> str:
    """The ``tel:`` URI of one callable person serving the scanned place, counted against the
    caller's limit; NotFound for anyone else, RateLimited past the limit."""
    with eng.connect() as conn:
        target = qr_service.verify(conn, code, args)
        limiter.take(_client(conn, remote, agent))
        for p in _visible_posts(conn, _where(conn, target)):
            if p["id"] == post_id and p["role"] in CALLABLE and p["phone"]:
                return people_domain.tel_uri(p["phone"])
    raise NotFound(f"no one to call as {post_id} here")


def submit(
    centre,
    code: str,
    args,
    form: dict,
    photo: bytes | None,
    *,
    remote: str,
    agent: str,
    now: datetime | None = None,
) -> dict:
    """File a report from the scanned page into the event centre (channel ``qr``, the grid known):
    with a matter from the catalogue's public list it is filed and routed as every channel's
    reports are; without one it waits in the dispatchers' queue.  BadSignature (403) for a forged
    or copied code, InputError / PayloadTooLarge for a bad form, RateLimited (429) past the hourly
    limits, NotFound for a place no longer current; in every such case nothing is written."""
    eng = centre.engine
    now = now or centre.now()
    with eng.connect() as conn:  # a link that cannot be trusted is refused before its form is read
        qr_service.verify(conn, code, args)
    text = domain.check_text(form.get("text"))
    position = domain.check_position(form.get("lon"), form.get("lat"))
    phone = people_domain.normalise_phone(form["phone"]) if (form.get("phone") or "").strip() else None
    matter = domain.check_matter(form.get("matter"), centre.catalogue.public)
    kind = domain.photo_type(photo) if photo else None
    media_dir = Path(centre.media_dir)
    tmp = final = None
    if photo:
        media_dir.mkdir(parents=True, exist_ok=True)
        tmp = media_dir / f".{uuid.uuid4().hex}.part"
        tmp.write_bytes(photo)
    try:
        with eng.begin() as conn:
            target = qr_service.verify(conn, code, args)
            client = _client(conn, remote, agent)
            where = _where(conn, target)
            store.lock_grid(conn, where["grid"])
            why = domain.limit_message(
                *store.recent(conn, client=client, code=target.code, since=now - timedelta(hours=1))
            )
            if why:
                raise RateLimited(why, retry_after=3600)
            place, attrs = _place(conn, target, where, position, client)
            report = Report(
                matter or "",
                position[0] if position else None,
                position[1] if position else None,
                "EPSG:4326" if position else None,
                text=text,
                channel=store.SOURCE,
                contact={"phone": phone} if phone else {},
            )
            matter_of = centre.catalogue.matter(matter) if matter else None
            filed = events.file_case(conn, centre, report, matter_of, place, actor="qr", attrs=attrs, now=now)
            if photo:
                digest = hashlib.sha256(photo).hexdigest()
                final = media_dir / f"{filed['id']}-{digest[:12]}.{kind[1]}"
                store.insert_media(conn, filed["id"], str(final), kind[0], len(photo), digest)
                os.replace(tmp, final)
        return {
            "id": filed["id"],
            "grid": where["grid"],
            "location": attrs["location"],
            "state": filed["state"],
            "matter": filed["matter"],
            "due_at": filed["due_at"],
            "time_zone": filed["time_zone"],
            "reporter_key": filed["reporter_key"],
        }
    except BaseException:
        for path in (tmp, final):
            if path is not None and path.exists():
                path.unlink()
        raise


def _place(conn, target, where, position, client) -> tuple[dict, dict]:
    """Where the case is (the phone's position when near the grid, else the grid's) with the grid
    chain known from the code, and what the case keeps of the scan."""
    codes = {g["level"]: g["code"] for g in where["chain"]}
    near = store.place(conn, where["grid"], *(position or (None, None)))
    use_phone = position is not None and near["distance_m"] <= domain.NEAR_M
    lon, lat = position if use_phone else (near["lon"], near["lat"])
    location = "phone" if use_phone else ("grid (phone too far)" if position else "grid")
    attrs = {
        "qr": {"kind": target.kind, "code": target.code, "version": target.version, "client": client},
        "location": location,
    }
    if position and not use_phone:
        attrs["phone_distance_m"] = round(near["distance_m"])
    place = {
        "lon": lon,
        "lat": lat,
        "chain": {lv: codes[lv] for lv in LEVELS_UP if codes.get(lv)},
        "inside": True,
        "special": codes.get("special"),
    }
    return place, attrs
