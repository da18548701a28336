"""Shared fixtures: real SQLite files, study-file writing, and running the real CLI."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest
import yaml

TESTS_DIR = Path(__file__).resolve().parent
REPO = TESTS_DIR.parent
HPSEARCH = Path(sys.executable).parent / "hpsearch"
OPTUNA = Path(sys.executable).parent / "optuna"

if str(TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(TESTS_DIR))

TINY_STUDY = {
    "study": "tiny",
    "task": "digits-mlp",
    "trials": 3,
    "max_epochs": 2,
    "seed": 0,
    "sampler": {"type": "random"},
    "pruner": {"type": "none"},
    "search": {
        "learning_rate": {"low": 1e-3, "high": 1e-2, "log": True},
        "keep_prob": {"low": 0.7, "high": 1.0},
        "batchnorm": ["none", "before_activation"],
    },
    "fixed": {"optimizer": "adamw", "batch_size": 128, "hidden_units": 32, "hidden_layers": 1},
}


@pytest.fixture
def write_study(tmp_path: Path) -> Callable[..., Path]:
    """Write a study file (TINY_STUDY updated with ``changes``) and return its path."""

    def write(name: str = "study.yaml", **changes: object) -> Path:
        data = {**TINY_STUDY, **changes}
        path = tmp_path / name
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return path

    return write


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'studies.db'}"


def cli_env(**extra: str) -> dict[str, str]:
    """Environment for CLI subprocesses: custom test tasks importable, no inherited storage."""
    env = {k: v for k, v in os.environ.items() if k != "HPSEARCH_STORAGE"}
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS_DIR), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.update(extra)
    return env


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 300, **env: str) -> subprocess.CompletedProcess:
    """Run the installed ``hpsearch`` console script as a real subprocess. One that runs past
    ``timeout`` fails the test with every thread's traceback (Python's faulthandler, on SIGABRT),
    so that a hang shows where it is."""
    command = [str(HPSEARCH), *args]
    proc = subprocess.Popen(command, cwd=cwd, env=cli_env(PYTHONFAULTHANDLER="1", **env),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGABRT)
        try:
            out, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        raise AssertionError(f"hpsearch {' '.join(args)} ran past {timeout} s; its stderr ends:\n{err[-8000:]}") from None
    return subprocess.CompletedProcess(command, proc.returncode, out, err)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark tests by what they need: ``pg`` (and ``slow``) for a PostgreSQL server, ``browser``
    (and ``slow``) for the browser tests."""
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if fixtures & {"pg_server", "pg_url"}:
            item.add_marker(pytest.mark.pg)
            item.add_marker(pytest.mark.slow)
        if item.path.name == "test_browser.py":
            item.add_marker(pytest.mark.browser)
            item.add_marker(pytest.mark.slow)


#: The longest tests of `make test` (30 s or more each on the 2-core reference machine, from
#: `pytest --durations`), longest first. pytest-xdist's worksteal hands each worker one contiguous
#: share of the collection and steals from the ends of those shares; with these at the heads of
#: the shares, spread over the workers, no long test starts near the end of a run while the other
#: worker sits idle (the wheel test, collected last, used to).
LONGEST_FIRST = (
    "tests/test_wheel.py::",
    "tests/test_answer.py::test_a_planted_large_effect",
    "tests/test_studies.py::test_study_file_runs_at_tiny_budget[triplet-semihard]",
    "tests/test_example_image_folder.py::test_documented_commands_run",
    "tests/test_bench_smoke.py::test_benchmark_smoke[workers.py]",
    "tests/test_readme.py::test_every_block_of_a_page_runs[README.md]",
    "tests/test_answer.py::test_a_killed_answer_resumes",
    "tests/test_bench_smoke.py::test_benchmark_smoke[population.py]",
    "tests/test_bench_smoke.py::test_benchmark_smoke[scaling.py]",
    "tests/test_faults.py::test_sigint_and_sigterm",
    "tests/test_readme.py::test_every_block_of_a_page_runs[docs/study-file.md]",
    "tests/test_bench_smoke.py::test_benchmark_smoke[answer_time.py]",
    "tests/test_dead_workers.py::test_a_killed_verify",
    "tests/test_workers.py::test_four_workers_forty_trials_on_postgres",
    "tests/test_workers.py::test_sqlite_with_four_workers",
    "tests/test_storage_errors.py::test_a_database_that_cannot_grow",
    "tests/test_glyphs_triplet.py::test_glyph_splits_hold_unseen_identities",
)


def spread_longest_first(items: list[pytest.Item], workers: int) -> list[pytest.Item]:
    """``items`` with the LONGEST_FIRST tests at the heads of the ``workers`` contiguous shares
    worksteal makes (sizes as it computes them), dealt longest first in snake order; the other
    tests keep their order."""
    def rank(item: pytest.Item) -> int | None:
        return next((i for i, prefix in enumerate(LONGEST_FIRST) if item.nodeid.startswith(prefix)), None)

    longest = sorted((item for item in items if rank(item) is not None), key=lambda item: rank(item) or 0)
    rest = [item for item in items if rank(item) is None]
    if workers <= 1:
        return longest + rest
    heads: list[list[pytest.Item]] = [[] for _ in range(workers)]
    for i, item in enumerate(longest):
        lap, seat = divmod(i, workers)
        heads[seat if lap % 2 == 0 else workers - 1 - seat].append(item)
    ordered: list[pytest.Item] = []
    left = len(items)
    for i, head in enumerate(heads):
        size = left // (workers - i)
        left -= size
        take = max(0, size - len(head))
        ordered += head + rest[:take]
        rest = rest[take:]
    return ordered + rest


class _LongestFirst:
    """Orders the collection after every other plugin (``-m`` deselection included)."""

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, config: pytest.Config, items: list[pytest.Item]) -> None:
        workers = int(getattr(config, "workerinput", {}).get("workercount", 1))
        items[:] = spread_longest_first(items, workers)


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(_LongestFirst(), "hpsearch-longest-first")


# --- a real PostgreSQL server (tests/pg.py), started once per session when a test asks for it


@pytest.fixture(scope="session")
def pg_server():
    """A private PostgreSQL cluster on 127.0.0.1 (skipped when PostgreSQL is not installed,
    unless $HPSEARCH_REQUIRE_PG=1 as in .ci/run, where it is an error)."""
    from hpsearch.testing import pg

    if pg.find_bindir() is None:
        if os.environ.get("HPSEARCH_REQUIRE_PG") == "1":
            pytest.fail("PostgreSQL binaries not found; .ci/run installs Debian's postgresql package")
        pytest.skip("PostgreSQL binaries not installed (apt-get install postgresql)")
    server = pg.start_server()
    try:
        yield server
    finally:
        pg.remove_server(server)


@pytest.fixture
def pg_url(pg_server) -> str:
    """URL of a fresh, empty database on the test server (admin user, no password)."""
    return pg_server.admin_url(pg_server.new_database())


def shared_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One pretrained-backbone cache per test run, shared by the xdist workers (the tasks write
    it atomically), so each backbone is pretrained once per run, not once per worker."""
    base = tmp_path_factory.getbasetemp()
    return (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "hpsearch-cache"
