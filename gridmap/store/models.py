"""The schema gridmap owns, declared once (Alembic migrations create it).

Identity and history: a grid is known by its ``code``; each row is one dated
version of it, valid over ``[valid_from, valid_to)`` (``valid_to`` NULL = current).
Triggers (migration 0001) make two versions of one code that overlap in time
impossible, so "the boundaries valid on date D" is always one set.  Parents are
referenced by code, not row id, so a parent's new version does not rewrite its
children.
"""

from __future__ import annotations

import sqlalchemy as sa
from geoalchemy2 import Geometry
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import DeclarativeBase

from ..domain.levels import ALL_LEVELS, SPECIAL_KINDS
from ..domain.risk import COLOURS as RISK_COLOURS
from ..domain.risk import KINDS as RISK_KINDS
from ..domain.roles import ROLES
from ..geo import STORAGE_SRID


class Base(DeclarativeBase):
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(table_name)s_%(column_0_name)s",
            "uq": "uq_%(table_name)s_%(column_0_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


def _in(values):
    return ", ".join(f"'{v}'" for v in values)


class Grid(Base):
    """One dated version of a grid of any level."""

    __tablename__ = "grid"
    id = Column(BigInteger, primary_key=True)
    code = Column(Text, nullable=False)
    name = Column(Text, nullable=False)
    level = Column(Text, nullable=False)
    kind = Column(Text)  # special grids only
    parent_code = Column(Text)
    households = Column(Integer, nullable=False, server_default="0")
    population = Column(Integer, nullable=False, server_default="0")
    geom = Column(Geometry("MULTIPOLYGON", srid=STORAGE_SRID, spatial_index=False), nullable=False)
    valid_from = Column(DateTime(timezone=True), nullable=False, server_default=func.now())
    valid_to = Column(DateTime(timezone=True))
    attrs = Column(JSONB, nullable=False, server_default=text("'{}'::jsonb"))
    multipart = Column(Boolean, nullable=False, server_default=text("false"))  # allowed in several pieces
    __table_args__ = (
        CheckConstraint(f"level IN ({_in(ALL_LEVELS)})", name="level"),
        CheckConstraint(
            f"(level = 'special') = (kind IS NOT NULL) AND (kind IS NULL OR kind IN ({_in(SPECIAL_KINDS)}))",
            name="kind",
        ),
        CheckConstraint("households >= 0 AND population >= 0", name="counts"),
        CheckConstraint("valid_to IS NULL OR valid_to > valid_from", name="validity"),
    )


class Building(Base):
    """A building footprint inside a courtyard; households live in its units."""

    __tablename__ = "building"
    id = Column(BigInteger, primary_key=True)
    code = Column(Text, nullable=False)
    courtyard_code = Column(Text, nullable=False, index=True)
    name = Column(Text, nullable=False)
    number = Column(Text)  # the 楼号 as written: "3号楼"
    floors = Column(Integer)
    households = Column(Integer, nullable=False, server_default="0")
    geom = Column(Geometry("MULTIPOLYGON", srid=STORAGE_SRID, spatial_index=False), nullable=False)
    valid_from = Column(DateTime(timezone=True), nullable=False, server_default=func.now())
    valid_to = Column(DateTime(timezone=True))
    __table_args__ = (
        CheckConstraint("households >= 0", name="households"),
        CheckConstraint("valid_to IS NULL OR valid_to > valid_from", name="validity"),
    )


class Unit(Base):
    """A stairwell unit (单元) of a building version, with its households."""

    __tablename__ = "unit"
    building_id = Column(BigInteger, ForeignKey("building.id", ondelete="CASCADE"), primary_key=True)
    number = Column(Integer, primary_key=True)
    households = Column(Integer, nullable=False)
    floors = Column(Integer)
    floor_households = Column(ARRAY(Integer))  # households on floors 1..floors, summing to households
    __table_args__ = (
        CheckConstraint("households > 0", name="households"),
        CheckConstraint("floors > 0", name="floors"),
        CheckConstraint(
            "floor_households IS NULL OR (floors IS NOT NULL AND cardinality(floor_households) "
            "= floors AND int_array_sum(floor_households) = households)",
            name="floor_households",
        ),
    )


class GridEpoch(Base):
    """A counter bumped (and NOTIFY'd on channel ``gridmap_grids``) by every change to ``grid``.

    In-memory indexes compare it to know whether they are stale.
    """

    __tablename__ = "grid_epoch"
    id = Column(Integer, primary_key=True)
    epoch = Column(BigInteger, nullable=False, server_default="0")
    changed_at = Column(DateTime(timezone=True), nullable=False, server_default=func.now())
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)


class EpochListener(Base):
    """A server's listening connection and the newest grid epoch it has heard of (migration 0021):
    a write waits until every live listener has heard of it."""

    __tablename__ = "epoch_listener"
    __table_args__ = {"prefixes": ["UNLOGGED"]}
    pid = Column(Integer, primary_key=True)
    backend_start = Column(DateTime(timezone=True), primary_key=True)
    epoch = Column(BigInteger, nullable=False)
    seen_at = Column(DateTime(timezone=True), nullable=False, server_default=func.now())


class EditLog(Base):
    """Audit log of every write: who, when, what and why."""

    __tablename__ = "edit_log"
    id = Column(BigInteger, primary_key=True)
    at = Column(DateTime(timezone=True), nullable=False, server_default=func.now())
    actor = Column(Text, nullable=False)
    action = Column(Text, nullable=False)
    reason = Column(Text)
    detail = Column(JSONB, nullable=False, server_default=text("'{}'::jsonb"))
    #: The grid codes the write touched (closed, opened, re-parented): what `gridmap history CODE` finds.
    codes = Column(ARRAY(Text), nullable=False, server_default=text("'{}'"))
    __table_args__ = (Index("ix_edit_log_codes", "codes", postgresql_using="gin"),)


class RiskElement(Base):
    """A person, place, thing, event, situation or organisation marked red, yellow or blue (三色管理).

    ``micro_code`` is the micro-grid of its point (a polygon's representative point), assigned by the
    lookup; ``last_visit_at`` is kept equal to its latest visit by a trigger (migration 0003).
    """

    __tablename__ = "risk_element"
    id = Column(BigInteger, primary_key=True)
    kind = Column(Text, nullable=False)
    colour = Column(Text, nullable=False)
    name = Column(Text, nullable=False)
    reason = Column(Text)
    marked_by = Column(Text, nullable=False)
    marked_at = Column(DateTime(timezone=True), nullable=False, server_default=func.now())
    geom = Column(Geometry("GEOMETRY", srid=STORAGE_SRID, spatial_index=False), nullable=False)
    micro_code = Column(Text, index=True)
    last_visit_at = Column(DateTime(timezone=True))
    attrs = Column(JSONB, nullable=False, server_default=text("'{}'::jsonb"))
    __table_args__ = (
        CheckConstraint(f"kind IN ({_in(RISK_KINDS)})", name="kind"),
        CheckConstraint(f"colour IN ({_in(RISK_COLOURS)})", name="colour"),
        CheckConstraint("GeometryType(geom) IN ('POINT', 'POLYGON', 'MULTIPOLYGON')", name="geom_type"),
    )


class RiskVisit(Base):
    """One visit to a risk element (who, when, what they noted)."""

    __tablename__ = "risk_visit"
    id = Column(BigInteger, primary_key=True)
    element_id = Column(BigInteger, ForeignKey("risk_element.id", ondelete="CASCADE"), nullable=False)
    visited_at = Column(DateTime(timezone=True), nullable=False)
    visitor = Column(Text, nullable=False)
    note = Column(Text)


class GridRisk(Base):
    """The rolled-up colour and counts of a current grid with elements below it (refreshed, not live:
    ``overdue`` is as of ``computed_at``)."""

    __tablename__ = "grid_risk"
    code = Column(Text, primary_key=True)
    level = Column(Text, nullable=False)
    colour = Column(Text)
    red = Column(Integer, nullable=False)
    yellow = Column(Integer, nullable=False)
    blue = Column(Integer, nullable=False)
    overdue = Column(Integer, nullable=False)
    computed_at = Column(DateTime(timezone=True), nullable=False)
    __table_args__ = (CheckConstraint(f"colour IN ({_in(RISK_COLOURS)})", name="colour"),)


class AppUser(Base):
    """A person or script using the API, with one role (``gridmap/domain/roles.py``)."""

    __tablename__ = "app_user"
    id = Column(BigInteger, primary_key=True)
    name = Column(Text, nullable=False, unique=True)
    role = Column(Text, nullable=False)
    created_at = Column(DateTime(timezone=True), nullable=False, server_default=func.now())
    disabled_at = Column(DateTime(timezone=True))
    #: scrypt hash of the map sign-in password (migration 0012); NULL: tokens only.
    password_hash = Column(Text)
    __table_args__ = (
        CheckConstraint(f"role IN ({_in(ROLES)})", name="role"),
        CheckConstraint("name <> ''", name="name"),
    )


class ApiToken(Base):
    """A bearer token of a user: only its SHA-256 (``token_hash``) and first characters (``prefix``,
    to name it) are kept; the token itself is shown once, when it is made."""

    __tablename__ = "api_token"
    id = Column(BigInteger, primary_key=True)
    user_id = Column(BigInteger, ForeignKey("app_user.id", ondelete="CASCADE"), nullable=False, index=True)
    token_hash = Column(Text, nullable=False, unique=True)
    prefix = Column(Text, nullable=False, index=True)
    label = Column(Text)
    created_at = Column(DateTime(timezone=True), nullable=False, server_default=func.now())
    last_used_at = Column(DateTime(timezone=True))
    expires_at = Column(DateTime(timezone=True))
    revoked_at = Column(DateTime(timezone=True))


class GridCode(Base):
    """Every grid code ever issued, with its level; a retired code is never issued again (triggers,
    migration 0007)."""

    __tablename__ = "grid_code"
    code = Column(Text, primary_key=True)
    level = Column(Text, nullable=False)
    issued_at = Column(DateTime(timezone=True), nullable=False)
    retired_at = Column(DateTime(timezone=True))


class GridShare(Base):
    """A micro-grid version's share of a building: floors ``floor_from``..``floor_to`` of one unit."""

    __tablename__ = "grid_share"
    grid_id = Column(BigInteger, ForeignKey("grid.id", ondelete="CASCADE"), primary_key=True)
    building_code = Column(Text, primary_key=True)
    unit = Column(Integer, primary_key=True)
    floor_from = Column(Integer, primary_key=True)
    floor_to = Column(Integer, nullable=False)
    households = Column(Integer, nullable=False)
    __table_args__ = (
        CheckConstraint("households >= 0", name="households"),
        CheckConstraint("floor_to >= floor_from", name="floors"),
    )


class GridChange(Base):
    """The codes each grid epoch touched (``*``: everything), for incremental lookup indexes."""

    __tablename__ = "grid_change"
    id = Column(BigInteger, primary_key=True)
    epoch = Column(BigInteger, nullable=False, index=True)
    code = Column(Text, nullable=False)
    at = Column(DateTime(timezone=True), nullable=False, server_default=func.now())


class ShareChange(Base):
    """A counter bumped by every statement that writes rows of ``grid_share`` or ``building``
    (migration 0017): a server holding the shares knows without reading them that none was written."""

    __tablename__ = "share_change"
    id = Column(Integer, primary_key=True)
    n = Column(BigInteger, nullable=False)
    __table_args__ = (CheckConstraint("id = 1", name="one"),)


class Resident(Base):
    """A household member placed by their address (down to floor and room when known)."""

    __tablename__ = "resident"
    id = Column(BigInteger, primary_key=True)
    name = Column(Text)
    address = Column(Text, nullable=False)
    building_code = Column(Text)
    unit = Column(Integer)
    floor = Column(Integer)
    room = Column(Text)
    geom = Column(Geometry("POINT", srid=STORAGE_SRID, spatial_index=False))
    micro_code = Column(Text)
    assigned_at = Column(DateTime(timezone=True), nullable=False, server_default=func.now())


#: The loop's states (migrations 0010, 0013); ``status`` is ``closed`` in closed, cancelled, merged and assessed.
CASE_STATES = (
    "reported",
    "filed",
    "dispatched",
    "disposing",
    "disposed",
    "verified",
    "closed",
    "suspended",
    "cancelled",
    "merged",
    "assessed",
    "reopen_requested",
    "split_up",
)
HANDLING_LEVELS = ("micro", "courtyard", "community", "street", "district", "city")


class Report(Base):
    """A report from any channel, and the case it becomes in the event centre's closed loop."""

    __tablename__ = "report"
    id = Column(BigInteger, primary_key=True)
    received_at = Column(DateTime(timezone=True), nullable=False, server_default=func.now())
    reported_at = Column(DateTime(timezone=True), nullable=False, server_default=func.now())
    source = Column(Text, nullable=False, server_default="api")
    external_id = Column(Text)  # unique with source
    text = Column(Text, nullable=False)
    address = Column(Text)
    source_lon = Column(Float)
    source_lat = Column(Float)
    source_crs = Column(Text)
    geom = Column(Geometry("POINT", srid=STORAGE_SRID, spatial_index=False))
    micro_code = Column(Text)
    courtyard_code = Column(Text)
    community_code = Column(Text)
    street_code = Column(Text)
    district_code = Column(Text)
    special_code = Column(Text)
    outside = Column(Boolean, nullable=False, server_default=sa.text("false"))
    status = Column(Text, nullable=False, server_default="open")  # kept equal to state by a trigger
    state = Column(Text, nullable=False, server_default="reported")
    matter_code = Column(Text)
    handling_level = Column(Text)
    department_code = Column(Text)
    assignee = Column(Text)
    route = Column(JSONB, nullable=False, server_default=sa.text("'{}'::jsonb"))  # why it went where it went
    due_at = Column(DateTime(timezone=True))
    warn_at = Column(DateTime(timezone=True))
    warned_at = Column(DateTime(timezone=True))
    paused_at = Column(DateTime(timezone=True))
    paused_seconds = Column(BigInteger, nullable=False, server_default="0")
    escalations = Column(SmallInteger, nullable=False, server_default="0")
    escalated_at = Column(DateTime(timezone=True))
    supervised_at = Column(DateTime(timezone=True))
    disposed_by = Column(Text)
    verified_by = Column(Text)
    closed_at = Column(DateTime(timezone=True))
    rating = Column(SmallInteger)
    rating_reasons = Column(ARRAY(Text))
    rated_at = Column(DateTime(timezone=True))
    reopened = Column(SmallInteger, nullable=False, server_default="0")
    parent_id = Column(BigInteger, ForeignKey("report.id"))
    merged_into = Column(BigInteger, ForeignKey("report.id"))
    version = Column(Integer, nullable=False, server_default="1")
    attrs = Column(JSONB, nullable=False, server_default=sa.text("'{}'::jsonb"))
    assigned_at = Column(DateTime(timezone=True), nullable=False, server_default=func.now())
    tick_at = Column(DateTime(timezone=True))  # the next instant the clock's tick looks at this case (0013)
    __table_args__ = (
        CheckConstraint(f"state IN ({_in(CASE_STATES)})", name="state"),
        CheckConstraint(f"handling_level IN ({_in(HANDLING_LEVELS)})", name="handling_level"),
        CheckConstraint("rating BETWEEN 1 AND 5", name="rating"),
        CheckConstraint("verified_by IS NULL OR verified_by IS DISTINCT FROM disposed_by", name="verifier"),
    )


class ReportLog(Base):
    """One transition of a case: who (and in which role), when, from which state to which, and why."""

    __tablename__ = "report_log"
    id = Column(BigInteger, primary_key=True)
    # a case's id, checked per statement by triggers, which also delete a deleted case's log (0019: the
    # foreign key's check per row was half of writing an imported case's log)
    report_id = Column(BigInteger, nullable=False)
    at = Column(DateTime(timezone=True), nullable=False, server_default=func.now())
    actor = Column(Text, nullable=False)
    role = Column(Text)
    action = Column(Text, nullable=False)
    from_state = Column(Text)
    to_state = Column(Text)
    note = Column(Text)
    detail = Column(JSONB, nullable=False, server_default=text("'{}'::jsonb"))


class ReportMedia(Base):
    """A photo of a case: a file under the project's data folder or a media URL, never both."""

    __tablename__ = "report_media"
    id = Column(BigInteger, primary_key=True)
    report_id = Column(BigInteger, ForeignKey("report.id", ondelete="CASCADE"), nullable=False, index=True)
    log_id = Column(BigInteger, ForeignKey("report_log.id", ondelete="SET NULL"))
    stage = Column(Text, nullable=False)
    path = Column(Text)
    url = Column(Text)
    content_type = Column(Text)
    bytes = Column(BigInteger)
    sha256 = Column(Text)
    at = Column(DateTime(timezone=True), nullable=False, server_default=func.now())
    added_by = Column(Text)
    __table_args__ = (
        CheckConstraint("stage IN ('report', 'before', 'after', 'other')", name="stage"),
        CheckConstraint("(path IS NULL) <> (url IS NULL)", name="where"),
    )


class ReportContact(Base):
    """A reporter or follower of a case (personal data: readable with a role only)."""

    __tablename__ = "report_contact"
    id = Column(BigInteger, primary_key=True)
    report_id = Column(BigInteger, ForeignKey("report.id", ondelete="CASCADE"), nullable=False, index=True)
    kind = Column(Text, nullable=False)
    name = Column(Text)
    phone = Column(Text)
    email = Column(Text)
    account_id = Column(Text)
    device_id = Column(Text)
    channel = Column(Text)
    at = Column(DateTime(timezone=True), nullable=False, server_default=func.now())
    __table_args__ = (CheckConstraint("kind IN ('reporter', 'follower')", name="kind"),)


class Department(Base):
    """A department handling matters at one level of the grid chain (``grid_code``: the grid it serves)."""

    __tablename__ = "department"
    id = Column(BigInteger, primary_key=True)
    code = Column(Text, nullable=False, unique=True)
    name = Column(Text, nullable=False)
    level = Column(Text, nullable=False)
    grid_code = Column(Text)
    categories = Column(ARRAY(Text), nullable=False, server_default=text("'{}'"))
    active = Column(Boolean, nullable=False, server_default=text("true"))
    __table_args__ = (CheckConstraint(f"level IN ({_in(HANDLING_LEVELS)})", name="level"),)


class DepartmentMember(Base):
    """A user who works in a department."""

    __tablename__ = "department_member"
    department_id = Column(BigInteger, ForeignKey("department.id", ondelete="CASCADE"), primary_key=True)
    user_id = Column(BigInteger, ForeignKey("app_user.id", ondelete="CASCADE"), primary_key=True)


#: Posts a person may hold on a grid (migration 0011).
POST_ROLES = (
    "grid_leader",
    "grid_worker",
    "building_lead",
    "unit_lead",
    "party_secretary",
    "party_member",
    "volunteer",
)


class Person(Base):
    """A person who serves one or more grids; ID-card numbers only as a keyed hash."""

    __tablename__ = "person"
    id = Column(BigInteger, primary_key=True)
    name = Column(Text, nullable=False)
    phone = Column(Text)
    id_card_hash = Column(Text, unique=True)
    gender = Column(Text)
    party_member = Column(Boolean, nullable=False, server_default=text("false"))
    created_at = Column(DateTime(timezone=True), nullable=False, server_default=func.now())
    attrs = Column(JSONB, nullable=False, server_default=text("'{}'::jsonb"))
    __table_args__ = (
        CheckConstraint("name <> ''", name="name"),
        CheckConstraint("gender IN ('f', 'm')", name="gender"),
    )


class GridPost(Base):
    """A person's role on a grid over ``[valid_from, valid_to)``; building and unit leads name their building."""

    __tablename__ = "grid_post"
    id = Column(BigInteger, primary_key=True)
    person_id = Column(BigInteger, ForeignKey("person.id", ondelete="CASCADE"), nullable=False, index=True)
    grid_code = Column(Text, nullable=False)
    role = Column(Text, nullable=False)
    building_code = Column(Text)
    unit = Column(Integer)
    valid_from = Column(DateTime(timezone=True), nullable=False, server_default=func.now())
    valid_to = Column(DateTime(timezone=True))
    __table_args__ = (
        CheckConstraint(f"role IN ({_in(POST_ROLES)})", name="role"),
        CheckConstraint("valid_to IS NULL OR valid_to > valid_from", name="validity"),
        CheckConstraint("role NOT IN ('building_lead', 'unit_lead') OR building_code IS NOT NULL", name="building"),
        CheckConstraint("role <> 'unit_lead' OR unit IS NOT NULL", name="unit"),
    )


class PartyOrg(Base):
    """A party organisation (committee, general branch, branch, group) in a tree by ``parent_code``."""

    __tablename__ = "party_org"
    id = Column(BigInteger, primary_key=True)
    code = Column(Text, nullable=False, unique=True)
    name = Column(Text, nullable=False)
    kind = Column(Text, nullable=False)
    parent_code = Column(Text, ForeignKey("party_org.code"))
    secretary_id = Column(BigInteger, ForeignKey("person.id", ondelete="SET NULL"))
    valid_from = Column(DateTime(timezone=True), nullable=False, server_default=func.now())
    valid_to = Column(DateTime(timezone=True))
    __table_args__ = (
        CheckConstraint("kind IN ('committee', 'general_branch', 'branch', 'group')", name="kind"),
        CheckConstraint("valid_to IS NULL OR valid_to > valid_from", name="validity"),
    )


class PartyOrgGrid(Base):
    """A grid an organisation covers, dated."""

    __tablename__ = "party_org_grid"
    org_id = Column(BigInteger, ForeignKey("party_org.id", ondelete="CASCADE"), primary_key=True)
    grid_code = Column(Text, primary_key=True)
    valid_from = Column(DateTime(timezone=True), primary_key=True, server_default=func.now())
    valid_to = Column(DateTime(timezone=True))


class AppSecret(Base):
    """A key shared by every server on this database (QR signatures, ID-card hashing); never served."""

    __tablename__ = "app_secret"
    name = Column(Text, primary_key=True)
    value = Column(LargeBinary, nullable=False)
    created_at = Column(DateTime(timezone=True), nullable=False, server_default=func.now())


grid = Grid.__table__
building = Building.__table__
unit = Unit.__table__
grid_epoch = GridEpoch.__table__
edit_log = EditLog.__table__
risk_element = RiskElement.__table__
risk_visit = RiskVisit.__table__
grid_risk = GridRisk.__table__
app_user = AppUser.__table__
api_token = ApiToken.__table__
grid_code = GridCode.__table__
grid_share = GridShare.__table__
grid_change = GridChange.__table__
resident = Resident.__table__
report = Report.__table__
report_log = ReportLog.__table__
report_media = ReportMedia.__table__
report_contact = ReportContact.__table__
department = Department.__table__
department_member = DepartmentMember.__table__
person = Person.__table__
grid_post = GridPost.__table__
party_org = PartyOrg.__table__
party_org_grid = PartyOrgGrid.__table__
app_secret = AppSecret.__table__
