"""Looking at a finished run: stats.json (counts per stage and reason) and report.html."""
