"""The CLIP models: the bootstrap CLIP (plain torch) and loaders for pretrained checkpoints."""
