"""Explanations of picks (skal.label.why): read from the query's own utilities, never recomputed."""

from __future__ import annotations

import json

import numpy as np
import pytest
from modAL.models import ActiveLearner

from label_support import CLASSES, make_project
from skal.label import loop
from skal.label.why import explain, torn
from skal.query import STRATEGIES, margin, strategy_utility
from test_query import Stub, full_stub, ids, margin_proba

NAMES = ["negative", "positive", "unsure"]  # the stub's three classes


def _rank(utilities, picked, j, rule):
    """Pick j's rank in row j; under a top-k rule the earlier picks were preferred too."""
    row = utilities[j]
    before = j if rule == "top_k" else 0
    return before + 1 + int(np.sum(row[~np.isnan(row)] > row[picked[j]]))


@pytest.mark.parametrize("subsample", [None, 20])
@pytest.mark.parametrize("name", list(STRATEGIES))
def test_explanation_is_the_querys_own_utilities(name, subsample):
    """For every strategy: the score and rank shown are the ones the query used."""
    stub = full_stub(n=33, seed=2)
    learner = ActiveLearner(stub, query_strategy=STRATEGIES[name],
                            X_training=ids(3, start=30), y_training=[0, 1, 2])
    picked, utilities = STRATEGIES[name](learner, ids(30), n_instances=5, random_state=3,
                                         subsample=subsample, return_utilities=True)
    proba = stub.predict_proba(ids(30))[picked]
    why = explain(name, picked, utilities, proba=proba, classes=NAMES)
    json.dumps(why, allow_nan=False)
    declared = strategy_utility(name)
    assert why["score_name"] == declared.name and why["description"] == declared.description
    before = np.arange(5) if declared.rule == "top_k" else np.zeros(5, int)
    for j, i in enumerate(picked):
        row = utilities[j]
        assert why["scores"][j] == row[i] or (why["scores"][j] is None and np.isinf(row[i]))
        assert why["ranks"][j] == _rank(utilities, picked, j, declared.rule)
        assert why["of"][j] == np.sum(~np.isnan(row)) + before[j]
    scored = 30 if subsample is None else subsample
    if declared.rule == "top_k":  # ranks 1..n of everything scored
        assert why["ranks"] == [1, 2, 3, 4, 5] and why["of"] == [scored] * 5
    elif declared.rule == "greedy":  # the best of each step's candidates
        assert why["ranks"] == [1] * 5
    assert why["pool_size"] == 30 and why["guesses"] == proba.argmax(axis=1).tolist()
    assert len(why["sentences"]) == 5
    assert all(s and "{" not in s for s in why["sentences"])


def test_torn_gives_the_two_most_probable_classes_in_percent():
    assert torn([0.48, 0.52], ["benign", "malignant"]) == "52 % malignant, 48 % benign"
    assert torn([0.1, 0.6, 0.3], ["a", "b", "c"]) == "60 % b, 30 % c"
    assert torn([0.25, 0.75]) == "75 % class 1, 25 % class 0"


def test_uncertainty_sentences_for_a_known_binary_probability():
    # Margins 0.04 (52/48), 0.9 (95/5), 0.3 (65/35): margin picks 0 then 2.
    proba = margin_proba([0.04, 0.9, 0.3])[:, ::-1]  # column 1 is the larger
    stub = Stub(proba=proba)
    picked, utilities = margin(stub, ids(3), n_instances=2, random_state=0,
                               return_utilities=True)
    assert list(picked) == [0, 2]
    why = explain("margin", picked, utilities, proba=proba[picked],
                  classes=["benign", "malignant"])
    assert why["sentences"] == ["the model is torn: 52 % malignant, 48 % benign",
                                "the model is torn: 65 % malignant, 35 % benign"]
    np.testing.assert_allclose(why["scores"], [-0.04, -0.3])
    assert why["ranks"] == [1, 2] and why["of"] == [3, 3]
    assert why["guesses"] == [1, 1] and why["confidences"] == [0.52, 0.65]


def test_diversity_and_random_sentences():
    def words(name, **kwargs):
        picked, utilities = STRATEGIES[name](full_stub(), ids(30), n_instances=1,
                                             random_state=0, return_utilities=True)
        return explain(name, picked, utilities, **kwargs)["sentences"][0]

    assert words("coreset") == "unlike anything labeled so far"
    assert words("typiclust") == "typical of a group of similar images not yet labeled"
    assert words("random") == "picked at random, as a baseline"
    assert words("random", plain="picked at random: there is no model yet") == \
        "picked at random: there is no model yet"
    # A strategy that words itself with probabilities, given none: still a sentence.
    assert words("entropy") == "the model is torn: its two most likely answers are close"


def test_explain_keeps_json_finite():
    # Core-set with no labeled set: every distance is +inf before the first pick.
    utilities = np.array([[np.inf, np.inf, np.inf], [2.0, np.nan, 0.5]])
    why = explain("coreset", [1, 0], utilities)
    assert why["scores"] == [None, 2.0] and why["ranks"] == [1, 1] and why["of"] == [3, 2]
    json.dumps(why, allow_nan=False)


def test_explain_refuses_utilities_that_are_not_the_querys():
    with pytest.raises(ValueError, match="one row per pick"):
        explain("margin", [0, 1], np.zeros((1, 3)))
    with pytest.raises(ValueError, match="not the ones the query that picked it returned"):
        explain("margin", [0, 1], np.array([[1.0, 0.5, 0.2], [np.nan, np.nan, 0.2]]))
    with pytest.raises(ValueError, match="unknown|Unknown"):
        explain("no_such_strategy", [0], np.zeros((1, 3)))


def test_bald_batch_shows_the_rank_of_the_mc_pass_that_picked(tmp_path, monkeypatch):
    """Through the labeling loop, with a real network under MC dropout: one pass, its ranks."""
    project, truth = make_project(tmp_path, n=24, batch=3, method="bald")
    batch = loop.advance(project)  # the first batch: random, no model yet
    assert batch["sentences"] == ["picked at random: there is no model yet"] * 3
    project.record_answers([{"id": i, "label": truth[project.files[i]]} for i in batch["ids"]],
                           "ana")
    project.submit(0, "ana")
    learner = loop.train(project)
    returned, seeds = [], []
    query, mc = learner.query_strategy, learner.estimator.predict_proba_mc

    def recording_query(*args, **kwargs):
        out = query(*args, **kwargs)
        returned.append(out)
        return out

    def recording_mc(X, n_samples=20, random_state=None):
        seeds.append(random_state)
        return mc(X, n_samples=n_samples, random_state=random_state)

    monkeypatch.setattr(learner, "query_strategy", recording_query)
    monkeypatch.setattr(learner.estimator, "predict_proba_mc", recording_mc)
    batch = loop.query_batch(project, learner)
    assert len(seeds) == 1  # MC dropout ran once: for the query, not again for the page
    (picked, utilities), = returned
    assert batch["score_name"] == "mutual information" and batch["ranks"] == [1, 2, 3]
    for j, i in enumerate(picked):
        assert batch["scores"][j] == utilities[j, i]
        assert batch["of"][j] == np.sum(~np.isnan(utilities[j])) + j == 21
    for sentence, guess in zip(batch["sentences"], batch["guesses"]):
        assert sentence.startswith("the model contradicts itself") and guess in CLASSES
