"""Fault 6: a password in the storage URL never shows up in output, logs, errors, argv of the
workers, or the study database."""

from __future__ import annotations

import json
import subprocess
import time

import optuna
from conftest import run_cli
from faults import start
from test_workers import FAST_STUDY

from hpsearch.testing.pg import SECRET_PASSWORD, SECRET_USER


def secret_url(pg_server, database: str, password: str = SECRET_PASSWORD) -> str:
    return f"postgresql+psycopg2://{SECRET_USER}:{password}@127.0.0.1:{pg_server.port}/{database}"


def test_password_is_masked_everywhere(pg_server, write_study, tmp_path) -> None:
    url = secret_url(pg_server, pg_server.new_database(owner=SECRET_USER))
    url_file = tmp_path / "storage-url"
    url_file.write_text(url + "\n")
    log_file = tmp_path / "run.log"
    study = write_study(**FAST_STUDY, trials=4)
    # a local pool (the parent passes the URL on to its workers) with verbose logs and a log file
    proc = start("-v", "--log-file", str(log_file), "optimize", str(study), "--workers", "2", "--storage-file", str(url_file))
    seen_argv = []
    while proc.poll() is None:  # argv of every process, as `ps` shows it, while the pool runs
        seen_argv.append(subprocess.run(["ps", "-eww", "-o", "args"], capture_output=True, text=True).stdout)
        time.sleep(0.5)
    out, err = proc.communicate()
    assert proc.returncode == 0, err[-3000:]
    assert f"{SECRET_USER}:***@" in out
    assert any("hpsearch.cli" in snapshot and "--worker-index" in snapshot for snapshot in seen_argv)

    backend = optuna.storages.RDBStorage(url)
    stored = []
    for summary in optuna.get_all_study_summaries(backend):
        loaded = optuna.load_study(study_name=summary.study_name, storage=backend)
        stored.append(json.dumps([loaded.user_attrs, backend.get_study_system_attrs(loaded._study_id)], default=str))
        stored += [json.dumps([t.user_attrs, t.system_attrs, t.params], default=str) for t in loaded.trials]
    backend.engine.dispose()

    # errors: a wrong password, and the right password with a database that does not exist
    wrong = run_cli("studies", "--storage", secret_url(pg_server, "postgres", "Wr0ng-pass-XYZ"))
    missing = run_cli("studies", HPSEARCH_STORAGE=secret_url(pg_server, "no_such_db"))
    for result in (wrong, missing):
        assert result.returncode == 2
        assert result.stderr.startswith("error: storage: cannot open postgresql+psycopg2://hpsecret:***@")

    everything = [out, err, log_file.read_text(), *seen_argv, *stored, wrong.stdout, wrong.stderr, missing.stdout, missing.stderr]
    for text in everything:
        assert SECRET_PASSWORD not in text
        assert "Wr0ng-pass-XYZ" not in text


def test_storage_url_sources_and_masking(tmp_path, monkeypatch) -> None:
    import logging

    import pytest

    from hpsearch.errors import StorageError
    from hpsearch.logs import MaskingFormatter
    from hpsearch.store.urls import mask_secrets, resolve_url

    monkeypatch.delenv("HPSEARCH_STORAGE_FILE", raising=False)
    monkeypatch.setenv("HPSEARCH_STORAGE", "sqlite:///from-env.db")
    url_file = tmp_path / "url"
    url_file.write_text("\n  postgresql+psycopg2://me:f1le-Secret@db/hp  \n")
    assert resolve_url("sqlite:///argv.db", str(url_file)) == "sqlite:///argv.db"
    assert resolve_url(None, str(url_file)) == "postgresql+psycopg2://me:f1le-Secret@db/hp"
    monkeypatch.setenv("HPSEARCH_STORAGE_FILE", str(url_file))
    assert resolve_url(None).endswith("@db/hp")
    monkeypatch.delenv("HPSEARCH_STORAGE_FILE")
    assert resolve_url(None) == "sqlite:///from-env.db"
    with pytest.raises(StorageError, match="storage file"):
        resolve_url(None, str(tmp_path / "missing"))
    # a registered password is masked wherever it shows up, in text and in log records
    assert mask_secrets("auth failed for f1le-Secret") == "auth failed for ***"
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "connecting to %s", ("postgresql://me:f1le-Secret@db/hp",), None)
    assert "f1le-Secret" not in MaskingFormatter("%(message)s").format(record)
