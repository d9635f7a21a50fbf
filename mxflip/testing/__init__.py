"""Test helpers that adapters (in this repository or elsewhere) can reuse."""
