"""The fixed set of reasons a record can be dropped for, each owned by one stage.

One reason string per way a record can be dropped. Filters return a reason
from this table; the shared adapter fills in the stage.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Reason:
    code: str
    stage: str
    description: str


# the order rows pass the stages in, for the funnel in stats.json and the report
FUNNEL = ("ingest", "normalize", "dedup", "blocklist", "quality", "language", "download", "image",
          "image_dedup", "clip", "select", "balance", "internal")

_TABLE = [
    # ingest / normalize
    Reason("malformed_row", "ingest", "the input line could not be parsed (wrong field count, invalid JSON)"),
    Reason("missing_url", "normalize", "the URL is empty or null"),
    Reason("malformed_url", "normalize", "the URL cannot be parsed or has no host"),
    Reason("unsupported_scheme", "normalize", "the URL's scheme is not http or https"),
    Reason("empty_caption", "normalize", "the caption is empty after cleanup"),
    Reason("caption_too_long", "normalize", "the caption is longer than the cap after cleanup"),
    # dedup
    Reason("duplicate_pair", "dedup", "the same URL and caption appeared earlier in the input"),
    Reason("duplicate_url", "dedup", "the URL appeared earlier in the input with another caption"),
    # blocklists
    Reason("blocked_url", "blocklist", "the URL is on a blocklist"),
    Reason("blocked_hash", "blocklist", "the image's sha256 or md5 is on a blocklist"),
    # language
    Reason("language", "language", "the caption's language is not among those asked for"),
    Reason("no_language", "language", "the caption has no letters to identify a language from"),
    # caption/image quality
    Reason("caption_word_count", "quality", "the caption has too few or too many words"),
    Reason("small_image", "quality", "the image's shorter side is below the minimum"),
    Reason("aspect_ratio", "quality", "the image's aspect ratio is above the maximum"),
    # download
    Reason("private_address", "download", "the host resolves to a private, loopback, link-local or multicast address"),
    Reason("bad_redirect", "download", "a redirect pointed to a URL that is not allowed or not valid"),
    Reason("too_many_redirects", "download", "more redirects than allowed, or a redirect loop"),
    Reason("http_error", "download", "the server answered with an HTTP error status"),
    Reason("timeout", "download", "no complete answer within the deadline"),
    Reason("connection_error", "download", "the connection failed, was refused or was reset"),
    Reason("opted_out", "download", "an X-Robots-Tag header opts the image out (noai, noimageai, noindex, noimageindex)"),
    Reason("tdm_reserved", "download", "the TDM-Reservation header reserves text and data mining rights"),
    Reason("robots_disallowed", "download", "robots.txt disallows fetching this URL"),
    Reason("too_large", "download", "the response body is larger than the byte cap"),
    Reason("empty_body", "download", "the response body is empty"),
    Reason("local_file_error", "download", "a labelled image file could not be read, or lies outside its folder"),
    # image
    Reason("not_an_image", "image", "the bytes are not an image format that can be read"),
    Reason("decode_error", "image", "the image is truncated or corrupt"),
    Reason("decompression_bomb", "image", "the image's declared pixel count is above the limit"),
    Reason("image_too_small", "image", "the image is smaller than the minimum image size"),
    Reason("resize_error", "image", "the image could not be resized or encoded"),
    # image dedup
    Reason("duplicate_image", "image_dedup", "the same image bytes were kept for another pair"),
    Reason("near_duplicate_image", "image_dedup", "a perceptually identical image was kept for another pair"),
    Reason("semantic_duplicate", "image_dedup", "an image with a near-identical CLIP embedding was kept"),
    # CLIP
    Reason("low_similarity", "select", "the CLIP similarity of image and caption is below the threshold"),
    Reason("text_heavy", "select", "the image's textness is above the maximum"),
    Reason("scoring_error", "clip", "the pair could not be scored"),
    # balancing
    Reason("balance_cap", "balance", "the pair's matched entry already has its cap of samples"),
    # anywhere
    Reason("internal_error", "internal", "an unexpected error while processing this record"),
]

REASONS: dict[str, Reason] = {r.code: r for r in _TABLE}

