"""The benchmark harness (README "Benchmark"): `make bench`, `make soak`."""
