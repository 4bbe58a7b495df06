"""Where records leave: WebDataset shards + Parquet + sizes.json, the rejects table, selection.json."""
