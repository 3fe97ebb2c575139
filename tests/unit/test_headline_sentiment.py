"""The shipped offline headline sentiment model: real FiQA headlines, no network."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import numpy as np
import pytest

from trading_assets.analysts.headline_sentiment import (
    CLASSES,
    MODEL_NAME,
    VERSION,
    HeadlineSentimentModel,
    char_terms,
    label_from_score,
    mark_target,
)

FIQA_TEST = (
    Path(__file__).resolve().parents[3]
    / "shared/data/sentiment/fiqa_task1/task1_headline_ABSA_test.json"
)


@pytest.fixture(scope="module")
def model(monkeypatch_module: pytest.MonkeyPatch) -> HeadlineSentimentModel:
    """Loaded with sockets forbidden and the HF hub offline: nothing may be fetched."""

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("the sentiment model tried to open a network connection")

    monkeypatch_module.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch_module.setattr(socket.socket, "connect", no_network)
    monkeypatch_module.setattr(socket, "create_connection", no_network)
    return HeadlineSentimentModel.load()


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


@pytest.fixture(scope="module")
def fiqa_test() -> list[tuple[str, str, str]]:
    if not FIQA_TEST.exists():
        pytest.skip(f"FiQA data not found at {FIQA_TEST}")
    data = json.loads(FIQA_TEST.read_text())
    return [
        (row["sentence"], info["target"], label_from_score(float(info["sentiment_score"])))
        for row in data.values()
        for info in row["info"]
    ]


def test_clear_fiqa_test_headlines_get_the_right_label(model: HeadlineSentimentModel) -> None:
    # Held-out FiQA headline-test items with strong gold scores (|score| >= 0.68).
    cases = [
        ("UPDATE: Persimmon Profit Up Strongly, Outlook Positive", "Persimmon", "positive"),
        ("Rolls-Royce Wins $9.2 Billion Order From Emirates Airline", "Rolls-Royce", "positive"),
        ("Aviva Fined $27 Million by U.K. Regulator Over Fee Failings", "Aviva", "negative"),
        ("BHP Billiton posts big loss, slashes dividend", "BHP Billiton", "negative"),
        ("Tesco share price tumbles after negative broker note", "Tesco", "negative"),
    ]
    out = model.score([c[0] for c in cases], [c[1] for c in cases])
    assert list(out["label"]) == [c[2] for c in cases]


def test_beats_the_majority_class_on_the_held_out_split(
    model: HeadlineSentimentModel, fiqa_test: list[tuple[str, str, str]]
) -> None:
    truth = [t[2] for t in fiqa_test]
    out = model.score([t[0] for t in fiqa_test], [t[1] for t in fiqa_test])
    accuracy = float(np.mean(out["label"].to_numpy() == np.array(truth)))
    majority = max(truth.count(k) for k in CLASSES) / len(truth)
    assert accuracy > majority + 0.1


def test_output_shape_ranges_and_determinism(model: HeadlineSentimentModel) -> None:
    headlines = ["Shares of ACME plunge after profit warning", "ACME to hold AGM on Tuesday", ""]
    targets = ["ACME", None, None]
    first = model.score(headlines, targets)
    assert list(first.columns) == ["label", "score", "confidence"]
    assert len(first) == 3
    assert np.isfinite(first[["score", "confidence"]].to_numpy()).all()
    # A headline scores the same alone as in a batch (no state leaks between rows).
    for i, (headline, target) in enumerate(zip(headlines, targets, strict=True)):
        alone = model.score([headline], [target]).iloc[0]
        assert alone["label"] == first["label"].iloc[i]
        assert alone["score"] == pytest.approx(first["score"].iloc[i], abs=1e-12)


def test_score_sign_agrees_with_label(model: HeadlineSentimentModel) -> None:
    out = model.score(["Profit beats forecasts, dividend raised", "Company fined over fraud"])
    assert list(out["label"]) == ["positive", "negative"]
    assert out["score"].iloc[0] > 0 > out["score"].iloc[1]


def test_empty_input(model: HeadlineSentimentModel) -> None:
    out = model.score([])
    assert list(out.columns) == ["label", "score", "confidence"]
    assert len(out) == 0


def test_targets_must_match_headlines(model: HeadlineSentimentModel) -> None:
    with pytest.raises(ValueError):
        model.score(["a", "b"], ["A"])


def test_identity() -> None:
    assert MODEL_NAME.startswith("fiqa-logreg-wordllama")
    assert VERSION
    assert HeadlineSentimentModel.metadata()["model_name"] == MODEL_NAME


def test_target_masking_and_char_ngrams() -> None:
    assert mark_target("Tesco beats Aldi", "tesco").split() == ["TGT", "beats", "Aldi"]
    assert mark_target("Tesco beats Aldi", None) == "Tesco beats Aldi"
    # scikit-learn char_wb semantics: a word shorter than n is counted once.
    assert char_terms("a") == [" a", "a ", " a "]
