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


def test_every_password_form_is_masked_as_a_whole_token() -> None:
    """Secrets come from the parsed URL (userinfo and query parameters, decoded and encoded)
    and are masked only where they stand as whole tokens."""
    from hpsearch.store.urls import mask_secrets, mask_text, mask_url, register_secret_url, with_driver

    query = "postgresql+psycopg2://bob@db:5432/hp?sslmode=require&password=Qu3ry%40Pw"
    masked = "postgresql+psycopg2://bob@db:5432/hp?password=***&sslmode=require"  # SQLAlchemy sorts the query
    assert mask_url(query) == masked
    assert mask_text(f"could not connect to {query}; password Qu3ry@Pw rejected", query) == (
        f"could not connect to {masked}; password *** rejected"
    )
    register_secret_url(query)
    assert mask_secrets("dsn host=db password=Qu3ry@Pw and Qu3ry%40Pw") == "dsn host=db password=*** and ***"
    assert mask_secrets("see ?sslpassword=other-secret&x=1") == "see ?sslpassword=***&x=1"
    assert mask_url("postgresql+psycopg2://bob:p%40ss@db/hp?token=abc") == "postgresql+psycopg2://bob:***@db/hp?token=***"
    # a short password is masked where it is a token, never inside words (that would reveal it)
    short = "postgresql+psycopg2://me:al@db/hp"
    register_secret_url(short)
    assert mask_secrets("[1/3] Trial 0 finished: val_acc 0.9; password al; me:al@db") == (
        "[1/3] Trial 0 finished: val_acc 0.9; password ***; me:***@db"
    )
    assert mask_url(short) == "postgresql+psycopg2://me:***@db/hp"
    # a URL that SQLAlchemy cannot parse is masked by pattern
    assert mask_url("postgres ql://u:pw1@h/d?password=pw2") == "postgres ql://u:***@h/d?password=***"
    # postgresql:// without a driver gets the one hpsearch[postgres] installs
    assert with_driver("postgresql://u@h/d") == "postgresql+psycopg2://u@h/d"
    assert with_driver("postgresql+psycopg2://u@h/d") == "postgresql+psycopg2://u@h/d"


def test_query_password_and_short_password_on_a_real_server(pg_server, write_study, tmp_path, monkeypatch) -> None:
    """``?password=`` with no driver named works against a real server and never shows; a
    two-letter password is masked in the URL but not inside ``trial`` or ``val_acc``."""
    from urllib.parse import quote

    from click.testing import CliRunner

    from hpsearch.cli import main

    monkeypatch.chdir(tmp_path)
    study = write_study(trials=1, max_epochs=1, search={"learning_rate": {"low": 0.001, "high": 0.01, "log": True}})
    base = f"postgresql://{SECRET_USER}@127.0.0.1:{pg_server.port}/{pg_server.new_database(owner=SECRET_USER)}"
    wrong = run_cli("studies", "--storage", f"{base}?sslmode=disable&password=Wr0ng-pass-XYZ")
    assert wrong.returncode == 2 and "?password=***&sslmode=disable" in wrong.stderr, wrong.stderr
    assert "password authentication failed" in wrong.stderr and "Wr0ng-pass-XYZ" not in wrong.stderr + wrong.stdout

    def run(url: str) -> tuple[str, str]:
        log_file = tmp_path / "run.log"
        result = CliRunner().invoke(main, ["-v", "--log-file", str(log_file), "optimize", str(study), "--heartbeat", "0"],
                                    env={"HPSEARCH_STORAGE": url})
        assert result.exit_code == 0, result.output
        assert "trial    0 COMPLETE val_acc" in result.output and "1 finished" in result.output
        return result.output, log_file.read_text()

    # the password as a query parameter, no driver named: real scram authentication
    out, log = run(f"{base}?password={quote(SECRET_PASSWORD)}")
    assert f"postgresql+psycopg2://{SECRET_USER}@127.0.0.1:{pg_server.port}/" in out and "?password=***" in out
    assert SECRET_PASSWORD not in out + log and quote(SECRET_PASSWORD) not in out + log
    # a two-letter password (host logins other than hpsecret are trusted, so any password works)
    pg_server.execute("CREATE ROLE hpshort LOGIN PASSWORD 'al'")
    out, log = run(f"postgresql+psycopg2://hpshort:al@127.0.0.1:{pg_server.port}/{pg_server.new_database(owner='hpshort')}")
    assert "hpshort:***@127.0.0.1" in out
    for text in (out, log):
        assert ":al@" not in text and " al " not in text and "tri***" not in text.lower()


def test_trials_csv_neutralises_formula_cells_but_not_numbers() -> None:
    """Text cells starting with = + - @ (or tab/CR) get a leading ' so a spreadsheet shows
    them as text; negative numbers stay numbers."""
    import csv
    import io

    from optuna.distributions import FloatDistribution
    from optuna.trial import TrialState, create_trial

    from hpsearch.analysis.export import write_trials_csv

    study = optuna.create_study(direction="minimize")
    study.add_trial(create_trial(
        state=TrialState.COMPLETE, value=-1.5, params={"x": -0.25}, distributions={"x": FloatDistribution(-1, 1)},
        user_attrs={"note": '=HYPERLINK("http://evil","click")', "plus": "+1", "minus": "-2", "at": "@SUM(A1)",
                    "plain": "ok - fine", "gap": -0.125, "fail_reason": "\t=cmd"},
    ))
    out = io.StringIO()
    write_trials_csv(study, out)
    [row] = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert row["user_attrs_note"] == "'=HYPERLINK(\"http://evil\",\"click\")"
    assert (row["user_attrs_plus"], row["user_attrs_minus"], row["user_attrs_at"]) == ("'+1", "'-2", "'@SUM(A1)")
    assert row["user_attrs_fail_reason"] == "'\t=cmd" and row["user_attrs_plain"] == "ok - fine"
    assert (row["value"], row["params_x"], row["user_attrs_gap"]) == ("-1.5", "-0.25", "-0.125")
