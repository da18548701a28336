"""The storage layer: the only part of hpsearch that touches Optuna's storage internals.

- :mod:`.urls` — where the storage URL comes from, and masking its password (import-light);
- :mod:`.heartbeat` — heartbeat settings and when they are on (import-light);
- :mod:`.retry` — retrying calls while the database server is unreachable;
- :mod:`.connect` — opening a study database (SQLite WAL, PostgreSQL schema lock, heartbeats);
- :mod:`.rdb` — the retrying RDBStorage with hot-path writes as prebuilt Core statements;
- :mod:`.queries` — counts, late heartbeats, bulk user attrs, loading a study for reading;
- :mod:`.views` — a study view with a filtered trial list for bounded-history samplers.

Only this package imports ``optuna.storages._rdb`` or uses Optuna's private attributes.
"""
