"""The benchmark harness (bench/README.md): `make bench`, `make soak`."""
