"""``clipcurate run``'s options: the argparse groups and their help texts (no checking here)."""
from __future__ import annotations

RESIZE_MODES = ("no", "keep_ratio", "keep_ratio_largest", "center_crop", "border")


def add_arguments(parser):
    io_ = parser.add_argument_group("input and output")
    io_.add_argument("--input", nargs="+", default=[], metavar="FILE_OR_GLOB",
                     help="tables of pairs: .parquet, .csv, .tsv, .jsonl (optionally .gz); globs and folders too")
    io_.add_argument("--seeds", metavar="FILE", help="crawl these seed pages (one URL a line) as the first stage")
    io_.add_argument("--max-depth", type=int, default=5,
                     help="with --seeds: links followed from a seed, at most (default 5, as wget -r; --max-pages is the usual bound)")
    io_.add_argument("--max-pages", type=int, default=1000, help="with --seeds: pages fetched per site, at most")
    io_.add_argument("--warc", nargs="+", default=[], metavar="FILE_OR_GLOB",
                     help="Common Crawl WARC (HTML responses) or WAT (metadata) files, gzip'd or not")
    io_.add_argument("--labelled", metavar="DIR", help="an ImageFolder tree or a table with a label column; labels become prompts")
    io_.add_argument("--output", metavar="OUT", help="output folder (running again on the same OUT resumes)")
    io_.add_argument("--retry-failed", metavar="OUT",
                     help="download again the rows of OUT that failed with transient errors (timeouts, 5xx, "
                          "connection errors), with OUT's options, and merge them into OUT")
    io_.add_argument("--url-col", default="url")
    io_.add_argument("--caption-col", default="caption")
    io_.add_argument("--input-format", choices=("parquet", "csv", "tsv", "jsonl"), help="override the format told by the file extension")
    io_.add_argument("--until", choices=("normalize", "dedup", "language", "prompts"), default=None,
                     help="metadata only: stop after this stage (prompts: every caption stage) and write the "
                          "surviving rows as OUT/pairs/NNNNN.parquet, with the rejects and stats; nothing is downloaded")
    io_.add_argument("--samples-per-shard", type=int, default=5000)
    io_.add_argument("--batch-layout", choices=("key", "ontology"), default="key",
                     help="key: shards in key order (default); ontology: runs of --batch-size samples that share a "
                          "parent concept of --ontology (TOnICS hard-negative batches)")
    io_.add_argument("--ontology", metavar="FILE", help="child -> parent concepts: JSON object or child<TAB>parent lines")
    io_.add_argument("--batch-size", type=int, default=None, help="with --batch-layout ontology: the trainer's batch size")
    io_.add_argument("--output-format", choices=("webdataset", "parquet", "both"), default="webdataset",
                     help="webdataset: NNNNN.tar + NNNNN.parquet metadata (default); parquet: NNNNN.parquet with an "
                          "image column (bytes, path) that Hugging Face datasets reads as images, no tar; both")
    io_.add_argument("--work-unit-rows", type=int, default=500,
                     help="rows per download work unit: the granularity of resuming a killed run")

    text = parser.add_argument_group("captions")
    text.add_argument("--max-caption-length", type=int, default=1000, help="characters; longer captions are rejected")
    text.add_argument("--languages", help="comma-separated ISO codes to keep, e.g. en,de (default: keep all, fill the columns)")
    text.add_argument("--language-drop-confidence", type=float, default=None, metavar="P",
                      help="with --languages: drop a caption as another language only when the identifier's "
                           "posterior that it is none of them is at least P; less sure ones are kept and counted "
                           "as kept_uncertain in stats.json (default 0.98, chosen on tests/data/langid_dev.tsv)")
    text.add_argument("--no-language-word-evidence", dest="language_word_evidence", action="store_false",
                      help="with --languages: let no single word move the drop confidence (by default a word only "
                           "another language has lowers it to 0.7, one only a language asked for has raises it "
                           "to 0.9999)")
    text.add_argument("--language-page-prior", type=float, nargs="?", const=float("nan"), default=None, metavar="NATS",
                      help="use the page's declared language (<html lang>, Content-Language; crawl and WARC rows) "
                           "as a prior: NATS added to that language's log posterior (alone: 2.0)")
    text.add_argument("--language-url-prior", type=float, nargs="?", const=float("nan"), default=None, metavar="NATS",
                      help="use the URL's country-code TLD (.de) or language path (/fr/, ?lang=it) of the page, "
                           "else of the image, as a weak prior (alone: 1.0)")
    text.add_argument("--prompt-template", default=None, help='template for label-only captions (default "a photo of a {label}.")')
    text.add_argument("--label-domain", default=None, help='domain hint: "a photo of a {label}, a type of DOMAIN."')
    text.add_argument("--no-prompts", action="store_true", help="leave label-only captions as they are")

    dl = parser.add_argument_group("download")
    dl.add_argument("--image-size", type=int, default=256)
    dl.add_argument("--resize-mode", choices=RESIZE_MODES, default="border")
    dl.add_argument("--encode-format", choices=("jpg", "png", "webp"), default="jpg",
                    help="how resized images are stored (the tar member is KEY.jpg, KEY.png or KEY.webp)")
    dl.add_argument("--min-image-size", type=int, default=32, help="minimum shorter side of the original image, pixels")
    dl.add_argument("--max-image-pixels", type=int, default=80_000_000, help="declared pixel count above which an image is a decompression bomb")
    dl.add_argument("--timeout", type=float, default=10.0, help="total deadline per request, seconds")
    dl.add_argument("--retries", type=int, default=1, help="extra attempts for transient errors")
    dl.add_argument("--max-bytes", type=int, default=20_000_000, help="byte cap on a response body")
    dl.add_argument("--threads", type=int, default=32, help="download threads per worker")
    dl.add_argument("--per-host-concurrency", type=int, default=4)
    dl.add_argument("--allow-private-network", action="store_true",
                    help="allow requests to loopback/private/link-local addresses (tests, intranets)")
    dl.add_argument("--user-agent", default=None, help="User-Agent header (default names the project and a URL)")
    dl.add_argument("--respect-robots-txt", action="store_true", help="fetch robots.txt once per host and obey it for images")

    cur = parser.add_argument_group("curation filters")
    cur.add_argument("--block-urls", nargs="+", default=[], metavar="FILE",
                     help="URL blocklists: one URL a line (# comments), or .parquet/.csv with a url column; checked before download")
    cur.add_argument("--block-hashes", nargs="+", default=[], metavar="FILE",
                     help="sha256 (64 hex) or md5 (32 hex) digests of downloaded image bytes, one a line, or .parquet/.csv "
                          "with a hash, sha256 or md5 column")
    cur.add_argument("--min-words", type=int, default=None, help="minimum caption words (whitespace words)")
    cur.add_argument("--max-words", type=int, default=None, help="maximum caption words")
    cur.add_argument("--min-short-side", type=int, default=None, help="minimum shorter side of the original image (DataComp: 200)")
    cur.add_argument("--max-aspect-ratio", type=float, default=None, help="maximum longer/shorter side of the original image (DataComp: 3.0)")
    cur.add_argument("--near-dedup-distance", type=int, default=6,
                     help="near-duplicate candidates: perceptual hash keys within D bits (default 6); a candidate "
                          "is dropped when its thumbnail confirms it is the same picture as a better-ranked one")
    cur.add_argument("--near-dedup-bands", type=int, default=7,
                     help="hash bands for near-dup candidates (default 7: 9-10-bit bands; 4: 16-bit bands probed "
                          "within distance // bands bits, for runs past a million distinct pictures)")
    cur.add_argument("--no-near-dedup", action="store_true", help="skip near-duplicate image removal")
    cur.add_argument("--semantic-dedup-threshold", type=float, default=None,
                     help="with --clip: drop images whose CLIP embedding has cosine > T with a better-ranked one (SemDeDup)")
    cur.add_argument("--semantic-dedup-cluster-size", type=int, default=1000)
    cur.add_argument("--balance-labels", metavar="FILE", help="MetaCLIP-style balancing: entries one a line, matched in captions")
    cur.add_argument("--balance-cap", type=int, default=None, help="at most about T pairs per matched entry")
    cur.add_argument("--balance-drop-unmatched", action="store_true", help="also drop pairs that match no entry")

    clip = parser.add_argument_group("CLIP scoring and selection")
    clip.add_argument("--clip", metavar="MODEL", help="MODEL_DIR from clipcurate bootstrap, open_clip:ARCH:/path/weights.pt, or hf:/path/to/clip_dir")
    clip.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    clip.add_argument("--clip-batch-size", type=int, default=64)
    sel = clip.add_mutually_exclusive_group()
    sel.add_argument("--min-similarity", type=float, help="keep pairs with cosine similarity >= X")
    sel.add_argument("--keep-fraction", type=float, help="keep the top F of pairs by similarity (a global quantile)")
    clip.add_argument("--false-match-rate", type=float, default=0.01,
                      help="default selection: keep pairs above the (1 - rate) quantile of mismatched-pair similarities")
    clip.add_argument("--max-textness", type=float, default=None,
                      help="drop images whose textness (0..1, a probe on the image embedding) is above this")
    clip.add_argument("--textness-probe", metavar="FILE", default=None,
                      help="the textness probe to use (default: the one `clipcurate textness MODEL` or bootstrap saved "
                           "beside the model; without one, textness is not computed)")
    clip.add_argument("--textness-bias", type=float, default=0.0,
                      help="add S times the textness direction to text embeddings before scoring (< 0 pushes away "
                           "from images that only show the caption's words)")

    beam_ = parser.add_argument_group("Beam")
    beam_.add_argument("--runner", default="DirectRunner",
                       help="DirectRunner (default), dask (a dask.distributed cluster), DataflowRunner, FlinkRunner, "
                            "SparkRunner, ...")
    beam_.add_argument("--workers", type=int, default=1,
                       help="worker processes: of the DirectRunner, or of the local dask cluster that --runner dask starts")
    beam_.add_argument("--dask-address", metavar="tcp://HOST:PORT", default=None,
                       help="with --runner dask: use this running dask scheduler instead of starting a local cluster")
