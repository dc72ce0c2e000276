"""The extractive span reader over retrieved regions, with noise-resilient training (issue 7)."""
