"""Fault 1: K workers started at the same instant on an empty PostgreSQL database.

Optuna 5.0 alone loses this race (``duplicate key value violates unique constraint
"pg_type_typname_nsp_index"`` from ``CREATE TYPE studydirection``); the control round below
shows that this harness really causes it, and the hpsearch rounds that store.connect survives it.
"""

from __future__ import annotations

import subprocess
import sys

from conftest import cli_env

# Each racer imports everything once, says "ready", then for every line "MODE URL" on stdin
# opens the storage and creates the study. The test writes one line to every racer per round,
# so they hit the same empty database at the same instant.
RACER = r"""
import sys, optuna
from hpsearch.store.connect import connect
print("ready", flush=True)
for line in sys.stdin:
    mode, url = line.split()
    try:
        storage = connect(url) if mode == "hpsearch" else optuna.storages.RDBStorage(url)
        optuna.create_study(storage=storage, study_name="race", load_if_exists=True)
        storage.engine.dispose()
        print("ok", flush=True)
    except Exception as exc:
        print("error", str(exc).splitlines()[0], flush=True)
"""
K = 4


def test_simultaneous_start_on_empty_postgres_all_succeed(pg_server) -> None:
    procs = [
        subprocess.Popen([sys.executable, "-c", RACER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=cli_env())
        for _ in range(K)
    ]
    try:
        for proc in procs:
            assert proc.stdout.readline().strip() == "ready"

        def race(mode: str) -> tuple[str, list[str]]:
            database = pg_server.new_database()
            for proc in procs:
                proc.stdin.write(f"{mode} {pg_server.admin_url(database)}\n")
                proc.stdin.flush()
            return database, [proc.stdout.readline().strip() for proc in procs]

        control = [race("optuna")[1] for _ in range(2)]
        raced = [line for lines in control for line in lines if line != "ok"]
        assert raced and all("pg_type_typname_nsp_index" in line or "already exists" in line for line in raced), control

        for _ in range(3):
            database, lines = race("hpsearch")
            assert lines == ["ok"] * K
            assert pg_server.execute("SELECT count(*) FROM studies", database=database) == [(1,)]
    finally:
        for proc in procs:
            proc.stdin.close()
        for proc in procs:
            proc.wait(timeout=60)
