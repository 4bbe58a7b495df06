"""The Beam stages between sources and sinks: one composite PTransform per stage, each returning (kept, rejects)."""
