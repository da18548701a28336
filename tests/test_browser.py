"""A real browser (headless Chromium from Debian, driven by Playwright) on the dashboard of a
study made by hpsearch and on the HTML report opened from disk. Screenshots go to
test-artifacts/."""

from __future__ import annotations

import os
import re
from pathlib import Path

import optuna
import pytest
from conftest import HPSEARCH, cli_env, run_cli

from hpsearch.testing.browser import ARTIFACTS, CHROMIUM, PageErrors, chromium, dashboard

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists() and not os.environ.get("CI"),
    reason=f"{CHROMIUM} missing (apt-get install chromium; .ci/run installs it)",
)

EXPECTED_SECTIONS = ["summary", "history", "intermediate", "importance", "params", "categorical", "pruning-bias", "verification"]


@pytest.fixture(scope="module")
def made_study(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """A real study made by `hpsearch optimize` (4 trials), verified with 2 seeds."""
    import yaml
    from conftest import TINY_STUDY

    tmp = tmp_path_factory.mktemp("browser")
    path = tmp / "study.yaml"
    path.write_text(yaml.safe_dump({**TINY_STUDY, "trials": 4, "max_epochs": 2}))
    url = f"sqlite:///{tmp / 'studies.db'}"
    proc = run_cli("optimize", str(path), "--storage", url, cwd=tmp)
    assert proc.returncode == 0, proc.stderr
    proc = run_cli("verify", "tiny", "--top", "2", "--seeds", "2", "--storage", url, cwd=tmp)
    assert proc.returncode == 0, proc.stderr
    return url, tmp


def test_dashboard_shows_the_study_and_its_trial_count(made_study: tuple[str, Path]) -> None:
    url, _ = made_study
    study_id = optuna.storages.RDBStorage(url).get_study_id_from_name("tiny")
    ARTIFACTS.mkdir(exist_ok=True)
    with dashboard(HPSEARCH, url, cli_env()) as base, chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        errors = PageErrors(page)
        page.goto(f"{base}/dashboard")
        page.get_by_text("tiny:verify").wait_for(timeout=30_000)  # the linked verification study
        page.get_by_text(re.compile(r"^\d+\. tiny$")).wait_for()
        page.screenshot(path=ARTIFACTS / "dashboard-studies.png")
        page.goto(f"{base}/dashboard/studies/{study_id}/trials")
        page.get_by_text("4 Trials").wait_for(timeout=30_000)
        page.get_by_text("val_acc").first.wait_for(timeout=30_000)  # the metric name, not "Objective 0"
        assert page.get_by_text("Objective 0").count() == 0
        page.screenshot(path=ARTIFACTS / "dashboard-trials.png")
        page.goto(f"{base}/dashboard/studies/{study_id}")
        page.get_by_text("Hyperparameter Importance").first.wait_for(timeout=30_000)
        page.screenshot(path=ARTIFACTS / "dashboard-study.png")
        assert not errors.errors, errors.errors


def test_report_opens_offline_with_every_section_and_no_js_error(made_study: tuple[str, Path]) -> None:
    url, tmp = made_study
    out = tmp / "report"
    proc = run_cli("report", "tiny", "--storage", url, "--out", str(out), cwd=tmp)
    assert proc.returncode == 0, proc.stderr
    assert "sections: " + ", ".join(EXPECTED_SECTIONS) in proc.stdout
    html = (out / "report.html").read_text()
    assert "<script src=" not in html  # plotly.js is inlined; the browser below also blocks any network request
    ARTIFACTS.mkdir(exist_ok=True)
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        errors = PageErrors(page)
        requests: list[str] = []
        page.route("**/*", lambda route: (
            requests.append(route.request.url), route.continue_() if route.request.url.startswith("file:") else route.abort()
        ))
        page.goto((out / "report.html").as_uri())
        page.wait_for_load_state("load")
        found = page.eval_on_selector_all("section[data-section]", "els => els.map(e => e.dataset.section)")
        assert found == EXPECTED_SECTIONS
        for sid in ("history", "intermediate", "importance", "params", "categorical", "verification"):
            assert page.locator(f"section#{sid} .js-plotly-plot .main-svg").count() >= 1, sid  # plotly drew it
        assert page.locator("section#verification td").count() >= 12  # two rows of six columns
        page.screenshot(path=ARTIFACTS / "report.png")
        page.screenshot(path=ARTIFACTS / "report-full.png", full_page=True)
        assert not errors.errors, errors.errors
        assert all(u.startswith("file:") for u in requests), requests  # nothing fetched from the network
