"""Developer scripts: the test-bed build (`testbed.sh`) and the benchmarks (`bench`)."""
