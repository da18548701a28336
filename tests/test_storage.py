"""hpsearch's storage writes the same rows as Optuna's, on SQLite and PostgreSQL."""

from __future__ import annotations

import math

import optuna
import pytest

from hpsearch.store.connect import connect


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, sqlite_url: str) -> str:
    return request.getfixturevalue("pg_url") if request.param == "postgresql" else sqlite_url


def test_intermediate_values_round_trip_through_plain_optuna(url: str) -> None:
    study = optuna.create_study(storage=connect(url), study_name="s")
    trial = study.ask()
    for step, value in enumerate([0.5, float("nan"), float("inf"), float("-inf")]):
        trial.report(value, step)
    trial.storage.set_trial_intermediate_value(trial._trial_id, 0, 0.25)  # overwrite a step
    study.tell(trial, 1.0)
    read = optuna.load_study(study_name="s", storage=url).trials[0].intermediate_values  # Optuna's own RDBStorage
    assert read[0] == 0.25 and math.isnan(read[1]) and read[2] == float("inf") and read[3] == float("-inf")


def test_writing_to_a_finished_or_unknown_trial_is_refused(url: str) -> None:
    storage = connect(url)
    study = optuna.create_study(storage=storage, study_name="s")
    trial = study.ask()
    study.tell(trial, 1.0)
    with pytest.raises(optuna.exceptions.UpdateFinishedTrialError):
        storage.set_trial_intermediate_value(trial._trial_id, 0, 0.5)
    with pytest.raises(KeyError):
        storage.set_trial_intermediate_value(10_000, 0, 0.5)
    with pytest.raises(optuna.exceptions.UpdateFinishedTrialError):
        storage.set_trial_user_attrs(trial._trial_id, {"late": 1})
    with pytest.raises(KeyError):
        storage.set_trial_user_attrs(10_000, {"late": 1})
    assert optuna.load_study(study_name="s", storage=url).trials[0].user_attrs == {}


def test_user_attrs_written_together_read_back_by_plain_optuna(url: str) -> None:
    storage = connect(url)
    study = optuna.create_study(storage=storage, study_name="s")
    trial = study.ask()
    trial.set_user_attr("seed", 1)
    storage.set_trial_user_attrs(trial._trial_id, {"seed": 7, "device": "cpu", "gap": 0.01, "none": None})
    study.tell(trial, 1.0)
    attrs = optuna.load_study(study_name="s", storage=url).trials[0].user_attrs
    assert attrs == {"seed": 7, "device": "cpu", "gap": 0.01, "none": None}


def test_a_population_epoch_is_reported_in_one_write_that_plain_optuna_and_the_pruner_read(url: str) -> None:
    from hpsearch.store.queries import report_all

    study = optuna.create_study(storage=connect(url), study_name="s", direction="maximize",
                                pruner=optuna.pruners.ThresholdPruner(lower=0.5))
    a, b, done = study.ask(), study.ask(), study.ask()
    report_all([(a, 0, 0.9), (b, 0, 0.1)])
    assert not a.should_prune() and b.should_prune()  # each trial's pruner sees its own value
    report_all([(a, 0, 0.2), (a, 1, float("nan")), (b, 1, 0.7)])  # a step already reported is ignored, as by Trial.report
    study.tell(done, 1.0)
    with pytest.raises(optuna.exceptions.UpdateFinishedTrialError):  # all or none
        report_all([(a, 2, 0.3), (done, 0, 0.5)])
    study.tell(a, 1.0)
    study.tell(b, 1.0)
    trials = optuna.load_study(study_name="s", storage=url).trials  # Optuna's own RDBStorage
    assert trials[0].intermediate_values.keys() == {0, 1} and trials[0].intermediate_values[0] == 0.9
    assert math.isnan(trials[0].intermediate_values[1])
    assert trials[1].intermediate_values == {0: 0.1, 1: 0.7} and trials[2].intermediate_values == {}
    with pytest.raises(KeyError):  # an unknown trial
        connect(url).set_trials_intermediate_values([(10_000, 0, 0.5)])


def test_a_trial_read_by_hpsearch_equals_the_trial_plain_optuna_reads(url: str) -> None:
    # hpsearch reads a trial with Core queries; Optuna's own RDBStorage with its ORM: equal FrozenTrials
    storage = connect(url)
    study = optuna.create_study(storage=storage, study_name="s", directions=["maximize", "minimize"])
    done = study.ask()
    done.suggest_float("lr", 1e-4, 1e-1, log=True)
    done.suggest_int("width", 2, 64, step=2)
    done.suggest_categorical("bn", ["none", "before_activation", None, 3])
    done.set_user_attr("curve", [0.5, float("inf")])
    storage.set_trial_system_attr(done._trial_id, "constraints", [0.0, -1.0])
    study.tell(done, [0.9, float("-inf")])
    single = optuna.create_study(storage=storage, study_name="one", direction="maximize")
    pruned = single.ask()
    for step, value in enumerate([0.5, float("nan"), float("inf"), 0.25]):
        pruned.report(value, step)
    single.tell(pruned, state=optuna.trial.TrialState.PRUNED)
    running, failed = single.ask(), single.ask()
    single.tell(failed, state=optuna.trial.TrialState.FAIL)
    plain = optuna.storages.RDBStorage(url)
    for trial in (done, pruned, running, failed):
        ours, theirs = storage.get_trial(trial._trial_id), plain.get_trial(trial._trial_id)
        assert repr(ours) == repr(theirs) and list(ours.intermediate_values) == list(theirs.intermediate_values)
        assert ours.params == theirs.params and ours.distributions == theirs.distributions
        assert storage.get_trial_user_attrs(trial._trial_id) == plain.get_trial_user_attrs(trial._trial_id)
        assert storage.get_trial_system_attrs(trial._trial_id) == plain.get_trial_system_attrs(trial._trial_id)
    for read in (storage.get_trial, storage.get_trial_user_attrs, storage.get_trial_system_attrs):
        with pytest.raises(KeyError):
            read(10_000)
    waiting = single.enqueue_trial({"lr": 0.01}) or single.trials[-1]  # a WAITING trial
    for study_id in (study._study_id, single._study_id):
        for states in (None, (optuna.trial.TrialState.WAITING,), (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)):
            for included, greater in ((set(), -1), ({pruned._trial_id, running._trial_id}, failed._trial_id - 1),
                                      (set(), running._trial_id), ({running._trial_id}, waiting._trial_id)):
                ours = storage._get_trials(study_id, states, included, greater)
                theirs = plain._get_trials(study_id, states, included, greater)
                assert [repr(t) for t in ours] == [repr(t) for t in theirs], (study_id, states, included, greater)
    assert repr(storage.get_all_trials(single._study_id)) == repr(plain.get_all_trials(single._study_id))
    empty = optuna.create_study(storage=storage, study_name="empty")
    assert storage.get_all_trials(empty._study_id) == []
    with pytest.raises(KeyError):
        storage.get_all_trials(10_000)


def test_suggested_values_are_written_as_plain_optuna_writes_them_and_checked_alike(url: str) -> None:
    storage = connect(url)
    study = optuna.create_study(storage=storage, study_name="s")
    first = study.ask()
    first.suggest_float("lr", 1e-4, 1e-1, log=True)
    first.suggest_categorical("bn", ["none", "after_activation"])
    study.tell(first, 1.0)
    second = study.ask()
    assert second.suggest_categorical("bn", ["none", "after_activation"]) in ("none", "after_activation")
    with pytest.raises(ValueError):  # incompatible with the study's earlier distribution of that name
        storage.set_trial_param(second._trial_id, "lr", 0.5, optuna.distributions.IntDistribution(0, 3))
    with pytest.raises(optuna.exceptions.UpdateFinishedTrialError):
        storage.set_trial_param(first._trial_id, "width", 1, optuna.distributions.IntDistribution(0, 3))
    with pytest.raises(KeyError):
        storage.set_trial_param(10_000, "width", 1, optuna.distributions.IntDistribution(0, 3))
    study.tell(second, 2.0)
    plain = optuna.load_study(study_name="s", storage=url).trials  # Optuna's own RDBStorage
    assert plain[0].params == first.params and plain[0].distributions == first.distributions
    assert plain[1].params == second.params and set(plain[1].params) == {"bn"}


def test_reading_more_trials_than_one_query_chunk_equals_plain_optuna(url: str) -> None:
    storage = connect(url)
    study = optuna.create_study(storage=storage, study_name="s")
    for i in range(520):  # the parts of more than 500 trials are read in two chunks
        trial_id = storage.create_new_trial(study._study_id)
        if i % 100 == 99:
            storage.set_trial_user_attr(trial_id, "i", i)
            storage.set_trial_intermediate_value(trial_id, 0, i / 10)
    ours = storage.get_all_trials(study._study_id, deepcopy=False)
    theirs = optuna.storages.RDBStorage(url).get_all_trials(study._study_id, deepcopy=False)
    assert len(ours) == 520 and repr(ours) == repr(theirs)
    assert [t.user_attrs for t in ours if t.user_attrs] == [{"i": i} for i in range(99, 520, 100)]


@pytest.mark.parametrize("pruner", ["hyperband", "successive_halving", "median"])
def test_one_read_of_trials_gives_the_pruning_decisions_of_fresh_reads(url: str, pruner: str) -> None:
    """A population's pruning decisions of one epoch inside ``one_read_of_trials`` (one read of
    the study's trials, the rung attrs the pruner writes applied to it) equal the decisions
    taken one after another with a fresh read each, and write the same rung attrs; the study's
    trials are read once instead of once per decision."""
    from hpsearch.store.queries import one_read_of_trials

    make = {
        "hyperband": lambda: optuna.pruners.HyperbandPruner(min_resource=1, max_resource=8, reduction_factor=2),
        "successive_halving": lambda: optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=2),
        "median": lambda: optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0),
    }[pruner]

    def decide(once: bool) -> tuple[list[bool], list[dict], int]:
        storage = connect(url)
        if "s" in optuna.get_all_study_names(storage):  # Hyperband's brackets follow the study name: the same one
            optuna.delete_study(study_name="s", storage=storage)
        study = optuna.create_study(storage=storage, study_name="s", direction="maximize", pruner=make(),
                                    sampler=optuna.samplers.RandomSampler(seed=0))
        for i in range(6):  # finished trials at several rungs
            trial = study.ask()
            for step in range(i + 1):
                trial.report(0.1 * i + 0.01 * step, step)
                trial.should_prune()
            study.tell(trial, 0.1 * i)
        members = [study.ask() for _ in range(12)]
        decisions: list[bool] = []
        backend = study._storage._backend
        reads = [0]
        originals = {name: getattr(backend, name) for name in ("_get_trials", "get_trial", "get_trial_system_attrs")}

        def counted(method):
            def call(*args, **kwargs):
                reads[0] += 1
                return method(*args, **kwargs)
            return call

        for step in range(3):
            for k, trial in enumerate(members):
                trial.report(1.0 - k / 12 + 0.01 * step, step)  # each member below the ones decided before it
            for name, method in originals.items():
                setattr(backend, name, counted(method))
            with one_read_of_trials(study, members) if once else _nothing():
                decisions += [trial.should_prune() for trial in members]
            for name in originals:
                delattr(backend, name)
        attrs = [study._storage.get_trial_system_attrs(t._trial_id) for t in members]
        return decisions, attrs, reads[0]

    fresh, fresh_attrs, fresh_reads = decide(once=False)
    once, once_attrs, once_reads = decide(once=True)
    assert once == fresh and True in fresh and False in fresh
    assert once_attrs == fresh_attrs
    assert 0 < once_reads <= 3 < fresh_reads  # at most one read per epoch instead of reads per decision


def _nothing():
    import contextlib

    return contextlib.nullcontext()
