"""The schema gridmap owns, declared once (Alembic migrations create it).

Identity and history: a grid is known by its ``code``; each row is one dated
version of it, valid over ``[valid_from, valid_to)`` (``valid_to`` NULL = current).
Triggers (migration 0001) make two versions of one code that overlap in time
impossible, so "the boundaries valid on date D" is always one set.  Parents are
referenced by code, not row id, so a parent's new version does not rewrite its
children.
"""

from __future__ import annotations

from geoalchemy2 import Geometry
from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
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
    __table_args__ = (
        CheckConstraint(f"level IN ({_in(ALL_LEVELS)})", name="level"),
        CheckConstraint(
            f"(level = 'special') = (kind IS NOT NULL) AND (kind IS NULL OR kind IN ({_in(SPECIAL_KINDS)}))",
            name="kind",
        ),
        CheckConstraint("households >= 0 AND population >= 0", name="counts"),
        CheckConstraint("valid_to IS NULL OR valid_to > valid_from", name="validity"),
    )


class GridPerson(Base):
    """A person responsible for a grid (grid worker, grid leader, secretary...)."""

    __tablename__ = "grid_person"
    id = Column(BigInteger, primary_key=True)
    grid_code = Column(Text, nullable=False, index=True)
    name = Column(Text, nullable=False)
    role = Column(Text, nullable=False)
    phone = Column(Text)


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
    __table_args__ = (CheckConstraint("households > 0", name="households"),)


class GridEpoch(Base):
    """A counter bumped (and NOTIFY'd on channel ``gridmap_grids``) by every change to ``grid``.

    In-memory indexes compare it to know whether they are stale.
    """

    __tablename__ = "grid_epoch"
    id = Column(Integer, primary_key=True)
    epoch = Column(BigInteger, nullable=False, server_default="0")
    changed_at = Column(DateTime(timezone=True), nullable=False, server_default=func.now())
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)


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


grid = Grid.__table__
grid_person = GridPerson.__table__
building = Building.__table__
unit = Unit.__table__
grid_epoch = GridEpoch.__table__
edit_log = EditLog.__table__
risk_element = RiskElement.__table__
risk_visit = RiskVisit.__table__
grid_risk = GridRisk.__table__
app_user = AppUser.__table__
api_token = ApiToken.__table__
