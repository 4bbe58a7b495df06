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
    "вид на море с балкона отеля", "мост через Неву", "закат над рекой", "рыбаки на озере",
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
    drop = only.check({"language": "fr", "language_score": 0.994})  # without the posterior: the score is the bound
    assert drop.reason == "language" and drop.message.startswith("detected fr (0.99)")
    assert only.check({"language": "fr", "language_score": 0.934}) is None  # not sure enough: kept
    assert only.uncertain({"language": "fr", "language_score": 0.934})
    assert not only.uncertain({"language": "de", "language_score": 0.4})


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


# ---------------------------------------------------------------- the confidence rule, its data sets, priors

DEV = Path(__file__).parent / "data" / "langid_dev.tsv"
NOLANGUAGE = Path(__file__).parent / "data" / "langid_nolanguage.tsv"
BENCHMARK = Path(__file__).parent.parent / "benchmarks" / "language_filter.py"


def _tsv(path: Path) -> list[tuple[str, str]]:
    return [tuple(line.split("\t", 1)) for line in path.read_text(encoding="utf-8").splitlines()]


def _template_set() -> list[tuple[str, str]]:
    import importlib.util

    spec = importlib.util.spec_from_file_location("language_filter_benchmark", BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.template_set(1000, 0)


def _rates(lid, rows, wanted, **config) -> tuple[float, float, int]:
    """(false drops among wanted-language rows, false keeps among the others, kept uncertain) of the
    filter the language stage applies (bare labels read as their words)."""
    from clipcurate.filters.prompts import clean_label, is_label_like

    guesses = lid.guess_batch([clean_label(c) if is_label_like(c) else c for _, c in rows])
    filt = LanguageFilter(LanguageConfig(languages=wanted, **config))
    shares = filt.wanted_share(guesses)
    drops, keeps, uncertain, n_wanted = 0, 0, 0, 0
    for (truth, _), lang, score, share, clue in zip(rows, guesses.langs, guesses.scores, shares,
                                                     filt.word_clues(guesses)):
        row = {"language": lang, "language_score": score}
        dropped = filt.check(row, float(share), clue) is not None
        uncertain += (not dropped) and filt.uncertain(row)
        if truth in wanted:
            n_wanted += 1
            drops += dropped
        else:
            keeps += not dropped
    return drops / n_wanted, keeps / (len(rows) - n_wanted), uncertain


def test_dev_set_is_short_web_captions_written_for_it():
    rows = _tsv(DEV)
    assert len(rows) >= 600 and len({c for _, c in rows}) == len(rows)
    counts = Counter(lang for lang, _ in rows)
    assert counts["en"] >= 200 and counts["de"] >= 100 and counts["fr"] >= 100 and len(counts) >= 20
    assert all(1 <= len(c.split()) <= 6 for _, c in rows)
    labelled = {c for _, c in _labelled()}
    assert not labelled & {c for _, c in rows}


@pytest.mark.parametrize("wanted, max_drop, max_keep", [
    # targets 1% / 2%; measured (README): en 0.00% / 1.40%, de,fr 0.38% / 0.89%
    (("en",), 0.01, 0.02), (("de", "fr"), 0.01, 0.02),
])
def test_filter_rates_on_the_dev_set(lid, wanted, max_drop, max_keep):
    false_drop, false_keep, uncertain = _rates(lid, _tsv(DEV), wanted)
    assert false_drop <= max_drop and false_keep <= max_keep, (false_drop, false_keep)
    assert uncertain > 0  # doubtful captions are kept, not dropped


@pytest.mark.parametrize("wanted, max_drop, max_keep", [
    # held out (1,000 a language, seed 0); measured (README): en 0.35% / 1.34%, de,fr 0.38% / 1.09%
    (("en",), 0.01, 0.02), (("de", "fr"), 0.01, 0.02),
])
def test_filter_rates_on_the_template_set(lid, wanted, max_drop, max_keep):
    false_drop, false_keep, _ = _rates(lid, _template_set(), wanted)
    assert false_drop <= max_drop and false_keep <= max_keep, (false_drop, false_keep)


def test_drop_confidence_trades_drops_for_keeps(lid):
    rows = _tsv(DEV)
    strict = _rates(lid, rows, ("de", "fr"), drop_confidence=0.5)
    lenient = _rates(lid, rows, ("de", "fr"), drop_confidence=0.999)
    assert strict[0] > lenient[0] and strict[1] < lenient[1]


def _decide(lid, captions, wanted, **config):
    """Per caption (dropped as language?, the word clue) through the real identifier and filter."""
    guesses = lid.guess_batch(captions)
    filt = LanguageFilter(LanguageConfig(languages=wanted, **config))
    clues = filt.word_clues(guesses)
    out = []
    for lang, score, share, clue in zip(guesses.langs, guesses.scores, filt.wanted_share(guesses), clues):
        drop = filt.check({"language": lang, "language_score": score}, float(share), clue)
        out.append((drop, clue))
    return out


def test_a_word_only_another_language_has_lowers_the_drop_confidence(lid):
    from clipcurate.filters.language import FOREIGN_WORD_CONFIDENCE

    # Dutch, Norwegian, French captions the identifier is only 83-96% sure of: a word no English list
    # holds, even wordfreq's large one ("hoedje", "hotellrom", "citrouille"), settles them
    captions = ["party hoedje", "hotellrom", "citrouille d'Halloween"]
    with_words = _decide(lid, captions, ("en",))
    for (drop, clue), word in zip(with_words, ("hoedje", "hotellrom", "citrouille")):
        assert drop is not None and drop.reason == "language" and repr(word) in drop.message
        assert clue.kind == "foreign" and clue.word == word and clue.confidence == FOREIGN_WORD_CONFIDENCE
    assert all(drop is None for drop, _ in _decide(lid, captions, ("en",), word_evidence=False))
    # an English word beside it cancels it: nothing moves, the caption is kept on doubt
    assert _decide(lid, ["platter hoedje"], ("en",)) == [(None, None)]
    # a stricter --language-drop-confidence stays stricter
    assert _decide(lid, ["party hoedje"], ("en",), drop_confidence=0.5)[0][1].confidence == 0.5


def test_a_word_only_a_wanted_language_has_raises_the_drop_confidence(lid):
    from clipcurate.filters.language import KNOWN_WORD_CONFIDENCE

    # German made of an English loanword: 99.94% "not German or French" to the identifier, but
    # "Strampler" is in German's large list and in no other language's list
    (drop, clue), = _decide(lid, ["Baby Strampler"], ("de", "fr"))
    assert drop is None and clue.kind == "known" and clue.word == "strampler"
    assert clue.confidence == KNOWN_WORD_CONFIDENCE
    assert _decide(lid, ["Baby Strampler"], ("de", "fr"), word_evidence=False)[0][0].reason == "language"
    # sure captions are still dropped
    assert _decide(lid, ["a small red house next to the river"], ("de", "fr"))[0][0].reason == "language"


def test_word_evidence_lowers_errors_on_both_sets(lid):
    """Measured with and without it on the development set and the held-out template set: neither rate
    higher, one of them lower, and fewer false keeps for en everywhere."""
    for rows in (_tsv(DEV), _template_set()):
        for wanted in (("en",), ("de", "fr")):
            on = _rates(lid, rows, wanted)
            off = _rates(lid, rows, wanted, word_evidence=False)
            assert on[0] <= off[0] and on[1] <= off[1] and on[:2] != off[:2], (wanted, on, off)
            assert on[1] < off[1] or wanted != ("en",), (on, off)


def test_no_word_evidence_without_a_word_list_for_every_wanted_language(lid):
    # langdetect knows Afrikaans, wordfreq has no list for it: nothing can be missing from it
    assert [clue for _, clue in _decide(lid, ["party hoedje", "Baby Strampler"], ("af",))] == [None, None]
    assert [clue for _, clue in _decide(lid, ["party hoedje"], ("af", "en"))] == [None]


def test_wide_word_lists_are_cached_and_reach_rarer_words(tmp_path):
    from clipcurate.filters.lexicon import load_wordlist, word_hash, wordfreq_code

    assert (wordfreq_code("no"), wordfreq_code("zh"), wordfreq_code("tl"), wordfreq_code("en")) == ("nb", "zh", "fil", "en")
    built = load_wordlist("en", cache=str(tmp_path / "en"))
    again = load_wordlist("en", cache=str(tmp_path / "en"))
    assert isinstance(again.hashes, np.memmap) and np.array_equal(built.hashes, again.hashes)
    logf = again.log_freq_of_hashes(word_hash(["mitten", "the", "strampler"]))
    # "mitten" is rarer than the small lists' 1e-6 in English, but in its large list
    assert np.log(1e-8) <= logf[0] < np.log(1e-6) and logf[1] > np.log(1e-2) and logf[2] == -np.inf
    assert load_wordlist("af", cache=str(tmp_path / "af")) is None


def test_no_language_strings_get_und(lid):
    rows = _tsv(NOLANGUAGE)
    assert len(rows) >= 100 and len({c for _, c in rows}) == len(rows)
    assert set(kind for kind, _ in rows) == {"code", "file", "hash", "units", "emoji", "mash", "url", "acronym"}
    assert not {c for _, c in _labelled()} & {c for _, c in rows}
    results = lid.detect_batch([c for _, c in rows])
    misses = [(kind, c, lang) for (kind, c), (lang, _) in zip(rows, results) if lang != "und"]
    assert 1 - len(misses) / len(rows) >= 0.9, misses


@pytest.mark.parametrize("word", ["asdfgh", "qwertz", "poiuytre", "jkljkl", "aaaaaa", "hahaha", "sdfsdf", "zxcvbnm"])
def test_keyboard_mashes(word):
    from clipcurate.filters.language import is_mash

    assert is_mash(word)


def test_real_words_are_not_mashes():
    from clipcurate.filters.language import is_mash

    words = {w.lower() for rows in (_labelled(), _tsv(DEV)) for _, c in rows for w in c.split() if w.isalpha()}
    assert not [w for w in words if is_mash(w)]
    assert not any(is_mash(w) for w in ("murmur", "couscous", "bonbon", "rhythm", "strengths", "tree"))


def test_units_after_numbers_and_copy_suffixes_are_no_language(lid):
    assert lid.detect("2 in 1 charging cable")[0] == "en"  # "in" is a unit only after a number
    for text in ("6 ft 2 in", "30 x 40 x 15 cm", "5000 mAh", "photo (2).jpg"):
        assert lid.detect(text)[0] == "und", text


def test_guess_batch_posterior_sums_to_one_and_matches_detect(lid):
    captions = [c for _, c in _labelled()]
    guesses = lid.guess_batch(captions)
    assert guesses.pairs() == lid.detect_batch(captions)
    sums = guesses.posterior.sum(axis=1)
    assert np.allclose(sums[guesses.valid], 1.0) and np.all(sums[~guesses.valid] == 0)
    assert np.allclose(guesses.share_of(["en"]) + guesses.share_of(
        [c for c in set(guesses.codes) if c != "en"]), guesses.valid)


def test_compound_words_count_for_their_language(lid):
    assert lid.detect("Laptoptasche wasserdicht")[0] == "de"
    assert lid.detect("Küchenmesser Set")[0] == "de"


def test_language_tags_and_urls_give_hints():
    from clipcurate.filters.language import language_of_tag, page_hints, url_languages

    assert [language_of_tag(t) for t in ("de-AT", "zh-Hant", "nb", "pt_BR", "xx", "", None)] == \
        ["de", "zh", "no", "pt", None, None, None]
    assert page_hints("de, en", 2.0) == (("de", 2.0), ("en", 2.0))
    assert page_hints("de", 0.0) == ()
    assert url_languages("https://shop.example.de/produkte/1.jpg") == ("de",)
    assert url_languages("https://example.com/fr/produits/") == ("fr",)
    assert url_languages("https://example.com/pt-br/loja") == ("pt",)
    assert url_languages("https://example.com/p?id=3&lang=it") == ("it",)
    assert url_languages("https://example.ch/x") == ("de", "fr", "it")
    assert url_languages("https://example.com/id/12345") == ()  # "id" alone is not a language
    assert url_languages("https://example.com/images/a.jpg") == () and url_languages("not a url") == ()


def test_page_prior_decides_only_doubtful_captions():
    from clipcurate.filters.language import PAGE_PRIOR, row_hints

    config = LanguageConfig(languages=("en",), page_prior=PAGE_PRIOR, url_prior=1.0)
    lid, filt = LanguageIdentifier(config), LanguageFilter(config)

    def decide(caption, **row):
        guesses = lid.guess_batch([caption], [row_hints(row, config)])
        out = {"language": guesses.langs[0], "language_score": guesses.scores[0]}
        return guesses.langs[0], filt.check(out, float(filt.wanted_share(guesses)[0]))

    ambiguous = "tennis de table"  # a French caption of English-looking words
    assert decide(ambiguous)[0] == "en"
    assert decide(ambiguous, page_language="fr")[0] == "fr"
    assert decide(ambiguous, url="https://boutique.example.fr/pull.jpg")[0] == "fr"
    # a sure caption stays what it is, whatever the page says
    assert decide("a golden retriever puppy sleeping on a blue blanket", page_language="de") == ("en", None)
    assert decide("ein kleiner Hund schläft auf dem Sofa", page_language="en")[1].reason == "language"
    # off by default
    plain = LanguageConfig(languages=("en",))
    assert row_hints({"page_language": "fr", "url": "https://example.fr/a.jpg"}, plain) == ()


def test_page_prior_lowers_false_drops_and_keeps_on_the_dev_set():
    from clipcurate.filters.language import PAGE_PRIOR, page_hints

    rows = _tsv(DEV)
    for wanted in (("en",), ("de", "fr")):
        filt = LanguageFilter(LanguageConfig(languages=wanted))
        lid = LanguageIdentifier()
        errors = []
        for hints in (None, [page_hints(lang, PAGE_PRIOR) for lang, _ in rows]):
            guesses = lid.guess_batch([c for _, c in rows], hints)
            shares = filt.wanted_share(guesses)
            wrong = sum((1 - s >= filt.config.drop_confidence) == (lang in wanted) for (lang, _), s in zip(rows, shares))
            errors.append(wrong)
        assert errors[1] < errors[0], (wanted, errors)


def test_pages_declare_their_language():
    from clipcurate.pipeline.sources.crawler import parse_page

    page = '<html lang="de-DE"><body><img src="/a.jpg" alt="Hund im Park"></body></html>'
    assert parse_page(page, "http://example.com/").pairs[0].row()["page_language"] == "de-DE"
    meta = '<html><head><meta http-equiv="Content-Language" content="fr"></head><img src="/a.jpg" alt="chat"></html>'
    assert parse_page(meta, "http://example.com/").pairs[0].page_language == "fr"
    bare = '<html><img src="/a.jpg" alt="cat"></html>'
    assert parse_page(bare, "http://example.com/", content_language="en").pairs[0].page_language == "en"
    assert "page_language" not in parse_page(bare, "http://example.com/").pairs[0].row()


def test_config_rejects_bad_thresholds():
    for kwargs in ({"drop_confidence": 0.0}, {"drop_confidence": 1.5}, {"page_prior": -1}, {"url_prior": -0.5}):
        with pytest.raises(ValueError):
            LanguageConfig(**kwargs)
