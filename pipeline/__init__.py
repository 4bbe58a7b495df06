"""clipcurate pipeline stages and CLI."""
