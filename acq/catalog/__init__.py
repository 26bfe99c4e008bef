"""acq.catalog: every run stored, searchable, and its data back as arrays.

A :class:`~acq.RunEngine` stores every document of every run by default: its
:class:`DocumentStore` (a critical subscriber) writes them to an embedded SQLite
database in the per-user data directory -- or to PostgreSQL, given a URL -- and large
arrays to HDF5 files beside it. A :class:`Catalog` reads them back::

    catalog = RE.catalog                  # or Catalog(), Catalog("postgresql://...")
    run = catalog[-1]                     # newest; catalog[42] by scan_id; catalog["3f2a"] by uid
    run.primary.read()["det"]             # numpy arrays; .to_pandas(), .to_xarray()
    catalog.search(sample="Si", purpose=Key("purpose").contains("calib"))
    for name, doc in run.documents(): ...  # replay into any callback

Where: ``RunEngine(catalog=...)`` (a URL, a path, None for none), else the environment
variable ``ACQ_CATALOG``, else ``ACQ_DATA_DIR/catalog.db``, else the per-user data
directory (e.g. ``~/.local/share/acq/catalog.db``). See docs/how-to/find-and-load-your-data.md.

Importing this package does not import SQLAlchemy or h5py; they load when a database or
file is first opened.
"""

from __future__ import annotations

from ._catalog import Catalog, Results, Run, Stream
from ._config import ENV_CATALOG, ENV_DATA_DIR, CatalogError, Location, data_dir, default_location
from ._export import export_csv, export_nexus
from ._external import ExternalArray
from ._search import (
    And,
    Comparison,
    Contains,
    Exists,
    Includes,
    Key,
    Not,
    OneOf,
    Or,
    Query,
    TimeRange,
)
from ._store import DocumentStore
from ._stream import StreamData

__all__ = [
    # reading
    "Catalog",
    "Results",
    "Run",
    "Stream",
    "StreamData",
    "ExternalArray",
    # searching
    "Key",
    "TimeRange",
    "Query",
    "Comparison",
    "Contains",
    "Includes",
    "OneOf",
    "Exists",
    "And",
    "Or",
    "Not",
    # writing
    "DocumentStore",
    # exporting
    "export_csv",
    "export_nexus",
    # where
    "Location",
    "default_location",
    "data_dir",
    "ENV_CATALOG",
    "ENV_DATA_DIR",
    "CatalogError",
]
