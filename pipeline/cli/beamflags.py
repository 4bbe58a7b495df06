"""Beam flags on our command lines: any flag a Beam options class knows is passed through (a typo is
an error, not silently dropped), and the object-store ones (``--s3_endpoint_url``, ...) configure our
file access too, in this process and in the worker processes it starts."""
from __future__ import annotations

from clipcurate.pipeline import files as fs
from clipcurate.pipeline.cli.errors import UsageError


def unknown_beam_args(extra: list) -> list:
    """Flags that neither clipcurate nor any Beam runner knows (a typo would otherwise be dropped silently)."""
    from apache_beam.options.pipeline_options import PipelineOptions, _BeamArgumentParser

    def subclasses(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from subclasses(sub)

    parser = _BeamArgumentParser(add_help=False, allow_abbrev=False)
    for cls in dict.fromkeys(subclasses(PipelineOptions)):
        cls._add_argparse_args(parser)
    _, unknown = parser.parse_known_args(list(extra))
    return [u for u in unknown if u.startswith("-")]


def use_beam_flags(extra: list, what: str = "a clipcurate option") -> None:
    """Check Beam flags and hand them to the file layer (FileSystems options for s3://, gs://, ...)."""
    unknown = unknown_beam_args(extra)
    if unknown:
        raise UsageError(f"unrecognized option {unknown[0]} (not {what} nor a Beam pipeline option)")
    fs.configure(list(extra))
