"""Before a worker leaves: no trial of a dead worker stays RUNNING, no queued copy stays
WAITING.

A worker that reaches the study's target (or finds it reached) and has heartbeats on:

1. fails stale trials (their worker stopped beating for the grace period; a RUNNING trial
   without any heartbeat row counts once its start is older than the grace period), and
   Optuna's ``RetryHeartbeatStaleTrialCallback`` queues a copy of each with the same
   parameters (WAITING);
2. runs every queued copy to a finished state itself, also past the target — so a study can
   end with a few more finished trials than its target when workers died (when a pass takes
   none of the queued trials, it stops there rather than try again: no busy loop);
3. while another worker's trial is still RUNNING (neither finished nor stale), waits one
   heartbeat interval and starts again, for at most the grace period plus two intervals from
   the moment it started waiting: a trial of a live worker is left to that worker, a trial of
   a dead one goes stale within that time and is failed and re-run in step 1-2.

Two survivors racing for the last queued copy may make one of them sample one extra trial.
"""

from __future__ import annotations

import logging
import time
from typing import Callable

import optuna

from hpsearch.run import signals
from hpsearch.store.heartbeat import Heartbeat
from hpsearch.store.queries import fail_stale_trials, study_state_counts, waiting_trial_ids

log = logging.getLogger(__name__)


def settle(study: optuna.Study, heartbeat: Heartbeat, run_queued: Callable[[int], object]) -> None:
    """Fail stale trials, run the queued copies (``run_queued(n)`` runs ``n`` trials, which
    Optuna takes from the queue first, or otherwise settles the queued trials) and wait for
    other workers' running trials as the module docstring says. A SIGINT/SIGTERM while waiting
    ends the wait; a ``run_queued`` that leaves every queued trial queued ends it too."""
    deadline = time.monotonic() + heartbeat.grace + 2 * heartbeat.interval
    while True:
        fail_stale_trials(study)
        counts = study_state_counts(study)
        if counts["waiting"]:
            queued = set(waiting_trial_ids(study))
            run_queued(counts["waiting"])
            signals.raise_if_received()
            if queued and queued <= set(waiting_trial_ids(study)):
                log.warning("study %s: %d queued trials were not taken up; leaving them queued", study.study_name, len(queued))
                return
            deadline = time.monotonic() + heartbeat.grace + 2 * heartbeat.interval
            continue
        if not counts["running"] or time.monotonic() >= deadline:
            return
        time.sleep(heartbeat.interval)
        signals.raise_if_received()
