"""Helpers for hpsearch's own tests and benchmark scripts (as ``optuna.testing`` is for Optuna):
a private PostgreSQL server (:mod:`.pg`), large synthetic studies (:mod:`.synthetic`) and a
headless browser (:mod:`.browser`, needs the ``test`` extra's Playwright)."""
