"""Heartbeat settings of a run, and the one place that decides when heartbeats are on."""

from __future__ import annotations

from dataclasses import dataclass

from hpsearch.errors import StorageError

DEFAULT_INTERVAL_S = 10
DEFAULT_GRACE_S = 30


@dataclass(frozen=True)
class Heartbeat:
    """Optuna heartbeat settings: a running trial records a heartbeat every ``interval`` s;
    one silent for more than ``grace`` s is failed and re-queued with the same parameters."""

    interval: int = DEFAULT_INTERVAL_S
    grace: int = DEFAULT_GRACE_S

    def __post_init__(self) -> None:
        if self.interval <= 0 or self.grace <= 0:
            raise StorageError("heartbeat: interval and grace period must be positive seconds")
        if self.grace < self.interval:
            raise StorageError(f"heartbeat: grace period {self.grace}s is shorter than the interval {self.interval}s")


def heartbeat_for(
    url: str, interval: int | None = None, grace: int = DEFAULT_GRACE_S, shared: bool = False
) -> Heartbeat | None:
    """The heartbeat of a run on ``url``; ``None`` means off.

    ``interval`` 0 turns heartbeats off, a positive one sets it. Left unset (``None``), runs
    that may share the study with other processes get the default interval: a server database
    (PostgreSQL...) or ``shared`` (a worker of ``--workers K``); a lone process on SQLite stays
    lean without heartbeats.
    """
    if interval is None:
        interval = DEFAULT_INTERVAL_S if shared or not url.startswith("sqlite") else 0
    return Heartbeat(interval, grace) if interval else None
