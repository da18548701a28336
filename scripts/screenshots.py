#!/usr/bin/env python
"""Take the screenshots of docs/cli.md with the headless browser: the HTML report of a study and
optuna-dashboard (served by `hpsearch dashboard`) on the same database.

    .venv/bin/python scripts/screenshots.py quickstart --storage sqlite:///hpsearch.db --report reports/quickstart/report.html
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study")
    parser.add_argument("--storage", required=True)
    parser.add_argument("--report", required=True, help="report.html written by `hpsearch report`")
    parser.add_argument("--out", default=str(REPO / "docs" / "img"))
    args = parser.parse_args()

    import optuna

    from hpsearch.testing.browser import PageErrors, chromium, dashboard

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    hpsearch = Path(sys.executable).parent / "hpsearch"
    study_id = optuna.storages.RDBStorage(args.storage).get_study_id_from_name(args.study)
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1200, "height": 1000})
        errors = PageErrors(page)
        page.goto(Path(args.report).resolve().as_uri())
        page.wait_for_load_state("load")
        page.wait_for_timeout(500)
        page.screenshot(path=out / "report.png", clip={"x": 0, "y": 0, "width": 1200, "height": 1450}, full_page=True)
        with dashboard(hpsearch, args.storage, dict(os.environ)) as base:
            page.goto(f"{base}/dashboard/studies/{study_id}")
            page.get_by_text("Hyperparameter Importance").first.wait_for(timeout=60_000)
            page.wait_for_timeout(1500)
            page.screenshot(path=out / "dashboard.png")
        if errors.errors:
            raise SystemExit(f"page errors: {errors.errors}")
    print(f"wrote {out / 'report.png'} and {out / 'dashboard.png'}")


if __name__ == "__main__":
    main()
