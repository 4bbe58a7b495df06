"""Language identification on short captions, the language filter and `clipcurate langid`."""
from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from clipcurate.filters.base import Drop
from clipcurate.filters.language import (
    DEFAULT_CACHE,
    LanguageConfig,
    LanguageFilter,
    LanguageIdentifier,
    load_ngram_model,
)

LABELLED = Path(__file__).parent / "data" / "langid_labelled.tsv"
REQUIRED = ("en", "de", "fr", "es", "it", "pt", "nl", "ru", "zh", "ja", "und")


def _labelled() -> list[tuple[str, str]]:
    rows = []
    for line in LABELLED.read_text(encoding="utf-8").splitlines():
        lang, caption = line.split("\t", 1)
        rows.append((lang, caption))
    return rows


@pytest.fixture(scope="module")
def lid() -> LanguageIdentifier:
    return LanguageIdentifier()


def test_labelled_set_is_short_and_covers_every_required_language():
    rows = _labelled()
    counts = Counter(lang for lang, _ in rows)
    assert all(counts[lang] >= 40 for lang in REQUIRED), counts
    assert len({caption for _, caption in rows}) == len(rows)
    assert all(1 <= len(caption.split()) <= 12 for _, caption in rows)


def test_accuracy_on_labelled_short_captions(lid):
    rows = _labelled()
    results = lid.detect_batch([caption for _, caption in rows])
    wrong = [(lang, got, caption) for (lang, caption), (got, _) in zip(rows, results) if got != lang]
    accuracy = 1 - len(wrong) / len(rows)
    assert accuracy >= 0.95, wrong
    for lang in REQUIRED:  # no language is sacrificed for the average
        n = sum(1 for want, _ in rows if want == lang)
        misses = sum(1 for want, _, _ in wrong if want == lang)
        assert misses / n <= 0.2, (lang, [w for w in wrong if w[0] == lang])


def test_scores_are_probabilities_and_und_scores_zero(lid):
    results = lid.detect_batch([caption for _, caption in _labelled()])
    assert all(0.0 <= score <= 1.0 for _, score in results)
    assert all(score == 0.0 for lang, score in results if lang == "und")
    named = [score for lang, score in results if lang != "und"]
    assert sum(score > 0.5 for score in named) >= 0.8 * len(named)


@pytest.mark.parametrize("text", [
    "", "   ", "IMG_1234.jpg", "DSC_0042.JPG", "20230517_143022.jpg", "12345", "3.14",
    "https://example.com/a/b.png", "www.example.org/page", "user@example.com", "😀🍕❤️",
    "★★★★☆", "d41d8cd98f00b204e9800998ecf8427e", "SKU-88213-BLK", "1/250s f/2.8 ISO 400",
    "#2023 #2024", "--- ... !!!", "a",
])
def test_no_language_gives_und(lid, text):
    assert lid.detect(text) == ("und", 0.0)


def test_detect_never_raises_on_odd_input(lid):
    odd = ["\x00\x01", "\u200b\u200d", "ｆｕｌｌｗｉｄｔｈ ｔｅｘｔ", "e\u0301te\u0301", "ǅ ǈ ǋ", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
           "a" * 5000, "Ελληνικά και English", "\ud83d"]
    for text, (lang, score) in zip(odd, lid.detect_batch(odd)):
        assert isinstance(lang, str) and 0.0 <= score <= 1.0, text


def test_deterministic_across_calls_instances_and_batching(lid):
    captions = [caption for _, caption in _labelled()]
    first = lid.detect_batch(captions)
    assert lid.detect_batch(captions) == first
    assert LanguageIdentifier().detect_batch(list(reversed(captions))) == list(reversed(first))
    assert [lid.detect(c) for c in captions[::7]] == first[::7]


def test_small_word_cache_gives_the_same_answers(lid):
    captions = [caption for _, caption in _labelled()]
    small = LanguageIdentifier(word_cache_size=10)  # cleared between almost every batch
    answers = []
    for i in range(0, len(captions), 7):
        answers += small.detect_batch(captions[i:i + 7])
    assert answers == lid.detect_batch(captions)


@pytest.mark.parametrize("text, lang", [
    ("上海外滩夜景", "zh"),            # Han only: Chinese (langdetect says Korean)
    ("一碗牛肉麵", "zh"),              # traditional characters are zh too
    ("Xiaomi Redmi 手机壳", "zh"),
    ("東京タワーの夜景", "ja"),          # kana present: Japanese
    ("赤いワンピース", "ja"),
    ("Canon EOS R5 カメラ", "ja"),
    ("서울의 야경", "ko"),              # Hangul: Korean
    ("아이폰 케이스 투명", "ko"),
    ("Samsung Galaxy S23 смартфон черный", "ru"),  # Cyrillic outweighs brand names
    ("Καλοκαίρι στη θάλασσα", "el"),
])
def test_script_decides_first(lid, text, lang):
    assert lid.detect(text)[0] == lang


@pytest.mark.parametrize("text", [
    "вид на море с балкона", "мост через Неву", "закат над рекой", "рыбаки на озере",
    "фото бабушки и дедушки", "горы Кавказа летом",
])
def test_short_russian_is_not_bulgarian(lid, text):
    assert lid.detect(text)[0] == "ru"


@pytest.mark.parametrize("text", [
    "een hond die op het strand rent", "fietsen geparkeerd langs het water",
    "zonsondergang boven de zee", "verse stroopwafels op een bord",
])
def test_short_dutch_is_not_afrikaans(lid, text):
    assert lid.detect(text)[0] == "nl"


def test_cached_profiles_match_the_installed_langdetect_profiles():
    assert os.path.exists(DEFAULT_CACHE)
    cached, parsed = load_ngram_model(), load_ngram_model(cache=None)
    assert cached.langs == parsed.langs and cached.vocab == parsed.vocab
    assert np.array_equal(cached.log_prob, parsed.log_prob)
    assert np.array_equal(cached.script_langs, parsed.script_langs)


def test_min_letters_controls_und():
    strict = LanguageIdentifier(LanguageConfig(min_letters=12))
    assert strict.detect("ein Hund")[0] == "und"
    assert strict.detect("ein kleiner Hund schläft auf dem Sofa")[0] == "de"


@pytest.mark.parametrize("kwargs", [
    {"languages": "en"}, {"languages": ("en", "")}, {"min_letters": 0}, {"temperature": 0},
    {"smoothing": 0}, {"prior_weight": -1},
])
def test_config_rejects_bad_values(kwargs):
    with pytest.raises(ValueError):
        LanguageConfig(**kwargs)


def test_filter_keeps_everything_when_no_languages_requested():
    keep_all = LanguageFilter(LanguageConfig())
    assert keep_all.check({"language": "und", "language_score": 0.0}) is None
    assert keep_all.check({"language": "fr", "language_score": 0.9}) is None


def test_filter_reasons():
    only = LanguageFilter(LanguageConfig(languages=("en", "de")))
    assert only.check({"language": "en", "language_score": 0.99}) is None
    assert only.check({"language": "de", "language_score": 0.4}) is None
    assert only.check({"language": "und", "language_score": 0.0}) == Drop("no_language")
    assert only.check({"language": "fr", "language_score": 0.934}) == Drop("language", "detected fr (0.93)")


def _run_langid(stdin: str, *args: str) -> subprocess.CompletedProcess:
    code = (
        "import sys\n"
        "from clipcurate.pipeline.cli import main\n"
        "rc = main(['langid', *sys.argv[1:]])\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('apache_beam', 'torch'))\n"
        "print('HEAVY', heavy, file=sys.stderr)\n"
        "sys.exit(rc)\n"
    )
    return subprocess.run([sys.executable, "-c", code, *args], input=stdin.encode("utf-8"),
                          capture_output=True, timeout=60)


def test_cli_labels_each_line_without_importing_beam_or_torch():
    lines = ["a dog on the beach", "", "IMG_1234.jpg", "кошка спит на диване",
             "東京タワーの夜景", "un chat noir dort sur le canapé\r"]
    proc = _run_langid("\n".join(lines) + "\n", "--batch-size", "2")
    assert proc.returncode == 0, proc.stderr
    assert "HEAVY []" in proc.stderr.decode()
    out = proc.stdout.decode("utf-8").split("\n")
    assert out[-1] == ""
    rows = [line.split("\t") for line in out[:-1]]
    assert len(rows) == len(lines)
    assert all(len(r) == 3 and len(r[1]) == 5 and 0.0 <= float(r[1]) <= 1.0 for r in rows)
    assert [r[0] for r in rows] == ["en", "und", "und", "ru", "ja", "fr"]
    assert [r[2] for r in rows] == [line.rstrip("\r") for line in lines]
    assert rows[1][1] == "0.000"


def test_cli_rejects_bad_batch_size():
    proc = _run_langid("hello world\n", "--batch-size", "0")
    assert proc.returncode == 2
    assert "--batch-size" in proc.stderr.decode()
