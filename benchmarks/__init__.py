"""Benchmarks of the real Plumbline stack (``make bench``; see ``benchmarks.run``)."""
