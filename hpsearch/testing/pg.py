"""A private PostgreSQL server for the tests: initdb in a temp dir, 127.0.0.1, a free port.

``initdb``/``pg_ctl`` refuse to run as root, so as root they run as user ``postgres``
(``runuser``). Authentication: trust for ``postgres`` (the admin used by the fixtures) and
scram-sha-256 for :data:`SECRET_USER`, whose password the credential tests try to leak.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

SECRET_USER = "hpsecret"
SECRET_PASSWORD = "s3cr3t-Pa55-wOrd"


def find_bindir() -> Path | None:
    """Directory holding ``initdb`` and ``pg_ctl`` (Debian layout first, then PATH)."""
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.path.exists(os.path.join(candidate, "pg_ctl")):
            return Path(candidate)
    found = shutil.which("pg_ctl")
    return Path(found).parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class PostgresServer:
    """One running cluster; ``stop``/``start`` can restart it (same port and data)."""

    bindir: Path
    root: Path
    port: int

    @property
    def data(self) -> Path:
        return self.root / "data"

    def _run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        cmd = [str(self.bindir / args[0]), *args[1:]]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=True)

    def init(self) -> None:
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth-local=trust", "--auth-host=trust", "-E", "UTF8")
        hba = self.data / "pg_hba.conf"
        hba.write_text(f"host all {SECRET_USER} 127.0.0.1/32 scram-sha-256\n" + hba.read_text())
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write(
                f"\nport = {self.port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{self.root}'\n"
                "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\nmax_connections = 200\n"
                "password_encryption = 'scram-sha-256'\n"
            )

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"), "-w", "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def admin_url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/{database}"

    def execute(self, sql: str, database: str = "postgres") -> list[tuple]:
        """Run one statement as the admin (autocommit) and return its rows, if any."""
        import psycopg2

        conn = psycopg2.connect(host="127.0.0.1", port=self.port, user="postgres", dbname=database)
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(sql)
                return cur.fetchall() if cur.description else []
        finally:
            conn.close()

    def new_database(self, owner: str = "postgres") -> str:
        """Create an empty database and return its name."""
        name = "t_" + uuid.uuid4().hex[:12]
        self.execute(f'CREATE DATABASE "{name}" OWNER "{owner}"')
        return name

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.execute("SELECT 1")
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)


def start_server() -> PostgresServer:
    """initdb + start a fresh cluster; raises RuntimeError when no binaries are installed."""
    bindir = find_bindir()
    if bindir is None:
        raise RuntimeError("PostgreSQL binaries not found (apt-get install postgresql)")
    root = Path(tempfile.mkdtemp(prefix="hpsearch-pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    server = PostgresServer(bindir, root, _free_port())
    server.init()
    server.start()
    server.wait_ready()
    server.execute(f"CREATE ROLE {SECRET_USER} LOGIN PASSWORD '{SECRET_PASSWORD}'")
    return server


def remove_server(server: PostgresServer) -> None:
    """Stop the server (immediate) and delete its directory."""
    try:
        server.stop("immediate")
    except subprocess.CalledProcessError:
        pass  # already stopped
    shutil.rmtree(server.root, ignore_errors=True)
