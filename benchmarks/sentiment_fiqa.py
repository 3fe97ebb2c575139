"""Accuracy and speed of the shipped offline headline sentiment model on FiQA task 1 headlines.

    .venv/bin/python benchmarks/sentiment_fiqa.py [--data-dir DIR]

Per (headline, target) pair, three classes (score < -0.1 negative, > 0.1 positive, else neutral).
Prints: the shipped model on the held-out headline test split; baselines (majority class,
always-neutral, VADER compound alone with the same +-0.1 band); 5-fold grouped CV over all 436
headlines (re-training per fold, posts always in training, C as shipped); load time and ms per
headline. Needs scikit-learn (dev extra) for the CV part.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from sklearn.metrics import accuracy_score, f1_score

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT))

from train_sentiment import DEFAULT_DATA, cv_accuracy, load_fiqa  # noqa: E402

from trading_assets.analysts.headline_sentiment import (  # noqa: E402
    CLASSES,
    WEIGHTS_FILE,
    HeadlineSentimentModel,
    label_from_score,
)


def report(name: str, truth: list[str], pred: list[str]) -> None:
    acc = accuracy_score(truth, pred)
    f1 = f1_score(truth, pred, average="macro", labels=list(CLASSES), zero_division=0)
    print(f"  {name:<34} accuracy {acc:.3f}  macro-F1 {f1:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    data = load_fiqa(args.data_dir)
    test = data["headline_test"]

    started = time.perf_counter()
    model = HeadlineSentimentModel.load()
    load_s = time.perf_counter() - started
    weights = ROOT / "trading_assets" / "data" / "models" / WEIGHTS_FILE

    texts, targets = [p.text for p in test], [p.target for p in test]
    truth = [label_from_score(p.score) for p in test]
    out = model.score(texts, targets)
    majority = max(set(truth), key=truth.count)
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    vader = SentimentIntensityAnalyzer()
    print(f"headline test split: {len(test)} pairs, {len({p.group for p in test})} headlines")
    report(f"{model.model_name}", truth, list(out["label"]))
    report(f"majority class ({majority})", truth, [majority] * len(truth))
    report("always neutral", truth, ["neutral"] * len(truth))
    report(
        "VADER compound alone",
        truth,
        [label_from_score(vader.polarity_scores(t)["compound"]) for t in texts],
    )

    c = float(model.metadata()["C"])
    headlines = data["headline_train"] + test
    acc, f1 = cv_accuracy(headlines, data["posts"], c, seeds=(0,))
    print(
        f"5-fold grouped CV over all {len(headlines)} pairs (C={c}): accuracy {acc:.3f}  "
        f"macro-F1 {f1:.3f}"
    )
    labels = [label_from_score(p.score) for p in headlines]
    print(
        f"  majority-class baseline over the same pairs: "
        f"{max(labels.count(k) for k in CLASSES) / len(labels):.3f}"
    )

    batch_texts, batch_targets = texts * args.repeat, targets * args.repeat
    model.score(texts, targets)  # warm
    started = time.perf_counter()
    model.score(batch_texts, batch_targets)
    batch_ms = (time.perf_counter() - started) * 1000 / len(batch_texts)
    started = time.perf_counter()
    for text, target in zip(texts, targets, strict=True):
        model.score([text], [target])
    single_ms = (time.perf_counter() - started) * 1000 / len(texts)
    print(
        f"load {load_s:.2f} s (wordllama and VADER imports included); "
        f"{batch_ms:.3f} ms/headline in a batch of {len(batch_texts)}, "
        f"{single_ms:.3f} ms for one headline per call; weights "
        f"{weights.stat().st_size / 1024:.0f} KiB"
    )


if __name__ == "__main__":
    main()
