"""The clipcurate pipeline, by role: sources -> stages -> sinks, assembled in ``flow``, driven by ``cli``.

Below them: ``net`` (safe fetching), ``media`` (image checks, resize, drawing), ``clip`` (models and
scoring), ``files`` (atomic writes, local containment), ``imports`` (img2dataset, imported once)."""
