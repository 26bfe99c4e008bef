"""A throwaway PostgreSQL server in a temporary directory (for tests and benchmarks).

Uses the server binaries of the machine (Debian's ``postgresql`` package puts them in
``/usr/lib/postgresql/<version>/bin``; ``ACQ_PG_BIN`` overrides), else those of the
``pgserver`` wheel (a test dependency: PostgreSQL 16 in a pip wheel, so that a machine
with only Python and no root runs the PostgreSQL tests too). The server listens on
a unix socket in its own directory only (no TCP port), trusts local connections, and
is torn down -- data and all -- when the context ends.

PostgreSQL refuses to run as root: as root (CI), the server runs as the ``postgres``
system user that Debian's package creates (``runuser -u postgres``).
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["PostgresServer", "find_bin_dir", "postgres_server"]

_MISSING = (
    "PostgreSQL's server binaries (initdb, pg_ctl) were not found: pip install pgserver "
    "(in acq's [test] extra), or apt-get install postgresql, or point ACQ_PG_BIN at them"
)


def find_bin_dir() -> Path:
    """The folder holding ``initdb`` and ``pg_ctl``.

    Raises:
        RuntimeError: none was found (the message says how to get them).
    """
    env = os.environ.get("ACQ_PG_BIN")
    candidates = [Path(env)] if env else []
    candidates += sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).parent)
    wheel = importlib.util.find_spec("pgserver")  # found, not imported
    if wheel is not None and wheel.origin is not None:
        candidates.append(Path(wheel.origin).parent / "pginstall" / "bin")
    for folder in candidates:
        if all(os.access(folder / tool, os.X_OK) for tool in ("initdb", "pg_ctl")):
            return folder
    raise RuntimeError(_MISSING)


class PostgresServer:
    """A PostgreSQL server of its own (see the module docstring)."""

    def __init__(self, *, fsync: bool = True) -> None:
        self.bin = find_bin_dir()
        self.fsync = fsync
        self.dir = Path(tempfile.mkdtemp(prefix="acq-pg-"))
        self.data = self.dir / "data"
        self.user = "postgres"
        self._as: list[str] = []
        if os.geteuid() == 0:
            try:
                account = pwd.getpwnam("postgres")
            except KeyError:
                raise RuntimeError(
                    "PostgreSQL cannot run as root and there is no 'postgres' user to run "
                    "it as (Debian's postgresql package creates one)"
                ) from None
            os.chown(self.dir, account.pw_uid, account.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]
        self._databases = 0

    def _run(self, *args: str) -> None:
        result = subprocess.run(
            [*self._as, *args], capture_output=True, text=True, check=False, timeout=120
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"{' '.join(args[:2])} failed ({result.returncode}): "
                f"{result.stderr.strip() or result.stdout.strip()}"
            )

    def start(self) -> None:
        """initdb, then start the server and wait until it accepts connections."""
        self._run(
            str(self.bin / "initdb"), "-D", str(self.data), "-U", self.user,
            "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync",
        )  # fmt: skip
        options = f"-c listen_addresses='' -c unix_socket_directories={self.dir}"
        if not self.fsync:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        self._run(
            str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", options,
            "-l", str(self.dir / "server.log"), "-w", "-t", "60", "start",
        )  # fmt: skip

    def stop(self) -> None:
        """Stop the server at once and delete its files."""
        try:
            if (self.data / "postmaster.pid").exists():
                self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        """A SQLAlchemy URL of ``database`` on this server (over its unix socket)."""
        return f"postgresql+asyncpg://{self.user}@/{database}?host={self.dir}"

    def create_database(self, prefix: str = "acq") -> str:
        """Create a fresh database; return its URL."""
        self._databases += 1
        name = f"{prefix}_{os.getpid()}_{self._databases}"
        self._run(str(self.bin / "createdb"), "-h", str(self.dir), "-U", self.user, name)
        return self.url(name)


@contextmanager
def postgres_server(*, fsync: bool = True) -> Iterator[PostgresServer]:
    """A started :class:`PostgresServer`, stopped and deleted at the end."""
    server = PostgresServer(fsync=fsync)
    try:
        server.start()
        yield server
    finally:
        server.stop()
