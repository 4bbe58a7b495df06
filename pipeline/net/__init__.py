"""Safe fetching: a whole-request deadline, the private-address guard, robots.txt cache, per-host slots, the fetcher."""
