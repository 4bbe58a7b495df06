"""Metadata balancing (MetaCLIP-style): entry matching and the per-entry cap, through Beam."""
from __future__ import annotations

import apache_beam as beam
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from clipcurate.filters.balance import BalanceConfig, EntryMatcher, entry_rank, load_entries
from clipcurate.pipeline.stages.curate import Balance


@pytest.fixture
def entries_file(tmp_path):
    path = tmp_path / "entries.txt"
    path.write_text("# MetaCLIP-style entries\nDog\ncat\nNew York\n\nhot-dog\n")
    return str(path)


def test_matching_is_case_insensitive_on_word_boundaries(entries_file):
    matcher = EntryMatcher(load_entries(entries_file))
    assert matcher.matches("A DOG in New-York") == ("dog", "new york")
    assert matcher.matches("concatenate dogma") == ()
    assert matcher.matches("hot dog stand, cat.") == ("cat", "dog", "hot dog")
    assert matcher.matches("new  york") == ("new york",)
    assert matcher.matches("") == () and matcher.matches(None) == ()


def test_an_entry_list_with_no_entries_is_an_error(tmp_path):
    path = tmp_path / "empty.txt"
    path.write_text("# nothing\n\n")
    with pytest.raises(ValueError, match="no entries"):
        load_entries(str(path))
    with pytest.raises(ValueError):
        BalanceConfig(str(path), cap=0)


CAP = 10


def make_rows():
    rows = [{"key": f"dog{i:02d}", "caption": f"a photo of a dog number {i}"} for i in range(30)]
    rows += [{"key": f"cat{i}", "caption": f"my Cat {i}"} for i in range(5)]
    rows += [{"key": f"both{i}", "caption": f"dog and cat {i}"} for i in range(3)]
    rows += [{"key": f"none{i}", "caption": f"a sunset {i}"} for i in range(4)]
    return rows


def expected_dogs_kept():
    """The documented rule: the CAP smallest ranks of (key, entry) among the rows matching "dog"."""
    dog_keys = [f"dog{i:02d}" for i in range(30)] + [f"both{i}" for i in range(3)]
    chosen = sorted(dog_keys, key=lambda k: entry_rank(k, "dog"))[:CAP]
    return sorted(k for k in chosen if k.startswith("dog"))


@pytest.mark.parametrize("reverse", [False, True])
def test_cap_per_entry_any_entry_keeps_and_unmatched_kept(entries_file, reverse):
    rows = make_rows()
    rows = rows[::-1] if reverse else rows
    dogs = expected_dogs_kept()
    kept_keys = sorted(dogs + [f"cat{i}" for i in range(5)] + [f"both{i}" for i in range(3)] + [f"none{i}" for i in range(4)])
    dropped = sorted(f"dog{i:02d}" for i in range(30) if f"dog{i:02d}" not in dogs)
    assert len(dropped) >= 30 - CAP
    with TestPipeline() as p:
        kept, rejects = p | beam.Create(rows) | Balance(BalanceConfig(entries_file, cap=CAP))
        assert_that(kept | "K" >> beam.Map(lambda r: r["key"]), equal_to(kept_keys), label="Kept")
        assert_that(rejects | "R" >> beam.Map(lambda r: (r["key"], r["stage"], r["reason"])),
                    equal_to([(k, "balance", "balance_cap") for k in dropped]), label="Rejects")


def test_drop_unmatched(entries_file):
    rows = make_rows()
    with TestPipeline() as p:
        kept, rejects = p | beam.Create(rows) | Balance(BalanceConfig(entries_file, cap=100, drop_unmatched=True))
        assert_that(kept | "K" >> beam.combiners.Count.Globally(), equal_to([38]), label="Kept")
        assert_that(rejects | "R" >> beam.Map(lambda r: (r["key"], r["reason"], "no entry" in r["error_message"])),
                    equal_to([(f"none{i}", "balance_cap", True) for i in range(4)]), label="Rejects")
