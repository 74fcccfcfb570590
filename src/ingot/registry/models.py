"""Registry tables. Business-dated facts (status, parameters, capacities, declarations) carry their own dates;
every record's history of edits is kept in `registry_versions`."""
from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import Boolean, Date, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ingot.core.db import Base, JSONData, Quantity, UTCDateTime
from ingot.core.timeutil import utcnow


class Division(Base):
    __tablename__ = "divisions"

    code: Mapped[str] = mapped_column(String(6), primary_key=True)
    name_zh: Mapped[str] = mapped_column(String(64))
    name_en: Mapped[str] = mapped_column(String(128))
    level: Mapped[str] = mapped_column(String(16))  # province | prefecture | county
    parent_code: Mapped[str | None] = mapped_column(ForeignKey("divisions.code"), nullable=True, index=True)


class Park(Base):
    __tablename__ = "parks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    level: Mapped[str] = mapped_column(String(16))
    division_code: Mapped[str] = mapped_column(ForeignKey("divisions.code"), index=True)
    industries: Mapped[list] = mapped_column(JSONData, default=list)


class EnterpriseGroup(Base):
    __tablename__ = "enterprise_groups"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)


class Enterprise(Base):
    __tablename__ = "enterprises"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), index=True)
    uscc: Mapped[str] = mapped_column(String(18), unique=True)
    ownership: Mapped[str] = mapped_column(String(32))
    division_code: Mapped[str] = mapped_column(ForeignKey("divisions.code"), index=True)
    park_id: Mapped[int | None] = mapped_column(ForeignKey("parks.id"), nullable=True, index=True)
    group_id: Mapped[int | None] = mapped_column(ForeignKey("enterprise_groups.id"), nullable=True, index=True)
    above_designated: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Site(Base):
    __tablename__ = "sites"
    __table_args__ = (UniqueConstraint("enterprise_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    enterprise_id: Mapped[int] = mapped_column(ForeignKey("enterprises.id"), index=True)
    name: Mapped[str] = mapped_column(String(128))
    division_code: Mapped[str] = mapped_column(ForeignKey("divisions.code"), index=True)
    address: Mapped[str] = mapped_column(String(256), default="")

    enterprise: Mapped[Enterprise] = relationship(lazy="joined")


class ProductionUnit(Base):
    __tablename__ = "production_units"
    __table_args__ = (UniqueConstraint("site_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"), index=True)
    name: Mapped[str] = mapped_column(String(128))
    process_type: Mapped[str] = mapped_column(String(64), index=True)
    commissioned_on: Mapped[date | None] = mapped_column(Date, nullable=True)
    approved_on: Mapped[date | None] = mapped_column(Date, nullable=True)

    site: Mapped[Site] = relationship(lazy="joined")


class UnitParameter(Base):
    __tablename__ = "unit_parameters"
    __table_args__ = (UniqueConstraint("unit_id", "code", "effective_from"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("production_units.id"), index=True)
    code: Mapped[str] = mapped_column(String(64))
    value: Mapped[Decimal | None] = mapped_column(Quantity(), nullable=True)
    # Enumerated parameters (e.g. ore_class) carry a label instead of a number.
    value_label: Mapped[str | None] = mapped_column(String(64), nullable=True)
    unit: Mapped[str | None] = mapped_column(String(16), nullable=True)
    effective_from: Mapped[date] = mapped_column(Date)


class UnitCapacity(Base):
    __tablename__ = "unit_capacities"
    __table_args__ = (UniqueConstraint("unit_id", "product_code", "effective_from"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("production_units.id"), index=True)
    product_code: Mapped[str] = mapped_column(String(64))
    value: Mapped[Decimal] = mapped_column(Quantity())
    unit: Mapped[str] = mapped_column(String(16), default="t/a")
    effective_from: Mapped[date] = mapped_column(Date)


class UnitStatusEvent(Base):
    __tablename__ = "unit_status_events"
    __table_args__ = (UniqueConstraint("unit_id", "effective_on"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("production_units.id"), index=True)
    status: Mapped[str] = mapped_column(String(32))
    effective_on: Mapped[date] = mapped_column(Date)
    note: Mapped[str] = mapped_column(Text, default="")


class UnitDeclaration(Base):
    __tablename__ = "unit_declarations"
    __table_args__ = (UniqueConstraint("unit_id", "year", "measure_code"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("production_units.id"), index=True)
    year: Mapped[int] = mapped_column(Integer)
    measure_code: Mapped[str] = mapped_column(String(64))
    value: Mapped[Decimal] = mapped_column(Quantity())
    unit: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(256), default="")


class RegistryVersion(Base):
    """One state of one registry record, valid over [valid_from, valid_to); data is None after deletion."""

    __tablename__ = "registry_versions"
    __table_args__ = (
        UniqueConstraint("entity", "entity_id", "version_no"),
        Index("ix_registry_versions_lookup", "entity", "entity_id", "valid_from"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    entity: Mapped[str] = mapped_column(String(32))
    entity_id: Mapped[str] = mapped_column(String(32))
    version_no: Mapped[int] = mapped_column(Integer)
    valid_from: Mapped[datetime] = mapped_column(UTCDateTime())
    valid_to: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    data: Mapped[dict | None] = mapped_column(JSONData, nullable=True)
    actor: Mapped[str] = mapped_column(String(64))
