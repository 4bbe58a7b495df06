"""Deduplication stages: exact (URL+caption, image bytes), near (perceptual hash), semantic (CLIP embeddings)."""
