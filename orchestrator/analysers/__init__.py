"""Builtin analysers: offline, deterministic, no model downloads. One module per pipeline."""
