"""The catalog's tables: one schema for SQLite and PostgreSQL.

* ``runs`` -- one row per run, for finding runs: the Start (and Stop, once there) as
  searchable JSON (JSONB on PostgreSQL, with a GIN index), plus columns for what is
  sorted and looked up often (``time``, ``scan_id``, ``uid``).
* ``documents`` -- the document log: every document of every run, in the order the
  engine emitted it (``seq`` counts from 0 per run), as JSON text. Consecutive Events
  of one stream are kept together as one packed row (``name = 'events'``, an Event
  Page in form) and replayed as the Events they were. The numbers of an Event Page (or
  of packed Events) are kept as column chunks in the row's ``columns`` blob, its body
  a header saying where each column is (``_columns.py``).
* ``catalog_meta`` -- the schema version (2: the ``columns`` blob; a version-1 catalog
  gets the column when first opened, and its rows stay readable as they are) and
  ``last_scan_id``, the last scan_id reserved (``_scan_ids.py``).

A run whose row has no ``stop`` never got its Stop stored: it is still running, or its
process died (the documents committed before are all there).

This module imports SQLAlchemy; the catalog imports it only when a database is opened.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)
from sqlalchemy.dialects.postgresql import JSONB

from ._codec import PACKED_EVENTS

__all__ = ["SCHEMA_VERSION", "metadata", "runs", "documents", "catalog_meta", "PACKED_EVENTS"]

SCHEMA_VERSION = 2

Json = JSON().with_variant(JSONB(), "postgresql")

metadata = MetaData()

runs = Table(
    "runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("uid", String(80), nullable=False, unique=True),
    Column("scan_id", BigInteger, nullable=True, index=True),
    Column("time", Float(), nullable=False, index=True),
    Column("plan_name", Text, nullable=True),
    Column("start", Json, nullable=False),
    Column("stop_time", Float(), nullable=True),
    Column("exit_status", String(32), nullable=True),
    Column("stop", Json, nullable=True),
)

Index(
    "ix_runs_start_gin",
    runs.c.start,
    postgresql_using="gin",
    postgresql_ops={"start": "jsonb_path_ops"},
).ddl_if(dialect="postgresql")

documents = Table(
    "documents",
    metadata,
    Column("run_uid", String(80), primary_key=True),
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("name", String(32), nullable=False),
    Column("descriptor", String(80), nullable=True),
    Column("body", Text, nullable=False),
    Column("columns", LargeBinary, nullable=True),
)

Index("ix_documents_run_name", documents.c.run_uid, documents.c.name)

catalog_meta = Table(
    "catalog_meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)
