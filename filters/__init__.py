"""Per-record filters: each returns keep or a snake_case reason."""
