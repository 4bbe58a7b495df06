"""The demo's synthetic data: a labelled seed set and a small web of pages served on loopback."""
