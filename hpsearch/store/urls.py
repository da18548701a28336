"""Storage URLs: where the URL comes from, and masking its password in everything printed.

Import-light (no optuna): the CLI resolves the URL before any heavy import.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from hpsearch.errors import StorageError

DEFAULT_STORAGE = "sqlite:///hpsearch.db"
STORAGE_ENV = "HPSEARCH_STORAGE"
STORAGE_FILE_ENV = "HPSEARCH_STORAGE_FILE"

_SECRETS: set[str] = set()
# ``scheme://user:password@`` in free text (a URL that SQLAlchemy cannot parse, a traceback).
_USERINFO = re.compile(r"(://[^:/@\s]*:)[^@/\s]*@")


def resolve_url(cli_value: str | None = None, storage_file: str | None = None) -> str:
    """``--storage``, else ``--storage-file`` / ``$HPSEARCH_STORAGE_FILE`` (first line of the
    file), else ``$HPSEARCH_STORAGE``, else ``sqlite:///hpsearch.db``. The URL's password, if
    any, is registered for masking."""
    url = cli_value
    if not url:
        path = storage_file or os.environ.get(STORAGE_FILE_ENV)
        if path:
            url = _first_url_line(path)
    url = url or os.environ.get(STORAGE_ENV) or DEFAULT_STORAGE
    register_secret_url(url)
    return url


def _first_url_line(path: str) -> str:
    try:
        lines = [ln.strip() for ln in Path(path).read_text().splitlines() if ln.strip()]
    except OSError as exc:
        raise StorageError(f"storage file {path}: {exc.strerror or exc}") from None
    if not lines:
        raise StorageError(f"storage file {path} is empty; it should hold one SQLAlchemy URL")
    return lines[0]


def _password(url: str) -> str | None:
    try:
        from sqlalchemy.engine import make_url

        password = make_url(url).password
    except Exception:  # a malformed URL has no parseable password; mask by pattern only
        match = re.search(r"://[^:/@]*:([^@/]*)@", url)
        password = match.group(1) if match else None
    return str(password) if password else None


def register_secret_url(url: str) -> None:
    """Remember the URL's password so :func:`mask_secrets` (and the log handlers) hide it."""
    password = _password(url)
    if password:
        _SECRETS.add(password)


def mask_url(url: str) -> str:
    """The URL with any password replaced by ``***`` (safe to print or store): SQLAlchemy's
    ``render_as_string(hide_password=True)``, or a pattern for a URL it cannot parse. A URL
    without a password is returned as it is."""
    try:
        from sqlalchemy.engine import make_url

        parsed = make_url(url)
    except Exception:
        return _USERINFO.sub(r"\1***@", url)
    return parsed.render_as_string(hide_password=True) if parsed.password else url


def mask_text(text: str, url: str) -> str:
    """``text`` with the URL's password (if any) replaced by ``***`` wherever it appears."""
    password = _password(url)
    text = text.replace(url, mask_url(url))
    if password:
        text = text.replace(password, "***")
    return mask_secrets(text)


def mask_secrets(text: str) -> str:
    """``text`` with every registered password, and any ``scheme://user:password@``
    pattern, replaced by ``***``."""
    for secret in _SECRETS:
        text = text.replace(secret, "***")
    return _USERINFO.sub(r"\1***@", text)
