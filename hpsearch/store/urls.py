"""Storage URLs: where the URL comes from, and masking its secrets in everything printed.

Secrets are read off the parsed URL: the password and the values of query parameters such as
``?password=``; each is masked only where it stands as a whole token (a short password must
not be masked inside ordinary words, which would reveal it).

Import-light (no optuna): the CLI resolves the URL before any heavy import.
"""

from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path
from urllib.parse import quote, quote_plus

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
    url = with_driver(url or os.environ.get(STORAGE_ENV) or DEFAULT_STORAGE)
    register_secret_url(url)
    return url


def with_driver(url: str) -> str:
    """``postgresql://`` with the driver ``hpsearch[postgres]`` installs (psycopg2) unless
    psycopg 3, SQLAlchemy's own default, is installed; any other URL as it is."""
    if url.startswith("postgresql://") and importlib.util.find_spec("psycopg") is None:
        return "postgresql+psycopg2://" + url.removeprefix("postgresql://")
    return url


def _first_url_line(path: str) -> str:
    try:
        lines = [ln.strip() for ln in Path(path).read_text().splitlines() if ln.strip()]
    except OSError as exc:
        raise StorageError(f"storage file {path}: {exc.strerror or exc}") from None
    if not lines:
        raise StorageError(f"storage file {path} is empty; it should hold one SQLAlchemy URL")
    return lines[0]


#: Query parameter names that hold a secret (``?password=...``, ``?sslpassword=...``, ``?token=...``).
_SECRET_KEY = re.compile(r"pass|pwd|secret|token", re.IGNORECASE)
# ``?password=VALUE`` / ``&token=VALUE`` in free text.
_QUERY_SECRET = re.compile(r"([?&;][A-Za-z0-9_]*(?:pass|pwd|secret|token)[A-Za-z0-9_]*=)[^&;\s'\"]+", re.IGNORECASE)


def _secret_values(url: str) -> list[str]:
    """Every secret in ``url``: the password and the values of secret query parameters, in
    decoded and in URL-encoded form."""
    values: list[str] = []
    try:
        from sqlalchemy.engine import make_url

        parsed = make_url(url)
        values.append(str(parsed.password or ""))
        for key, value in parsed.query.items():
            if _SECRET_KEY.search(key):
                values += [value] if isinstance(value, str) else list(value)
    except Exception:  # a malformed URL: find the secrets by pattern
        match = re.search(r"://[^:/@]*:([^@/]*)@", url)
        values.append(match.group(1) if match else "")
        values += [m.group(0).split("=", 1)[1] for m in _QUERY_SECRET.finditer(url)]
    forms = {form for v in values if v for form in (v, quote(v, safe=""), quote_plus(v))}
    return sorted(forms, key=len, reverse=True)


def register_secret_url(url: str) -> None:
    """Remember the URL's secrets so :func:`mask_secrets` (and the log handlers) hide them."""
    _SECRETS.update(_secret_values(url))


def mask_url(url: str) -> str:
    """The URL with its password and secret query parameters replaced by ``***`` (safe to
    print or store): parsed by SQLAlchemy and rendered with ``hide_password``, or masked by
    pattern for a URL it cannot parse. A URL without secrets is returned as it is."""
    try:
        from sqlalchemy.engine import make_url

        parsed = make_url(url)
    except Exception:
        return _QUERY_SECRET.sub(r"\1***", _USERINFO.sub(r"\1***@", url))
    hidden = {key: "***" for key in parsed.query if _SECRET_KEY.search(key)}
    if not parsed.password and not hidden:
        return url
    rendered = parsed.update_query_dict(hidden).render_as_string(hide_password=True)
    return rendered.replace(quote_plus("***"), "***")


def _whole_token(secret: str) -> re.Pattern[str]:
    """``secret`` where it stands as a whole token: not inside a longer word (a password
    ``al`` is not masked in ``Trial``)."""
    head = r"(?<!\w)" if re.match(r"\w", secret) else ""
    tail = r"(?!\w)" if re.search(r"\w$", secret) else ""
    return re.compile(head + re.escape(secret) + tail)


def mask_text(text: str, url: str) -> str:
    """``text`` with the URL masked and its secrets replaced by ``***`` wherever they appear
    as whole tokens."""
    text = text.replace(url, mask_url(url))
    for secret in _secret_values(url):
        text = _whole_token(secret).sub("***", text)
    return mask_secrets(text)


def mask_secrets(text: str) -> str:
    """``text`` with every registered secret (as a whole token), any
    ``scheme://user:password@`` and any ``?password=...`` replaced by ``***``."""
    for secret in sorted(_SECRETS, key=len, reverse=True):
        text = _whole_token(secret).sub("***", text)
    return _QUERY_SECRET.sub(r"\1***", _USERINFO.sub(r"\1***@", text))
