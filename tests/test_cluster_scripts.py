"""The cluster launch files parse, and the commands they run are real hpsearch commands."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

import click
import yaml
from conftest import REPO
from sqlalchemy.engine import make_url

from hpsearch.api import load_study_file
from hpsearch.cli import main
from hpsearch.cli.common import CliContext

K8S = REPO / "scripts" / "k8s"
SBATCH = REPO / "scripts" / "slurm" / "hpsearch-array.sbatch"


def parse_hpsearch(argv: list[str]) -> tuple[str, dict]:
    """Parse ``hpsearch ARGV`` with the real click group; returns (subcommand, its params),
    ``storage`` among them (given to the group or to the command)."""
    assert argv[0] == "hpsearch"
    ctx = main.make_context("hpsearch", list(argv[1:]))
    protected = getattr(ctx, "_protected_args", None) or ctx.protected_args  # click >= 8.2 / 8.1
    name, command, rest = main.resolve_command(ctx, [*protected, *ctx.args])
    assert command is not None
    sub = command.make_context(name, rest, parent=ctx)
    given = sub.find_object(CliContext)
    return name, {**sub.params, "storage": getattr(given, "storage", None) or ctx.params.get("storage")}


def docs(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def test_k8s_postgres_manifests() -> None:
    kinds = {d["kind"]: d for d in docs(K8S / "postgres.yaml")}
    assert set(kinds) == {"Secret", "Service", "StatefulSet"}
    secret, service, stateful = kinds["Secret"], kinds["Service"], kinds["StatefulSet"]
    url = make_url(secret["stringData"]["HPSEARCH_STORAGE"])
    assert url.host == service["metadata"]["name"] and url.port == service["spec"]["ports"][0]["port"]
    assert url.password == secret["stringData"]["POSTGRES_PASSWORD"] and url.database == secret["stringData"]["POSTGRES_DB"]
    assert stateful["spec"]["serviceName"] == service["metadata"]["name"]
    assert service["spec"]["selector"] == stateful["spec"]["template"]["metadata"]["labels"]


def test_k8s_job_runs_a_real_hpsearch_command() -> None:
    (job,) = docs(K8S / "hpsearch-job.yaml")
    assert job["kind"] == "Job" and job["spec"]["completionMode"] == "Indexed"
    assert job["spec"]["parallelism"] == job["spec"]["completions"] >= 2
    (container,) = job["spec"]["template"]["spec"]["containers"]
    name, params = parse_hpsearch(container["command"])
    assert name == "optimize"
    assert params["heartbeat"] == 30 and params["grace"] == 120 and params["storage"] is None
    load_study_file(REPO / params["study_file"])  # the study file it names is valid
    env = {e["name"]: e for e in container["env"]}
    assert env["HPSEARCH_STORAGE"]["valueFrom"]["secretKeyRef"] == {"name": "hpsearch-db", "key": "HPSEARCH_STORAGE"}
    assert "job-completion-index" in env["HPSEARCH_WORKER_INDEX"]["valueFrom"]["fieldRef"]["fieldPath"]
    assert not any("postgresql" in str(arg) for arg in container["command"])  # no URL in argv


def test_slurm_array_script() -> None:
    subprocess.run(["bash", "-n", str(SBATCH)], check=True)
    text = SBATCH.read_text()
    assert "#SBATCH --array=" in text and "HPSEARCH_STORAGE_FILE" in text
    (line,) = [ln for ln in text.splitlines() if ln.startswith("srun hpsearch")]
    argv = [a.replace("$STUDY_FILE", "studies/quickstart.yaml") for a in shlex.split(line)[1:]]
    name, params = parse_hpsearch(argv)
    assert name == "optimize" and params["storage"] is None
    load_study_file(REPO / params["study_file"])


def test_a_storage_url_in_argv_would_be_caught() -> None:
    assert parse_hpsearch(["hpsearch", "optimize", "s.yaml", "--storage", "sqlite:///x.db"])[1]["storage"] == "sqlite:///x.db"
    assert parse_hpsearch(["hpsearch", "--storage", "sqlite:///y.db", "optimize", "s.yaml"])[1]["storage"] == "sqlite:///y.db"


def test_a_bad_command_would_be_caught() -> None:
    try:
        parse_hpsearch(["hpsearch", "optimize", "s.yaml", "--no-such-option"])
    except click.UsageError:
        return
    raise AssertionError("an unknown option parsed")
