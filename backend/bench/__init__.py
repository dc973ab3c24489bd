"""`motiongpt3 bench`: benchmarks that print numbers and ratios (motion core, model fast path, server)."""
