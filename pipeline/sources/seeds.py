"""The seed set for training the bootstrap CLIP, read as decoded samples.

A labelled folder or table (its local images, grouped by label), or a
folder of curated shards (each pair its own group, for a bootstrapping
round). Read on the machine that trains; the model code in ``pipeline.clip``
takes the samples and never reads a source itself.
"""
from __future__ import annotations

from clipcurate.pipeline.clip.data import Sample, pair_samples, read_seed_images, read_shard_pairs, shard_files
from clipcurate.pipeline.sources.labelled import labelled_images


def training_samples(source, image_size: int) -> tuple[list[Sample], list[str]]:
    """(samples, seed labels) from a labelled folder/table or from curated shards."""
    max_side = 2 * image_size
    if shard_files(source):
        samples = pair_samples(read_shard_pairs(source), max_side, first_group=0)
        labels: list[str] = []
    else:
        samples = read_seed_images(labelled_images(source), max_side)
        labels = sorted({s.label for s in samples})
    if len(samples) < 2:
        raise ValueError(f"{source} has fewer than 2 readable training images")
    return samples, labels
