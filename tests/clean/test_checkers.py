"""The checker factory: names, estimators, seeds, text."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeClassifier

from aiforge.clean import CHECKERS, PICO, MultiSplitVote, SplitTrainCheck, make_checker
from aiforge.errors import InvalidInput


@pytest.mark.parametrize("name", sorted(set(CHECKERS) - {"text"}))
def test_every_named_checker_fits_and_predicts_probabilities(name, blobs):
    X, y = blobs
    model = make_checker(name, random_state=0).fit(X, y)
    proba = model.predict_proba(X[:5])
    assert proba.shape == (5, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)


def test_default_is_knn():
    assert make_checker().steps[-1][0] == "kneighborsclassifier"


def test_an_estimator_is_cloned_and_seeded():
    tree = DecisionTreeClassifier(max_depth=3, random_state=99)
    made = make_checker(tree, random_state=5)
    assert made is not tree and made.random_state == 5 and made.max_depth == 3
    assert tree.random_state == 99


def test_unknown_name_lists_the_names():
    with pytest.raises(InvalidInput, match=r"^unknown checker 'bert'; use one of: knn, logreg, forest, hgb, nb, "):
        make_checker("bert")


def test_not_a_classifier():
    with pytest.raises(
        InvalidInput, match=r"^checker must be a string, an object with fit and predict_proba methods or None; got 3$"
    ):
        make_checker(3)


def test_seed_is_the_old_name_of_random_state():
    tree = DecisionTreeClassifier(max_depth=3)
    with pytest.warns(FutureWarning, match=r"^make_checker: seed= is deprecated .*; use random_state=5 instead$"):
        assert make_checker(tree, seed=5).random_state == 5
    assert make_checker("forest", random_state=None).random_state is None
    with pytest.raises(InvalidInput, match=r"^random_state must be an integer >= 0 or None; got 'x'$"):
        make_checker("forest", random_state="x")


def test_text_checker_cleans_intents():
    texts = {
        "weather": [
            "will it rain today",
            "weather tomorrow",
            "is it sunny",
            "forecast for the weekend",
            "rain or shine",
        ],
        "music": ["play some jazz", "next song please", "turn up the music", "play my playlist", "skip this track"],
        "alarm": ["wake me at seven", "set an alarm", "cancel my alarm", "alarm for six am", "snooze the alarm"],
    }
    X = [t for intent in texts for t in texts[intent]] * 4
    y = np.array([intent for intent in texts for _ in texts[intent]] * 4)
    noisy = y.copy()
    noisy[[0, 21, 42]] = ["music", "alarm", "weather"]
    vote = PICO(checker="text", n_iter=2, random_state=0).fit(X, noisy)
    assert (vote.corrected_labels_ == y).mean() >= 0.95


def test_any_sklearn_classifier_works_in_pico(blobs):
    X, y = blobs
    noisy = y.copy()
    noisy[::10] = (noisy[::10] + 1) % 3
    pico = PICO(checker=LogisticRegression(), n_iter=2, random_state=0).fit(X, noisy)
    assert (pico.corrected_labels_ == y).mean() >= 0.98


def _labels(n: int) -> np.ndarray:
    return np.array(["a", "b"] * (n // 2))


@pytest.mark.parametrize("cleaner", [PICO, MultiSplitVote, SplitTrainCheck])
def test_texts_without_a_word_are_an_error_not_an_empty_vocabulary(cleaner):
    texts = ["", "a", "I", "  ", "x y z", "?!"] * 4  # TF-IDF skips one-character tokens and punctuation
    with pytest.raises(InvalidInput, match=r"^checker 'text' found no word in any of the 24 texts \(they are empty or "
                                           r"hold only one-character tokens and punctuation, which its TF-IDF skips\); "
                                           r"clean these labels with numeric features and another checker$"):
        cleaner(checker="text").fit(texts, _labels(24))


def test_a_split_whose_training_texts_hold_no_word_is_an_error():
    texts = ["hello world"] + [""] * 23  # the whole set has a word, but not every training fold
    with pytest.raises(InvalidInput, match=r"^checker 'text' found no word in the \d+ training texts of one split"):
        MultiSplitVote(checker="text", n_folds=4).fit(texts, _labels(24))


def test_the_checker_and_the_features_must_match():
    texts = ["play some jazz", "set an alarm"] * 6
    with pytest.raises(InvalidInput, match=r"^checker 'knn' needs numeric features \(N, D\); X holds 12 texts: use "
                                           r"checker='text', or encode the texts first \(aiforge batch\)$"):
        PICO().fit(texts, _labels(12))
    with pytest.raises(InvalidInput, match=r"^checker 'text' needs one text per example \(a list or 1-D array of "
                                           r"strings\); got numeric features of shape \(12, 2\): use another checker"):
        PICO(checker="text").fit(np.zeros((12, 2)), _labels(12))
    with pytest.raises(InvalidInput, match=r"^checker 'text' needs a string per example; X\[1\] is None: fill or "
                                           r"drop the missing texts first$"):
        PICO(checker="text").fit(["play", None] * 6, _labels(12))
