"""``hpsearch dashboard``: optuna-dashboard on the study database."""

from __future__ import annotations

import ipaddress
import socket

from hpsearch.errors import ConfigError

LOOPBACK_NAMES = {"localhost", "ip6-localhost"}

NO_AUTH_WARNING = (
    "warning: optuna-dashboard has no authentication and has write endpoints (notes, trial "
    "states, deleting studies); anyone who can reach {host}:{port} can change this database. "
    "Prefer 127.0.0.1 with an SSH tunnel."
)


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback name or address (127.0.0.0/8, ::1, localhost)."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_port_free(host: str, port: int) -> None:
    """Raise :class:`ConfigError` when ``host:port`` cannot be bound (in use, bad host)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host.strip("[]"), port))
        except OSError as exc:
            raise ConfigError(f"--host/--port: cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def serve(url: str, host: str, port: int) -> None:
    """Serve optuna-dashboard for the database at ``url`` until interrupted; the kept models
    (``$HPSEARCH_MODEL_DIR``, else ``<db>-models`` next to a SQLite file) appear as the
    trials' artifacts."""
    import os
    from pathlib import Path

    from optuna.artifacts import FileSystemArtifactStore
    from optuna_dashboard import run_server

    from hpsearch.store.connect import connect

    db = connect(url, create=False)
    check_port_free(host, port)
    models = os.environ.get("HPSEARCH_MODEL_DIR", "").strip()
    if not models and url.startswith("sqlite:///"):
        sqlite = Path(url.removeprefix("sqlite:///"))
        models = str(sqlite.resolve().with_name(f"{sqlite.stem}-models"))
    store = FileSystemArtifactStore(models) if models and Path(models).is_dir() else None
    run_server(db, host=host, port=port, artifact_store=store)
