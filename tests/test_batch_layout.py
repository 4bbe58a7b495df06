"""--batch-layout ontology (TOnICS): shards ordered so that a trainer reading them in order with batch size B
meets runs of B samples that share a parent concept; measured against the default key order."""
from __future__ import annotations

import glob
import itertools
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import webdataset as wds

from clipcurate.filters.ontology import ConceptMatcher, OntologyError, load_ontology
from clipcurate.pipeline.cli import main as cli_main
from clipcurate.pipeline.media import draw

ONTOLOGY = {"dog": ["boxer", "beagle", "poodle", "husky"], "cat": ["siamese", "persian", "sphynx", "bengal"],
            "car": ["sedan", "coupe", "pickup truck", "minivan"]}
PER_CHILD = {"dog": (7, 6, 6, 7), "cat": (6, 6, 6, 6), "car": (5, 6, 6, 5)}  # 26, 24, 22: two parents leave a rest
B = 8
ARGS = ["--allow-private-network", "--timeout", "5", "--retries", "0", "--image-size", "48", "--no-near-dedup",
        "--samples-per-shard", "16"]


@pytest.fixture(scope="module")
def labelled_web(web, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tonics")
    ontology = tmp / "ontology.tsv"
    ontology.write_text("# child<TAB>parent\n" + "".join(f"{c}\t{p}\n" for p, cs in ONTOLOGY.items() for c in cs)
                        + "dog\tanimal\ncat\tanimal\n")
    rng = np.random.default_rng(11)
    rows, shapes = [], itertools.cycle(draw.LABELS)
    for parent, children in ONTOLOGY.items():
        for child, n in zip(children, PER_CHILD[parent]):
            for i in range(n):
                body = draw.encode_jpeg(draw.make_image(next(shapes), rng, 64))
                url = web.add(f"/tonics/{child.replace(' ', '_')}-{i}.jpg", body=body, content_type="image/jpeg")
                rows.append({"url": url, "caption": f"a photo of a {child}, picture {i}"})
    for i in range(10):
        body = draw.encode_jpeg(draw.make_image(next(shapes), rng, 64))
        rows.append({"url": web.add(f"/tonics/other-{i}.jpg", body=body, content_type="image/jpeg"),
                     "caption": f"a sunset over the sea, picture {i}"})
    src = tmp / "pairs.parquet"
    pq.write_table(pa.Table.from_pylist(rows), src)
    return str(src), str(ontology)


def _stream(out) -> list[str]:
    """The captions in the order a trainer reading the shards in order meets them."""
    tars = sorted(glob.glob(str(out / "shards" / "*.tar")))
    return [s["txt"].decode() for s in wds.WebDataset(tars, shardshuffle=False)]


def same_parent_share(captions: list[str], matcher: ConceptMatcher, b: int) -> float:
    """Of the in-batch pairs of samples that both name a concept, the share whose parents are the same."""
    same = total = 0
    for start in range(0, len(captions), b):
        parents = [matcher.parent_of(c) for c in captions[start:start + b]]
        for x, y in itertools.combinations([p for p in parents if p], 2):
            total += 1
            same += x == y
    return same / total


def test_ontology_batches_share_a_parent_far_more_than_key_order(labelled_web, tmp_path, capsys):
    src, ontology = labelled_web
    matcher = ConceptMatcher(load_ontology(ontology))
    key, tonics = tmp_path / "key", tmp_path / "tonics"
    assert cli_main(["run", "--input", src, "--output", str(key), *ARGS]) == 0
    assert cli_main(["run", "--input", src, "--output", str(tonics), *ARGS, "--batch-layout", "ontology",
                     "--ontology", ontology, "--batch-size", str(B)]) == 0
    stream = _stream(tonics)
    assert sorted(stream) == sorted(_stream(key)) and len(stream) == 82
    share_key, share_tonics = same_parent_share(_stream(key), matcher, B), same_parent_share(stream, matcher, B)
    with capsys.disabled():
        print(f"\nsame-parent share of in-batch pairs (B={B}): key order {share_key:.2f}, ontology layout "
              f"{share_tonics:.2f}")
    assert share_tonics >= 0.9 and share_key <= 0.5
    # every full batch of a parent is whole and pure: 3 dog, 3 cat, 2 car batches; the rest is mixed
    batches = [stream[i:i + B] for i in range(0, len(stream), B)]
    pure = [b for b in batches if len(b) == B and len({matcher.parent_of(c) for c in b}) == 1
            and matcher.parent_of(b[0])]
    assert sorted(matcher.parent_of(b[0]) for b in pure) == ["car"] * 2 + ["cat"] * 3 + ["dog"] * 3
    # shards hold whole batches: 16 each but the last (82 = 5 x 16 + 2); the short batch is last
    sizes = json.load(open(tonics / "shards" / "sizes.json"))
    assert list(sizes.values()) == [16] * 5 + [2]
    # the same input and options give the same bytes
    again = tmp_path / "again"
    assert cli_main(["run", "--input", src, "--output", str(again), *ARGS, "--batch-layout", "ontology",
                     "--ontology", ontology, "--batch-size", str(B)]) == 0
    for path in sorted(glob.glob(str(tonics / "shards" / "*"))):
        assert open(path, "rb").read() == open(path.replace(str(tonics), str(again)), "rb").read(), path


def test_the_most_specific_concept_wins_and_bad_files_are_one_line_errors(tmp_path, capsys):
    path = tmp_path / "o.json"
    path.write_text(json.dumps({"Boxer": "dog", "dog": "animal", "Pickup Truck": "car"}))
    matcher = ConceptMatcher(load_ontology(str(path)))
    assert matcher.parent_of("my dog, a BOXER") == "dog"  # boxer is deeper than dog
    assert matcher.parent_of("a dog") == "animal" and matcher.parent_of("a red pickup-truck") == "car"
    assert matcher.parent_of("a boxers' club") is None and matcher.parent_of("x", label="boxer") == "dog"
    bad = tmp_path / "bad.tsv"
    bad.write_text("boxer dog cat\n")
    with pytest.raises(OntologyError, match="line 1"):
        load_ontology(str(bad))
    src = tmp_path / "in.csv"
    src.write_text("url,caption\nhttp://127.0.0.1/x.jpg,a boxer\n")
    assert cli_main(["run", "--input", str(src), "--output", str(tmp_path / "o"), "--batch-layout", "ontology",
                     "--ontology", str(bad), "--batch-size", "8"]) == 2
    assert "line 1" in capsys.readouterr().err
    assert cli_main(["run", "--input", str(src), "--output", str(tmp_path / "o"), "--batch-layout", "ontology",
                     "--ontology", str(path), "--batch-size", "7"]) == 2
    assert "divide --samples-per-shard" in capsys.readouterr().err
