"""Offline headline sentiment: positive / negative / neutral per headline, no LLM, no network.

The `rules` backend needs a sentiment call per news headline that is cheap (about a millisecond
a headline or less here) and ships with the package. Dictionary scorers alone (VADER) do not beat
the majority class on finance headlines, so this is a small trained model: a multinomial logistic
regression over

- TF-IDF of word 1-2grams and of character 2-5grams (within words), with the target company's
  mention replaced by ``TGT`` so the model learns "TGT cuts jobs", not company names;
- the mean WordLlama token embedding (256-d static vectors shipped inside the `wordllama` wheel);
- the four VADER lexicon scores (lexicon shipped inside the `vadersentiment` wheel).

Trained on the FiQA 2018 task-1 aspect sentiment data (elinsky/fiqa, MIT): the 336 headline-train
headlines (379 headline-target pairs) plus the 675 StockTwits-style posts. Labels follow the
FinGPT convention on FiQA's continuous score: < -0.1 negative, > 0.1 positive, else neutral.
Measured on the 100 held-out headline-test headlines (119 pairs, never trained on): accuracy
0.748, macro-F1 0.510, against 0.571 for always-positive (the majority class), 0.118 for
always-neutral and 0.471 for VADER alone. 5-fold grouped CV over all 436 headlines (498 pairs,
re-trained per fold): accuracy 0.735, macro-F1 0.582. FinBERT's 0.86 is on Financial
PhraseBank, a different set; with ~440 labelled headlines and static embeddings this is the
honest figure, and the neutral class (12% of pairs, cut from a noisy continuous score) is
where the model loses most. ~0.4 ms a headline in batches, ~1 ms for a single-headline call.
See BENCHMARKS.md and `benchmarks/sentiment_fiqa.py`; `scripts/train_sentiment.py` re-creates
the weights (`trading_assets/data/models/`).
"""

from __future__ import annotations

import json
import logging
import math
import re
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

MODEL_NAME = "fiqa-logreg-wordllama-v1"
VERSION = "1"

# Class order of the weight rows; fixed by the training script.
CLASSES: tuple[str, str, str] = ("negative", "neutral", "positive")
# FinGPT convention for turning FiQA's continuous sentiment score into three classes.
NEUTRAL_BAND = 0.1

WEIGHTS_FILE = "headline_sentiment_v1.npz"
META_FILE = "headline_sentiment_v1.json"
TARGET_TOKEN = "TGT"

_WORD_RE = re.compile(r"(?u)\b\w+\b")
_MULTISPACE_RE = re.compile(r"\s\s+")
CHAR_NGRAMS = (2, 5)
WORD_NGRAMS = (1, 2)
VADER_KEYS = ("neg", "neu", "pos", "compound")


def label_from_score(score: float) -> str:
    """FiQA score in [-1, 1] -> class name, with the +-0.1 neutral band."""
    if score < -NEUTRAL_BAND:
        return "negative"
    if score > NEUTRAL_BAND:
        return "positive"
    return "neutral"


def mark_target(text: str, target: str | None) -> str:
    """Replace the target's mentions by TGT: the label is about the target, not the company."""
    if not target or not target.strip():
        return text
    return re.sub(re.escape(target.strip()), f" {TARGET_TOKEN} ", text, flags=re.IGNORECASE)


def word_terms(text: str) -> list[str]:
    """Lower-cased word 1-2grams (same tokens as scikit-learn's ``\\b\\w+\\b`` pattern)."""
    tokens = _WORD_RE.findall(text.lower())
    terms = list(tokens)
    lo, hi = WORD_NGRAMS
    for n in range(max(lo, 2), hi + 1):
        terms.extend(" ".join(tokens[i : i + n]) for i in range(len(tokens) - n + 1))
    return terms


def char_terms(text: str) -> list[str]:
    """Character 2-5grams inside space-padded words (scikit-learn's ``char_wb`` analyzer)."""
    terms: list[str] = []
    lo, hi = CHAR_NGRAMS
    for word in _MULTISPACE_RE.sub(" ", text.lower()).split():
        padded = f" {word} "
        for n in range(lo, hi + 1):
            if len(padded) <= n:  # a short word counts once, as scikit-learn does
                terms.append(padded)
                break
            terms.extend(padded[i : i + n] for i in range(len(padded) - n + 1))
    return terms


@dataclass(frozen=True)
class TfidfBlock:
    """A fitted vocabulary with smoothed IDF; sublinear TF, L2-normalised rows."""

    vocab: dict[str, int]
    idf: np.ndarray

    @property
    def size(self) -> int:
        return len(self.vocab)

    def row(self, terms: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Column indices and TF-IDF values of one document."""
        counts = Counter(t for t in terms if t in self.vocab)
        if not counts:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64)
        idx = np.fromiter((self.vocab[t] for t in counts), dtype=np.int64, count=len(counts))
        tf = np.fromiter((1.0 + math.log(c) for c in counts.values()), dtype=np.float64)
        val = tf * self.idf[idx]
        return idx, val / np.linalg.norm(val)


class _Embedder:
    """Mean WordLlama token vector, L2-normalised; weights and tokenizer come from the wheel."""

    def __init__(self) -> None:
        # wordllama calls logging.basicConfig(level=INFO) at import time; keep the root logger
        # as the host application configured it.
        root = logging.getLogger()
        handlers, level = root.handlers[:], root.level
        import wordllama
        from wordllama import WordLlama

        root.handlers[:], root.level = handlers, level
        # Its own project-root lookup searches tokenizer/ but the wheel has tokenizers/: pointing
        # cache_dir at the package finds both files, and disable_download forbids any fetch.
        self._model = WordLlama.load(
            cache_dir=Path(wordllama.__file__).parent, disable_download=True
        )
        self.dim = int(self._model.embedding.shape[1])

    def __call__(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float64)
        emb = np.asarray(self._model.embed(texts, norm=False), dtype=np.float64)
        norm = np.linalg.norm(emb, axis=1, keepdims=True)
        return emb / np.where(norm > 0, norm, 1.0)


@cache
def _embedder() -> _Embedder:
    return _Embedder()


# The static embedding `embed_texts` returns: WordLlama's L2 "supercat" weights truncated to
# 256 dimensions, shipped inside the `wordllama` 0.4 wheel (no download at run time).
EMBEDDING_MODEL = "wordllama-l2-supercat-256"


def embed_texts(texts: list[str]) -> np.ndarray:
    """One unit-norm float64 row per text (mean WordLlama token vector, L2-normalised).

    Shape ``(len(texts), 256)``; deterministic; an empty text gives a zero row. The model is
    loaded once per process from the wheel.
    """
    return _embedder()(list(texts))


class Featurizer:
    """Headline (+ target) -> sparse TF-IDF part and dense embedding + VADER part.

    Shared by inference and `scripts/train_sentiment.py` so both see identical features.
    Column layout: [word TF-IDF | char TF-IDF | embedding | VADER neg, neu, pos, compound].
    """

    def __init__(self, word: TfidfBlock, char: TfidfBlock) -> None:
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

        self.word = word
        self.char = char
        self._embed = _embedder()
        self._vader = SentimentIntensityAnalyzer()

    @property
    def sparse_size(self) -> int:
        return self.word.size + self.char.size

    @property
    def dense_size(self) -> int:
        return self._embed.dim + len(VADER_KEYS)

    def transform(
        self, texts: Sequence[str], targets: Sequence[str | None]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(row ids, column ids, values) of the sparse part, and the dense part (n x dense_size)."""
        rows: list[np.ndarray] = []
        cols: list[np.ndarray] = []
        vals: list[np.ndarray] = []
        for i, (text, target) in enumerate(zip(texts, targets, strict=True)):
            marked = mark_target(text, target)
            w_idx, w_val = self.word.row(word_terms(marked))
            c_idx, c_val = self.char.row(char_terms(marked))
            cols += [w_idx, c_idx + self.word.size]
            vals += [w_val, c_val]
            rows.append(np.full(len(w_idx) + len(c_idx), i, dtype=np.int64))
        empty_i, empty_f = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64)
        vader = np.array(
            [[self._vader.polarity_scores(t)[k] for k in VADER_KEYS] for t in texts],
            dtype=np.float64,
        ).reshape(len(texts), len(VADER_KEYS))
        dense = np.hstack([self._embed(list(texts)), vader])
        return (
            np.concatenate(rows) if rows else empty_i,
            np.concatenate(cols) if cols else empty_i,
            np.concatenate(vals) if vals else empty_f,
            dense,
        )


def _weights_dir() -> Path:
    return Path(__file__).resolve().parents[1] / "data" / "models"


def load_tfidf(arrays: Any, name: str) -> TfidfBlock:
    vocab = {str(t): i for i, t in enumerate(arrays[f"{name}_vocab"])}
    return TfidfBlock(vocab=vocab, idf=np.asarray(arrays[f"{name}_idf"], dtype=np.float64))


class HeadlineSentimentModel:
    """Scores headlines with the shipped logistic-regression weights (numpy at inference)."""

    _lock = threading.Lock()

    def __init__(self, featurizer: Featurizer, coef: np.ndarray, intercept: np.ndarray) -> None:
        expected = featurizer.sparse_size + featurizer.dense_size
        if coef.shape != (len(CLASSES), expected):
            raise ValueError(f"weights have shape {coef.shape}, features need {expected} columns")
        self.featurizer = featurizer
        self.coef = coef
        self.intercept = intercept
        self.model_name = MODEL_NAME
        self.version = VERSION

    @classmethod
    def load(cls) -> HeadlineSentimentModel:
        """The shipped model, loaded once per process (weights are read-only afterwards)."""
        with cls._lock:
            return _load_shipped()

    @classmethod
    def from_file(cls, path: Path) -> HeadlineSentimentModel:
        with np.load(path, allow_pickle=False) as arrays:
            if tuple(str(c) for c in arrays["classes"]) != CLASSES:
                raise ValueError(f"{path}: unexpected class order {arrays['classes']}")
            featurizer = Featurizer(load_tfidf(arrays, "word"), load_tfidf(arrays, "char"))
            coef = np.asarray(arrays["coef"], dtype=np.float64)
            intercept = np.asarray(arrays["intercept"], dtype=np.float64)
        return cls(featurizer, coef, intercept)

    @staticmethod
    def metadata() -> dict[str, Any]:
        """Training data, hyper-parameters and measured figures recorded by the training run."""
        return json.loads((_weights_dir() / META_FILE).read_text())

    def probabilities(
        self, headlines: Sequence[str], targets: Sequence[str | None] | None = None
    ) -> np.ndarray:
        """(n, 3) class probabilities in CLASSES order."""
        texts = [str(h) for h in headlines]
        tgts: list[str | None] = list(targets) if targets is not None else [None] * len(texts)
        if len(tgts) != len(texts):
            raise ValueError(f"{len(texts)} headlines but {len(tgts)} targets")
        if not texts:
            return np.zeros((0, len(CLASSES)), dtype=np.float64)
        rows, cols, vals, dense = self.featurizer.transform(texts, tgts)
        n_sparse = self.featurizer.sparse_size
        logits = dense @ self.coef[:, n_sparse:].T + self.intercept
        np.add.at(logits, rows, (self.coef[:, cols] * vals).T)
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        return p / p.sum(axis=1, keepdims=True)

    def score(
        self, headlines: Sequence[str], targets: Sequence[str | None] | None = None
    ) -> pd.DataFrame:
        """One row per headline: label, score = P(positive) - P(negative), confidence = max P.

        `targets` (optional, one per headline) names the company the sentiment is about; it is
        masked so that "A beats B" can read differently for A and B.
        """
        p = self.probabilities(headlines, targets)
        labels = np.asarray(CLASSES, dtype=object)[p.argmax(axis=1)] if len(p) else []
        return pd.DataFrame(
            {
                "label": pd.Series(labels, dtype=object),
                "score": np.clip(p[:, 2] - p[:, 0], -1.0, 1.0),
                "confidence": p.max(axis=1) if len(p) else np.zeros(0),
            }
        )


@cache
def _load_shipped() -> HeadlineSentimentModel:
    return HeadlineSentimentModel.from_file(_weights_dir() / WEIGHTS_FILE)
