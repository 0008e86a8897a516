"""Sampling plans, on-demand sampling runs and the sample-size helper."""
