"""Developer tools run from the repository (``./dev cluster``, the benchmarks, the tests): not part
of the engine package, so the engine never imports them."""
