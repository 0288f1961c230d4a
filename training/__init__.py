"""Offline training code: not installed with the package, run from the repository root."""
