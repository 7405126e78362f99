"""ActiveLearningClassifier: the loop, its records, validation, checkpoints and scikit-learn fit.

Everything runs the small CNN for one epoch on a slice of the real breastmnist
(binary) file, the real-files folder's or the copy skal ships, so a whole
experiment takes about a second and no test here needs MEDMNIST_ROOT.
"""

import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.linear_model import LogisticRegression

from skal.callbacks import Callback
from skal.exceptions import BudgetWarning
from skal.data import load_medmnist
from skal.estimator import ImageClassifier, LossPredictionClassifier
from skal.experiment import (ActiveLearningClassifier, CheckpointMismatchError,
                             ExperimentConfigError)
from skal.metrics import budget_curve_scorer, cross_entropy, evaluate, make_budget_curve_scorer


@pytest.fixture(scope="module")
def breast(shipped_root):
    X, y = load_medmnist("breastmnist", "train", root=shipped_root)
    X_test, y_test = load_medmnist("breastmnist", "test", root=shipped_root)
    return X[:200], y[:200], X_test[:80], y_test[:80]


def small_net(**kwargs):
    params = dict(n_classes=2, n_channels=1, max_epochs=1, lr=0.01, random_state=0, device="cpu")
    params.update(kwargs)
    return ImageClassifier("small_cnn", **params)


def make_al(**kwargs):
    params = dict(query_size=10, n_cycles=3, random_state=0)
    params.update(kwargs)
    estimator = params.pop("estimator", None) or small_net()
    return ActiveLearningClassifier(estimator, params.pop("query_strategy", "random"), **params)


def curve_numbers(al):
    """Everything of a curve that must replay exactly (not the timings)."""
    return [(r["cycle"], r["n_labeled"], r.get("acc"), r.get("auc"), r["queried"])
            for r in al.learning_curve_]


# -- the loop ------------------------------------------------------------------


def test_fit_runs_the_study_loop(breast):
    X, y, X_test, y_test = breast
    al = make_al(query_size=10, n_cycles=3).fit(X, y, X_eval=X_test, y_eval=y_test)
    curve = al.learning_curve_
    assert [r["cycle"] for r in curve] == [1, 2, 3]
    assert [r["n_labeled"] for r in curve] == [10, 20, 30]
    # Queries happen between trainings, not after the last one.
    assert [len(r["queried"]) for r in curve] == [10, 10, 0]
    assert curve[-1]["query_seconds"] == 0.0
    assert all(r["train_seconds"] > 0 for r in curve)
    labeled = al.labeled_indices_
    assert labeled.dtype == np.int64 and len(labeled) == 30 == len(set(labeled.tolist()))
    np.testing.assert_array_equal(labeled, np.concatenate(
        [al.initial_indices_, curve[0]["queried"], curve[1]["queried"]]))
    # The modAL learner's labeled set is X[labeled] in labeling order.
    np.testing.assert_array_equal(al.learner_.X_training, X[labeled])
    np.testing.assert_array_equal(al.learner_.y_training, y[labeled])
    # The last record's figures are the final model's, as medmnist computes them.
    final = evaluate(y_test, al.predict_proba(X_test), "binary-class")
    assert curve[-1]["acc"] == final.ACC and curve[-1]["auc"] == final.AUC
    assert curve[-1]["test_loss"] == cross_entropy(y_test, al.predict_proba(X_test),
                                                   "binary-class")
    assert curve[-1]["query_cpu_seconds"] == 0.0 and curve[0]["query_cpu_seconds"] >= 0.0
    assert al.score(X_test, y_test) == pytest.approx(final.ACC)
    assert al.predict(X_test).shape == (len(X_test),)
    assert al.estimator_.warm_start is True
    assert al.n_resumed_cycles_ == 0
    np.testing.assert_array_equal(al.classes_, [0, 1])


def test_same_seed_same_run_and_same_initial_set_for_every_method(breast):
    X, y, X_test, y_test = breast
    a = make_al().fit(X, y, X_eval=X_test, y_eval=y_test)
    b = make_al().fit(X, y, X_eval=X_test, y_eval=y_test)
    assert curve_numbers(a) == curve_numbers(b)

    def first_items(learner, X_pool, n_instances=1):  # a plain modAL-style strategy
        return np.arange(n_instances)

    c = make_al(query_strategy=first_items).fit(X, y)
    np.testing.assert_array_equal(c.initial_indices_, a.initial_indices_)
    assert c.learning_curve_[0]["queried"] != a.learning_curve_[0]["queried"]
    other_seed = make_al(random_state=1).fit(X, y)
    assert set(other_seed.initial_indices_) != set(a.initial_indices_)


def test_query_seed_depends_on_the_cycle_only(breast):
    X, y, _, _ = breast
    seen = []

    def spy(learner, X_pool, n_instances=1, *, random_state=None, subsample=None):
        assert isinstance(random_state, np.random.Generator)
        seen.append((int(random_state.integers(2**62)), subsample, len(X_pool)))
        return random_state.choice(len(X_pool), n_instances, replace=False)

    make_al(query_strategy=spy, n_cycles=4, subsample="paper").fit(X, y)
    seeds = [s for s, _, _ in seen]
    assert len(set(seeds)) == 3
    # The subsample is drawn once, by the experiment, before the rows are copied:
    # min(20000, max(pool // 2, 10 * query_size)) = 100 rows of 190, 180, 170.
    assert [p for _, p, _ in seen] == [None] * 3
    assert [n for _, _, n in seen] == [100, 100, 100]
    seen.clear()
    make_al(query_strategy=spy, n_cycles=4, subsample="paper").fit(X, y)
    assert [s for s, _, _ in seen] == seeds


def test_query_params_override_the_experiments_subsample_and_seed(breast):
    X, y, _, _ = breast
    seen = []

    def spy(learner, X_pool, n_instances=1, *, random_state=None, subsample=None):
        seen.append((random_state.bit_generator.state, subsample, len(X_pool)))
        return np.arange(n_instances)

    make_al(query_strategy=spy, n_cycles=2, subsample="paper",
            query_params={"subsample": None, "random_state": 7}).fit(X, y)
    # The whole pool, and the generator of seed 7 untouched (no subsample drawn).
    assert seen == [(np.random.default_rng(7).bit_generator.state, None, 190)]


def test_plain_modal_strategy_gets_the_subsample_drawn_here(breast):
    from modAL.uncertainty import uncertainty_sampling

    X, y, _, _ = breast
    sizes = []

    def plain(learner, X_pool, n_instances=1):
        sizes.append(len(X_pool))
        return uncertainty_sampling(learner, X_pool, n_instances=n_instances)

    al = make_al(query_strategy=plain, subsample=25).fit(X, y)
    assert sizes == [25, 25]
    assert len(set(al.labeled_indices_.tolist())) == 30
    # modAL's own functions work unchanged (they take no random_state).
    make_al(query_strategy=uncertainty_sampling, query_params={"random_tie_break": True}).fit(X, y)


def test_final_cycle_params_set_before_last_training(breast):
    X, y, _, _ = breast
    from skorch.callbacks import Callback

    class RecordTrim(Callback):
        def __init__(self, seen=None):
            self.seen = seen

        def on_train_begin(self, net, **kwargs):
            self.seen.append(net.trim_size)

    seen = []
    net = LossPredictionClassifier("small_cnn", n_classes=2, n_channels=1, max_epochs=1,
                                   random_state=0, trim_size=2, device="cpu",
                                   callbacks=[("trim", RecordTrim(seen))])
    al = make_al(estimator=net, final_cycle_params={"trim_size": 0}).fit(X, y)
    assert al.estimator_.trim_size == 0
    # clone() copies the callback (and its list) into estimator_: read the copy's record.
    assert dict(al.estimator_.callbacks)["trim"].seen == [2, 2, 0]


def test_warm_start_and_random_state_set_on_the_estimator(breast):
    X, y, _, _ = breast
    al = make_al(warm_start=False, estimator=small_net(random_state=None), random_state=3)
    al.fit(X, y)
    assert al.estimator_.warm_start is False
    assert isinstance(al.estimator_.random_state, int)  # derived from the experiment's seed
    assert al.estimator.random_state is None  # the parameter itself is untouched


def test_multilabel_end_to_end(tmp_path, make_synthetic_medmnist):
    make_synthetic_medmnist(tmp_path, "chestmnist", n_per_split=(60, 4, 40))
    X, y = load_medmnist("chestmnist", "train", root=tmp_path, verify=False)
    X_test, y_test = load_medmnist("chestmnist", "test", root=tmp_path, verify=False)
    net = ImageClassifier("small_cnn", n_classes=14, n_channels=1, multi_label=True,
                          max_epochs=1, random_state=0, device="cpu")
    al = ActiveLearningClassifier(net, "random", query_size=10, n_cycles=3, random_state=0,
                                  task="chestmnist")
    # 40 random 0/1 test labels per column: every column has both values (AUC defined).
    al.fit(X, y, X_eval=X_test, y_eval=y_test)
    assert al.task_ == "multi-label, binary-class"
    assert [r["n_labeled"] for r in al.learning_curve_] == [10, 20, 30]
    assert al.predict(X_test).shape == (40, 14)
    assert 0 <= al.learning_curve_[-1]["acc"] <= 1
    assert np.isfinite(al.learning_curve_[-1]["auc"])


def test_generic_sklearn_pipeline_and_staged_predictions(breast):
    X, y, X_test, y_test = breast
    flat = FunctionTransformer(lambda a: a.reshape(len(a), -1) / 255.0)
    pipe = make_pipeline(flat, LogisticRegression(max_iter=200))
    al = make_al(estimator=pipe, keep_models=True).fit(X, y, X_eval=X_test, y_eval=y_test)
    staged = list(al.staged_predict_proba(X_test))
    assert len(staged) == 3 and staged[-1].shape == (80, 2)
    np.testing.assert_allclose(staged[-1], al.predict_proba(X_test))
    assert evaluate(y_test, staged[0], "binary-class").ACC == al.learning_curve_[0]["acc"]


def test_staged_predictions_replay_each_cycle_of_a_network(breast):
    X, y, X_test, y_test = breast
    al = make_al(keep_models=True).fit(X, y, X_eval=X_test, y_eval=y_test)
    staged = list(al.staged_predict_proba(X_test))
    for record, proba in zip(al.learning_curve_, staged):
        assert evaluate(y_test, proba, "binary-class").ACC == record["acc"]
    np.testing.assert_array_equal(staged[-1], al.predict_proba(X_test))
    area = budget_curve_scorer(al, X_test, y_test)
    assert area == pytest.approx(al.budget_curve_area("acc"))
    with pytest.raises(NotFittedError, match="keep_models=True"):
        next(make_al().fit(X, y).staged_predict_proba(X_test))


# -- validation ----------------------------------------------------------------


@pytest.mark.parametrize("params, match", [
    ({"query_size": 0}, r"'query_size' parameter .* must be an int in the range \[1, inf\)"),
    ({"n_cycles": 0}, r"'n_cycles' parameter .* must be an int in the range \[1, inf\)"),
    ({"n_initial": 0}, r"'n_initial' parameter .* an int in the range \[1, inf\) or None"),
    ({"query_strategy": "no_such_method"}, r"'query_strategy' parameter .* str among .*'random'"),
    ({"subsample": "half"}, r"'subsample' parameter .* Got 'half'"),
    ({"query_params": [1]}, r"'query_params' parameter .* an instance of 'dict' or None"),
    ({"final_cycle_params": {"trim_size": 0}}, r"final_cycle_params names \['trim_size'\]"),
    ({"random_state": -1}, r"'random_state' parameter .* Got -1"),
])
def test_bad_settings_fail_before_training(breast, params, match):
    X, y, _, _ = breast
    al = make_al(**params)
    # What a scikit-learn user catches for a bad parameter (GridSearchCV's error_score too).
    with pytest.raises(ValueError, match=match) as info:
        al.fit(X, y)
    assert isinstance(info.value, ExperimentConfigError)
    assert not hasattr(al, "estimator_")


def test_a_pool_too_small_for_the_budget_is_clamped_with_a_warning(breast):
    X, y, _, _ = breast  # 200 items; 60 + 3 * 60 = 240 asked for
    al = make_al(query_size=60, n_cycles=4)
    with pytest.warns(BudgetWarning, match=r"budget exceeds the pool.*240.*n_samples=200"):
        al.fit(X, y)
    assert [r["n_labeled"] for r in al.learning_curve_] == [60, 120, 180, 200]
    assert sorted(al.labeled_indices_.tolist()) == list(range(200))


def test_requirements_of_the_strategy_are_checked(breast):
    X, y, _, _ = breast

    def needs_head(learner, X_pool, n_instances=1):
        return np.arange(n_instances)

    needs_head.requirements = {"loss_head"}
    with pytest.raises(ExperimentConfigError, match="loss-prediction head"):
        make_al(query_strategy=needs_head).fit(X, y)

    def needs_dropout(learner, X_pool, n_instances=1):
        return np.arange(n_instances)

    needs_dropout.requirements = {"dropout"}
    with pytest.raises(ExperimentConfigError, match="dropout=0.0"):
        make_al(query_strategy=needs_dropout).fit(X, y)
    make_al(query_strategy=needs_dropout, estimator=small_net(dropout=0.3), n_cycles=1).fit(X, y)

    def single(learner, X_pool, n_instances=1):
        return np.arange(n_instances)

    single.requirements = {"single_label"}
    Y = np.stack([y, 1 - y], axis=1)
    with pytest.raises(ExperimentConfigError, match="single-label"):
        make_al(query_strategy=single).fit(X, Y)


def test_score_before_fit_raises_not_fitted(breast):
    X, y, X_test, y_test = breast
    with pytest.raises(NotFittedError):
        make_al().score(X_test, y_test)
    with pytest.raises(NotFittedError):
        make_al().predict(X_test)


def test_bad_strategy_output_is_reported(breast):
    X, y, _, _ = breast

    def repeats(learner, X_pool, n_instances=1):
        return np.zeros(n_instances, dtype=int)

    with pytest.raises(RuntimeError, match="distinct integer indices"):
        make_al(query_strategy=repeats).fit(X, y)


# -- scikit-learn protocol -------------------------------------------------------


def test_clone_and_nested_params_round_trip():
    al = make_al(query_params={"beta": 2}, subsample="paper")
    assert al.get_params()["estimator__lr"] == 0.01
    al.set_params(estimator__lr=0.05, query_size=7)
    assert al.estimator.lr == 0.05 and al.query_size == 7
    twin = clone(al)
    assert twin is not al and twin.estimator is not al.estimator
    assert twin.get_params()["estimator__lr"] == 0.05
    assert twin.query_params == {"beta": 2} and twin.subsample == "paper"
    assert set(al.get_params(deep=False)) == set(twin.get_params(deep=False))
    pickle.loads(pickle.dumps(twin))


def test_grid_search_ranks_configurations(breast):
    X, y, _, _ = breast

    def first_items(learner, X_pool, n_instances=1):
        return np.arange(n_instances)

    search = GridSearchCV(
        make_al(n_cycles=2, keep_models=True),
        {"query_strategy": ["random", first_items], "query_size": [10, 20],
         "estimator__lr": [0.01, 0.1]},
        cv=3, scoring={"final": "accuracy", "curve": budget_curve_scorer,
                       "curve_auc": make_budget_curve_scorer("auc")}, refit="curve")
    search.fit(X, y)
    ranks = search.cv_results_["rank_test_curve"]
    assert len(ranks) == 8 and sorted(ranks)[0] == 1
    assert np.all(np.isfinite(search.cv_results_["mean_test_curve"]))
    assert search.best_estimator_.learning_curve_[-1]["n_labeled"] in (20, 40)
    assert search.best_params_["estimator__lr"] in (0.01, 0.1)


# -- checkpoints ---------------------------------------------------------------


class Interrupt(Exception):
    pass


class InterruptAfter(Callback):
    """Stop the fit (as a kill would) once ``cycle`` is done and checkpointed."""

    def __init__(self, cycle):
        self.cycle = cycle

    def on_cycle_end(self, experiment, record):
        if record["cycle"] == self.cycle:
            raise Interrupt


class Record(Callback):
    """Keep each reported cycle's record, and whether fit began and ended."""

    def __init__(self):
        self.records, self.events = [], []

    def on_fit_begin(self, experiment, **data):
        self.events.append("begin")

    def on_cycle_end(self, experiment, record):
        self.records.append(record)

    def on_fit_end(self, experiment):
        self.events.append("end")


def test_resume_gives_the_uninterrupted_numbers(breast, tmp_path):
    X, y, X_test, y_test = breast
    reference = make_al(n_cycles=4).fit(X, y, X_eval=X_test, y_eval=y_test)

    net = LossPredictionClassifier("small_cnn", n_classes=2, n_channels=1, max_epochs=1,
                                   lr=0.01, random_state=0, trim_size=2, device="cpu")
    scal_like = dict(estimator=net, n_cycles=4, final_cycle_params={"trim_size": 0})
    lp_reference = make_al(**scal_like).fit(X, y, X_eval=X_test, y_eval=y_test)

    for params, ref in ((dict(n_cycles=4), reference), (scal_like, lp_reference)):
        folder = tmp_path / str(id(ref))
        al = make_al(checkpoint_dir=folder, callbacks=[InterruptAfter(2)], **params)
        with pytest.raises(Interrupt):
            al.fit(X, y, X_eval=X_test, y_eval=y_test)
        assert (folder / "checkpoint.pkl").is_file()
        reported = Record()
        resumed = make_al(checkpoint_dir=folder, callbacks=[reported], **params)
        resumed.fit(X, y, X_eval=X_test, y_eval=y_test)
        assert resumed.n_resumed_cycles_ == 2
        # loaded cycles are not re-reported
        assert [r["cycle"] for r in reported.records] == [3, 4]
        assert reported.events == ["begin", "end"]
        assert curve_numbers(resumed) == curve_numbers(ref)
        np.testing.assert_array_equal(resumed.labeled_indices_, ref.labeled_indices_)
        np.testing.assert_array_equal(resumed.predict_proba(X_test), ref.predict_proba(X_test))


def test_finished_run_is_loaded_not_recomputed(breast, tmp_path, monkeypatch):
    X, y, X_test, y_test = breast
    first = make_al(checkpoint_dir=tmp_path).fit(X, y, X_eval=X_test, y_eval=y_test)

    def no_training(self, *args, **kwargs):
        raise AssertionError("a finished run must not train again")

    monkeypatch.setattr(ImageClassifier, "fit", no_training)
    again = make_al(checkpoint_dir=tmp_path, verbose=1).fit(X, y, X_eval=X_test, y_eval=y_test)
    assert again.n_resumed_cycles_ == 3
    assert curve_numbers(again) == curve_numbers(first)
    assert again.score(X_test, y_test) == first.score(X_test, y_test)


def test_checkpoint_of_another_run_is_refused(breast, tmp_path):
    X, y, X_test, y_test = breast
    make_al(checkpoint_dir=tmp_path, n_cycles=2).fit(X, y)
    with pytest.raises(CheckpointMismatchError, match="estimator__lr") as info:
        make_al(checkpoint_dir=tmp_path, n_cycles=2,
                estimator=small_net(lr=0.5)).fit(X, y)
    assert info.value.differing == ("estimator__lr",)
    with pytest.raises(CheckpointMismatchError, match="other data"):
        make_al(checkpoint_dir=tmp_path, n_cycles=2).fit(X[::-1], y[::-1])
    # Reporting-only settings may change between the runs.
    make_al(checkpoint_dir=tmp_path, n_cycles=2, verbose=1,
            estimator=small_net(verbose=1)).fit(X, y)


def test_a_network_without_n_classes_gets_every_class_of_the_oracle(breast):
    X, y, _, _ = breast
    names = np.array(["benign", "malignant"])[y]
    # An initial set of one item has one class: the network must still get both.
    al = make_al(estimator=small_net(n_classes=None), n_initial=1).fit(X, names)
    assert al.estimator_.classes.tolist() == ["benign", "malignant"]
    assert al.classes_.tolist() == ["benign", "malignant"]
    assert al.estimator_.predict_proba(X[:3]).shape == (3, 2)


def test_unseeded_run_resumes_with_its_own_entropy(breast, tmp_path):
    X, y, _, _ = breast
    al = make_al(random_state=None, checkpoint_dir=tmp_path, callbacks=[InterruptAfter(1)])
    with pytest.raises(Interrupt):
        al.fit(X, y)
    initial = al.initial_indices_.copy()
    resumed = make_al(random_state=None, checkpoint_dir=tmp_path).fit(X, y)
    np.testing.assert_array_equal(resumed.initial_indices_, initial)
    assert resumed.n_resumed_cycles_ == 1
    fresh = make_al(random_state=None).fit(X, y)
    assert set(fresh.initial_indices_) != set(initial)  # 1 in C(200, 10) to collide


def test_callbacks_are_a_clean_parameter(breast):
    # Side effects are callback objects given at construction: clone keeps them,
    # get_params shows them, and a bad one is refused before any training.
    X, y, _, _ = breast
    recorder = Record()
    al = make_al(n_cycles=2, callbacks=[recorder])
    assert al.get_params()["callbacks"] == [recorder]
    assert isinstance(clone(al).get_params()["callbacks"][0], Record)
    al.fit(X, y)
    assert [r["cycle"] for r in recorder.records] == [1, 2]
    with pytest.raises(ExperimentConfigError, match="Callback"):
        make_al(n_cycles=2, callbacks=[print]).fit(X, y)


def test_verbose_prints_a_line_per_cycle(breast, capsys):
    X, y, X_test, y_test = breast
    make_al(n_cycles=2, verbose=1).fit(X, y, X_eval=X_test, y_eval=y_test)
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines] == ["cycle 1", "cycle 2"]
    assert "10 labeled, acc " in lines[0]


def test_a_checkpoint_from_before_a_new_parameter_loads_while_it_is_at_its_default(breast, tmp_path):
    import pickle as pkl

    X, y, _, _ = breast
    make_al(checkpoint_dir=tmp_path, n_cycles=2).fit(X, y)
    path = tmp_path / "checkpoint.pkl"
    state = pkl.loads(path.read_bytes())
    # As an older skal wrote it: without the estimator's min_epoch_size.
    del state["fingerprint"]["params"]["estimator__min_epoch_size"]
    path.write_bytes(pkl.dumps(state))
    assert make_al(checkpoint_dir=tmp_path, n_cycles=2).fit(X, y).n_resumed_cycles_ == 2
    with pytest.raises(CheckpointMismatchError, match="estimator__min_epoch_size differ"):
        make_al(checkpoint_dir=tmp_path, n_cycles=2,
                estimator=small_net(min_epoch_size=64)).fit(X, y)
