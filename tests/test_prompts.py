import pytest

from clipcurate.filters.prompts import (
    DEFAULT_TEMPLATE,
    ENSEMBLE_TEMPLATES,
    PromptConfig,
    PromptRewriter,
    clean_label,
    indefinite_article,
    is_label_like,
    make_prompt,
)


@pytest.mark.parametrize("caption", [
    "dog", "Boxer", "golden_retriever", "goldenRetriever", "golden-retriever", "Golden Retriever",
    "NASA", "t-shirt", "  cat  ", "1800s", "R2D2",
])
def test_label_like_captions(caption):
    assert is_label_like(caption)


@pytest.mark.parametrize("caption", [
    "a dog on a mat",                     # three words
    "big red dog",
    "german_shorthaired_pointer",         # three words after splitting underscores
    "bigRedDog",                          # three words after splitting camelCase
    "Dog.", "Dogs!", "dog, cat", "why?", "note: dog", "cat;dog",  # sentence punctuation
    "IMG_1234.jpg", "photo.png",          # file names
    "http://example.com/dog", "https://x.org", "www.example", "images/dog",  # URLs and paths
    "1234", "12 34", "", "   ", "!!", None,
])
def test_not_label_like(caption):
    assert not is_label_like(caption)


@pytest.mark.parametrize("raw, cleaned", [
    ("golden_retriever", "golden retriever"),
    ("goldenRetriever", "golden retriever"),
    ("Golden   Retriever", "golden retriever"),
    ("__tabby__cat_", "tabby cat"),
    ("NASA_rocket", "NASA rocket"),
    ("USBCable", "USB cable"),
    ("Boxer", "boxer"),
    ("iPhone", "iphone"),
    ("T-Shirt", "t-shirt"),
])
def test_clean_label(raw, cleaned):
    assert clean_label(raw) == cleaned


@pytest.mark.parametrize("phrase, article", [
    ("dog", "a"), ("apple", "an"), ("egg", "an"), ("umbrella", "an"), ("urban park", "an"),
    ("hour", "an"), ("hourglass", "an"), ("honest man", "an"), ("honor guard", "an"), ("heir", "an"),
    ("horse", "a"), ("honey jar", "a"),
    ("unicorn", "a"), ("university", "a"), ("unit", "a"), ("user", "a"), ("European city", "a"),
    ("eulogy", "a"), ("one-way street", "a"), ("once", "a"), ("ewe", "a"), ("U-turn", "a"),
    ("unimportant detail", "an"), ("utter mess", "an"), ("usher", "an"),
    ("FBI agent", "an"), ("MRI", "an"), ("HDMI cable", "an"), ("SUV", "an"), ("X-ray", "an"),
    ("UFO", "a"), ("NASA rocket", "a"), ("CD", "a"), ("USB stick", "a"), ("SCUBA diver", "a"),
    ("8-bit console", "an"), ("11", "an"), ("18-wheeler", "an"), ("80s poster", "an"),
    ("7", "a"), ("1", "a"), ("110", "a"), ("100", "a"),
    ("e-mail", "an"), ("t-shirt", "a"),
])
def test_indefinite_article(phrase, article):
    assert indefinite_article(phrase) == article


def test_default_prompt_fits_article_to_label():
    assert make_prompt("dog") == "a photo of a dog."
    assert make_prompt("apple") == "a photo of an apple."
    assert make_prompt("hour_glass") == "a photo of an hour glass."
    assert make_prompt("goldenRetriever") == "a photo of a golden retriever."
    assert make_prompt("FBI_agent") == "a photo of an FBI agent."
    assert make_prompt("an apple") == "a photo of an apple."  # no doubled article


def test_domain_hint():
    assert make_prompt("boxer", domain="dog") == "a photo of a boxer, a type of dog."
    assert make_prompt("Boxer", domain="dog") == "a photo of a boxer, a type of dog."
    assert PromptRewriter(PromptConfig(domain="animal")).rewrite({"caption": "owl"})["caption"] == (
        "a photo of an owl, a type of animal.")


def test_custom_templates():
    assert make_prompt("owl", "An {label} in the snow!") == "An owl in the snow!"
    assert make_prompt("cat", "An {label} in the snow!") == "A cat in the snow!"
    assert make_prompt("owl", "{label}") == "owl"
    # a {domain} placeholder is filled, with its article fitted
    assert make_prompt("apple", "a {label}, which is a {domain}", domain="edible fruit") == (
        "an apple, which is an edible fruit")
    # without a {domain} placeholder the hint goes before the trailing punctuation, or at the end
    assert make_prompt("boxer", "my {label}!", domain="dog") == "my boxer, a type of dog!"
    assert make_prompt("boxer", "{label}", domain="dog") == "boxer, a type of dog"
    # braces inside a label are text, not placeholders
    assert make_prompt("{domain}", domain="x") == "a photo of a {domain}, a type of x."


def test_bad_templates_are_refused():
    with pytest.raises(ValueError):
        PromptConfig(template="a photo of a thing.")
    with pytest.raises(ValueError):
        PromptConfig(template="a {label} of {size}")
    with pytest.raises(ValueError):
        PromptConfig(template="a {label}, a kind of {domain}")  # no domain given
    with pytest.raises(ValueError):
        make_prompt("___")


def test_ensemble_templates():
    assert 20 <= len(ENSEMBLE_TEMPLATES) <= 40
    assert len(set(ENSEMBLE_TEMPLATES)) == len(ENSEMBLE_TEMPLATES)
    assert DEFAULT_TEMPLATE in ENSEMBLE_TEMPLATES
    for template in ENSEMBLE_TEMPLATES:
        assert template.count("{label}") == 1
        PromptConfig(template=template)
        assert " a apple" not in make_prompt("apple", template)
        assert "{" not in make_prompt("apple", template, domain="fruit")


def test_rewriter_turns_labels_into_prompts_and_keeps_raw_caption():
    rewriter = PromptRewriter(PromptConfig())
    row = {"url": "http://x/1.jpg", "caption": "golden_retriever", "page": 3}
    out = rewriter.rewrite(row)
    assert out == {"url": "http://x/1.jpg", "caption": "a photo of a golden retriever.",
                   "raw_caption": "golden_retriever", "label": "golden retriever", "page": 3}
    assert row["caption"] == "golden_retriever"  # the input row is not changed


def test_rewriter_keeps_existing_label_and_leaves_sentences_alone():
    rewriter = PromptRewriter(PromptConfig())
    assert rewriter.rewrite({"caption": "Boxer", "label": "dog"})["label"] == "dog"
    sentence = {"caption": "orange star icon for a website"}
    assert rewriter.rewrite(sentence) == sentence
    assert rewriter.rewrite({"caption": None}) == {"caption": None}


def test_rewriter_disabled_changes_nothing():
    row = {"caption": "dog"}
    assert PromptRewriter(PromptConfig(enabled=False)).rewrite(row) == row


def test_rewriter_with_custom_template():
    rewriter = PromptRewriter(PromptConfig(template="a drawing of a {label}."))
    assert rewriter.rewrite({"caption": "Eagle"})["caption"] == "a drawing of an eagle."
