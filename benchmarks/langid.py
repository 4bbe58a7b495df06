"""Speed and accuracy of `clipcurate langid` against seeded langdetect on short captions.

    .venv/bin/python benchmarks/langid.py [--n 5000] [--seed 0]

Speed: captions/s on N unique short captions, made by recombining the labelled
set (tests/data/langid_labelled.tsv) within each language. langdetect runs as
a seeded `detect` loop in this process (profiles loaded before timing);
`clipcurate langid` runs as a whole process, stdin to stdout, start-up
included. Accuracy: on the labelled set itself; und rate: the share of the
labelled no-language strings marked `und`, and of tests/data/langid_nolanguage.tsv (product codes,
file names, hashes, numbers with units, emoji, keyboard mashes, URLs, lone acronyms).
"""
from __future__ import annotations

import argparse
import random
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

LABELLED = Path(__file__).resolve().parent.parent / "tests" / "data" / "langid_labelled.tsv"
NOLANGUAGE = Path(__file__).resolve().parent.parent / "tests" / "data" / "langid_nolanguage.tsv"


def load_labelled() -> list[tuple[str, str]]:
    lines = LABELLED.read_text(encoding="utf-8").splitlines()
    return [tuple(line.split("\t", 1)) for line in lines]


def make_captions(labelled: list[tuple[str, str]], n: int, seed: int) -> list[str]:
    """N unique 2-12-word captions: a labelled caption plus words of another in its language."""
    rng = random.Random(seed)
    by_lang = defaultdict(list)
    for lang, caption in labelled:
        by_lang[lang].append(caption)
    langs = sorted(by_lang)
    out: dict[str, None] = {}
    while len(out) < n:
        lang = rng.choice(langs)
        base = rng.choice(by_lang[lang])
        if lang == "und":
            caption = f"{base} {rng.randrange(10_000)}" if rng.random() < 0.5 else f"IMG_{rng.randrange(10**6):06d}.jpg"
        else:
            other = rng.choice(by_lang[lang])
            if lang in ("zh", "ja"):
                caption = base + rng.choice(["", " "]) + other[: rng.randint(1, 4)]
            else:
                extra = other.split()[: rng.randint(1, 3)]
                words = (base.split() + extra)[:12]
                if rng.random() < 0.2:
                    words.append(str(rng.randrange(1, 500)))
                caption = " ".join(words)
        out.setdefault(caption, None)
    return list(out)


def langdetect_labels(texts: list[str]) -> list[str]:
    from langdetect import DetectorFactory, detect
    from langdetect.lang_detect_exception import LangDetectException

    DetectorFactory.seed = 0
    labels = []
    for text in texts:
        try:
            lang = detect(text)
        except LangDetectException:  # "No features in text": no letters to go on
            lang = "und"
        labels.append({"zh-cn": "zh", "zh-tw": "zh"}.get(lang, lang))
    return labels


def clipcurate_langid(texts: list[str]) -> tuple[list[str], float]:
    """Labels from a `clipcurate langid` process, and its wall time (start-up included)."""
    data = "".join(t + "\n" for t in texts).encode("utf-8")
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "clipcurate.pipeline.cli", "langid"],
                          input=data, capture_output=True, check=True)
    seconds = time.perf_counter() - start
    lines = proc.stdout.decode("utf-8").splitlines()
    assert len(lines) == len(texts), (len(lines), len(texts))
    return [line.split("\t", 1)[0] for line in lines], seconds


def accuracy(labelled, predicted) -> tuple[float, float]:
    """(accuracy over every row, share of the und rows marked und)."""
    right = sum(want == got for (want, _), got in zip(labelled, predicted))
    und = [got for (want, _), got in zip(labelled, predicted) if want == "und"]
    return right / len(labelled), sum(g == "und" for g in und) / len(und)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    labelled = load_labelled()
    texts = make_captions(labelled, args.n, args.seed)
    print(f"{len(texts)} unique captions, {len(labelled)} labelled "
          f"({sum(l == 'und' for l, _ in labelled)} without language)")

    langdetect_labels(["warm up: load the profiles"])
    start = time.perf_counter()
    langdetect_labels(texts)
    ld_seconds = time.perf_counter() - start
    _, ours_seconds = clipcurate_langid(texts)

    from clipcurate.filters.language import LanguageIdentifier

    start = time.perf_counter()
    identifier = LanguageIdentifier()
    load_seconds = time.perf_counter() - start
    start = time.perf_counter()
    identifier.detect_batch(texts)
    batch_seconds = time.perf_counter() - start

    captions = [caption for _, caption in labelled]
    ld_acc, ld_und = accuracy(labelled, langdetect_labels(captions))
    ours_acc, ours_und = accuracy(labelled, clipcurate_langid(captions)[0])
    junk = [line.split("\t", 1)[1] for line in NOLANGUAGE.read_text(encoding="utf-8").splitlines()]
    ld_junk = sum(lang == "und" for lang in langdetect_labels(junk)) / len(junk)
    ours_junk = sum(lang == "und" for lang in clipcurate_langid(junk)[0]) / len(junk)

    ld_rate, ours_rate = len(texts) / ld_seconds, len(texts) / ours_seconds
    rows = [
        ("captions/s", f"{ld_rate:,.0f}", f"{ours_rate:,.0f}"),
        ("seconds for all", f"{ld_seconds:.2f}", f"{ours_seconds:.2f}"),
        ("accuracy, labelled set", f"{ld_acc:.1%}", f"{ours_acc:.1%}"),
        ("no-language marked und", f"{ld_und:.1%}", f"{ours_und:.1%}"),
        (f"und, {NOLANGUAGE.name}", f"{ld_junk:.1%}", f"{ours_junk:.1%}"),
    ]
    print(f"\n{'':26}{'langdetect (seed 0)':>22}{'clipcurate langid':>20}")
    for name, a, b in rows:
        print(f"{name:26}{a:>22}{b:>20}")
    print(f"\nspeed ratio (whole process vs detect loop): {ours_rate / ld_rate:.1f}x   (target >= 20x)")
    print(f"in process: load {load_seconds * 1000:.0f} ms, detect_batch "
          f"{len(texts) / batch_seconds:,.0f} captions/s ({len(texts) / batch_seconds / ld_rate:.0f}x)")
    print(f"targets: accuracy >= 95% -> {'met' if ours_acc >= 0.95 else 'MISSED'}; "
          f"und >= 75% -> {'met' if ours_und >= 0.75 else 'MISSED'}; "
          f"und on {NOLANGUAGE.name} >= 90% -> {'met' if ours_junk >= 0.9 else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
