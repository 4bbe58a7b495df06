"""Evaluating a CLIP: zero-shot accuracy with a prompt ensemble, and captions unlike the prompts."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from clipcurate.filters.prompts import ENSEMBLE_TEMPLATES, make_prompt
from clipcurate.pipeline.clip.scorer import ClipScorer


@dataclass(frozen=True)
class ZeroShotResult:
    accuracy: float
    per_label: dict[str, float]
    counts: dict[str, int]
    n: int

    def to_dict(self) -> dict:
        return {"accuracy": self.accuracy, "n": self.n, "per_label": self.per_label, "counts": self.counts}


@dataclass(frozen=True)
class CaptionResult:
    """How well captions of a given style match: ranking among classes, and matched vs mismatched pairs."""

    accuracy: float        # the image's own-label caption scores highest among one caption per class
    auc: float             # P(similarity of a matched pair > that of a mismatched pair)
    matched_mean: float
    mismatched_mean: float

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def class_embeddings(scorer: ClipScorer, classes: Sequence[str],
                     templates: Sequence[str] = ENSEMBLE_TEMPLATES) -> np.ndarray:
    """One row per class: the normalized mean of its normalized prompt embeddings."""
    prompts = [make_prompt(c, t) for c in classes for t in templates]
    emb = scorer.embed_texts(prompts).reshape(len(classes), len(templates), -1).mean(axis=1)
    return emb / np.linalg.norm(emb, axis=1, keepdims=True)


def zero_shot(scorer: ClipScorer, images: Sequence[bytes], labels: Sequence[str],
              classes: Sequence[str]) -> ZeroShotResult:
    """Top-1 accuracy of predicting each image's label among ``classes`` with a prompt ensemble."""
    if not images:
        raise ValueError("no images to evaluate")
    pred = np.argmax(scorer.embed_images(list(images)) @ class_embeddings(scorer, classes).T, axis=1)
    truth = np.array([list(classes).index(label) for label in labels])
    per_label, counts = {}, {}
    for i, c in enumerate(classes):
        mask = truth == i
        counts[c] = int(mask.sum())
        if mask.any():
            per_label[c] = float(np.mean(pred[mask] == i))
    return ZeroShotResult(float(np.mean(pred == truth)), per_label, counts, len(truth))


def evaluate_images(scorer: ClipScorer, labelled: Sequence[tuple[str, str]]) -> ZeroShotResult:
    """Zero-shot accuracy on (local image path, label) pairs; unreadable files are left out."""
    images, labels = [], []
    for path, label in labelled:
        try:
            images.append(Path(path).read_bytes())
        except OSError:
            continue
        labels.append(label)
    return zero_shot(scorer, images, labels, sorted(set(labels)))


def auc(positives: np.ndarray, negatives: np.ndarray) -> float:
    """Area under the ROC curve: P(positive > negative), ties counting half."""
    scores = np.concatenate([positives, negatives])
    order = scores.argsort(kind="stable")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    # average ranks over ties
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    avg = first + (counts - 1) / 2.0 + 1
    ranks[order] = np.repeat(avg, counts)
    n_pos, n_neg = len(positives), len(negatives)
    return float((ranks[:n_pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def caption_eval(scorer: ClipScorer, images: Sequence[bytes], labels: Sequence[str], classes: Sequence[str],
                 caption_for: Callable[[str, np.random.Generator], str], seed: int = 0) -> CaptionResult:
    """Score captions written by ``caption_for(label, rng)`` (a style unlike the prompts).

    Accuracy: for each image, one fresh caption per class; correct when its own
    label's caption scores highest. AUC: the image with its own-label caption
    (matched) against the same image with a caption of another label (mismatched).
    """
    rng = np.random.default_rng(seed)
    img = scorer.embed_images(list(images))
    classes = list(classes)
    captions = [[caption_for(c, rng) for c in classes] for _ in images]
    txt = scorer.embed_texts([c for row in captions for c in row]).reshape(len(images), len(classes), -1)
    sims = np.einsum("nd,nkd->nk", img, txt)
    truth = np.array([classes.index(label) for label in labels])
    matched = sims[np.arange(len(truth)), truth]
    others = (truth + rng.integers(1, len(classes), len(truth))) % len(classes)
    mismatched = sims[np.arange(len(truth)), others]
    return CaptionResult(float(np.mean(sims.argmax(axis=1) == truth)), auc(matched, mismatched),
                         float(matched.mean()), float(mismatched.mean()))
