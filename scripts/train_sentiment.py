"""Train the offline headline sentiment model and write its weights into the package.

    .venv/bin/python scripts/train_sentiment.py [--data-dir DIR]

DIR defaults to `../shared/data/sentiment/fiqa_task1` beside the checkout (FiQA 2018 task 1,
elinsky/fiqa, MIT). Trains on the headline TRAIN split plus all StockTwits-style posts; the
headline TEST split is only scored, never trained on. C is chosen by grouped, stratified 5-fold CV
on the headline train split alone. Deterministic: fixed seeds, lbfgs, sorted vocabularies.
Needs scikit-learn (dev extra); the shipped model itself needs numpy only.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import sparse
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import StratifiedGroupKFold

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from trading_assets.analysts.headline_sentiment import (  # noqa: E402
    CLASSES,
    META_FILE,
    MODEL_NAME,
    VERSION,
    WEIGHTS_FILE,
    Featurizer,
    HeadlineSentimentModel,
    TfidfBlock,
    char_terms,
    label_from_score,
    mark_target,
    word_terms,
)

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "sentiment" / "fiqa_task1"
OUT_DIR = ROOT / "trading_assets" / "data" / "models"
C_GRID = (1.0, 3.0, 10.0, 30.0)
POST_WEIGHT = 1.0  # sample weight of a StockTwits post relative to a headline
CHAR_MIN_DF = 2
SEEDS = (0, 1)


@dataclass(frozen=True)
class Pair:
    """One (text, target) pair with FiQA's continuous score; `group` keeps a headline's pairs
    in the same CV fold."""

    group: str
    text: str
    target: str
    score: float

    @property
    def label(self) -> int:
        return CLASSES.index(label_from_score(self.score))


def load_pairs(path: Path) -> list[Pair]:
    data = json.loads(path.read_text())
    return [
        Pair(f"{path.stem}:{key}", row["sentence"], info["target"], float(info["sentiment_score"]))
        for key, row in data.items()
        for info in row["info"]
    ]


def load_fiqa(data_dir: Path) -> dict[str, list[Pair]]:
    return {
        "headline_train": load_pairs(data_dir / "task1_headline_ABSA_train.json"),
        "headline_test": load_pairs(data_dir / "task1_headline_ABSA_test.json"),
        "posts": load_pairs(data_dir / "task1_post_ABSA_train.json")
        + load_pairs(data_dir / "task1_post_ABSA_test.json"),
    }


def fit_tfidf(docs: list[list[str]], min_df: int) -> TfidfBlock:
    """Smoothed IDF as scikit-learn computes it: ln((1 + n) / (1 + df)) + 1."""
    df = Counter(t for doc in docs for t in set(doc))
    terms = sorted(t for t, c in df.items() if c >= min_df)
    idf = np.array([math.log((1 + len(docs)) / (1 + df[t])) + 1.0 for t in terms])
    return TfidfBlock(vocab={t: i for i, t in enumerate(terms)}, idf=idf)


def design(featurizer: Featurizer, pairs: list[Pair]) -> sparse.csr_matrix:
    rows, cols, vals, dense = featurizer.transform(
        [p.text for p in pairs], [p.target for p in pairs]
    )
    tfidf = sparse.csr_matrix((vals, (rows, cols)), shape=(len(pairs), featurizer.sparse_size))
    return sparse.hstack([tfidf, sparse.csr_matrix(dense)]).tocsr()


@dataclass
class Fitted:
    featurizer: Featurizer
    clf: LogisticRegression

    def predict(self, pairs: list[Pair]) -> np.ndarray:
        return self.clf.predict(design(self.featurizer, pairs))

    def as_model(self) -> HeadlineSentimentModel:
        return HeadlineSentimentModel(self.featurizer, self.clf.coef_, self.clf.intercept_)


def fit(headlines: list[Pair], posts: list[Pair], c: float) -> Fitted:
    """Vocabularies and logistic regression on headlines + posts (posts weighted POST_WEIGHT)."""
    pairs = headlines + posts
    marked = [mark_target(p.text, p.target) for p in pairs]
    featurizer = Featurizer(
        fit_tfidf([word_terms(t) for t in marked], min_df=1),
        fit_tfidf([char_terms(t) for t in marked], min_df=CHAR_MIN_DF),
    )
    weights = np.array([1.0] * len(headlines) + [POST_WEIGHT] * len(posts))
    clf = LogisticRegression(C=c, max_iter=10_000)
    clf.fit(design(featurizer, pairs), [p.label for p in pairs], sample_weight=weights)
    return Fitted(featurizer, clf)


def cv_accuracy(
    headlines: list[Pair], posts: list[Pair], c: float, seeds: tuple[int, ...] = SEEDS
) -> tuple[float, float]:
    """Mean accuracy and macro-F1 over grouped, stratified 5-fold CV (posts always train)."""
    y = np.array([p.label for p in headlines])
    groups = np.array([p.group for p in headlines])
    accs, f1s = [], []
    for seed in seeds:
        folds = StratifiedGroupKFold(n_splits=5, shuffle=True, random_state=seed)
        for train_idx, held_idx in folds.split(np.zeros(len(y)), y, groups):
            fitted = fit([headlines[i] for i in train_idx], posts, c)
            pred = fitted.predict([headlines[i] for i in held_idx])
            accs.append(accuracy_score(y[held_idx], pred))
            f1s.append(f1_score(y[held_idx], pred, average="macro"))
    return float(np.mean(accs)), float(np.mean(f1s))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args()
    data = load_fiqa(args.data_dir)
    train, test, posts = data["headline_train"], data["headline_test"], data["posts"]

    cv = {c: cv_accuracy(train, posts, c) for c in C_GRID}
    for c, (acc, f1) in cv.items():
        print(f"C={c:<5} train-split CV accuracy {acc:.3f}  macro-F1 {f1:.3f}")
    best_c = max(C_GRID, key=lambda c: (round(cv[c][0], 3), -c))

    fitted = fit(train, posts, best_c)
    y_test = np.array([p.label for p in test])
    pred = fitted.predict(test)
    test_acc = float(accuracy_score(y_test, pred))
    test_f1 = float(f1_score(y_test, pred, average="macro"))
    print(f"chosen C={best_c}: headline test accuracy {test_acc:.3f}  macro-F1 {test_f1:.3f}")

    OUT_DIR.mkdir(parents=True, exist_ok=True)
    ws = sorted(fitted.featurizer.word.vocab, key=fitted.featurizer.word.vocab.__getitem__)
    cs = sorted(fitted.featurizer.char.vocab, key=fitted.featurizer.char.vocab.__getitem__)
    np.savez_compressed(
        OUT_DIR / WEIGHTS_FILE,
        classes=np.array(CLASSES),
        word_vocab=np.array(ws),
        word_idf=fitted.featurizer.word.idf.astype(np.float64),
        char_vocab=np.array(cs),
        char_idf=fitted.featurizer.char.idf.astype(np.float64),
        coef=fitted.clf.coef_.astype(np.float64),
        intercept=fitted.clf.intercept_.astype(np.float64),
    )
    meta = {
        "model_name": MODEL_NAME,
        "version": VERSION,
        "classes": list(CLASSES),
        "label_rule": "FiQA sentiment_score < -0.1 negative, > 0.1 positive, else neutral",
        "training_data": {
            "headline_train_pairs": len(train),
            "post_pairs": len(posts),
            "post_weight": POST_WEIGHT,
            "source": "FiQA 2018 task 1 (elinsky/fiqa, MIT)",
        },
        "C": best_c,
        "cv_on_headline_train": {
            str(c): {"accuracy": a, "macro_f1": f} for c, (a, f) in cv.items()
        },
        "headline_test": {"pairs": len(test), "accuracy": test_acc, "macro_f1": test_f1},
        "features": {
            "word_vocab": len(ws),
            "char_vocab": len(cs),
            "dense": fitted.featurizer.dense_size,
        },
    }
    (OUT_DIR / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    print(f"wrote {OUT_DIR / WEIGHTS_FILE} and {META_FILE}")


if __name__ == "__main__":
    main()
