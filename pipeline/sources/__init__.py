"""Where records enter: tables, labelled folders/tables, a crawl, WARC/WAT files; the bootstrap seed set."""
