"""Stores: metadata (runs, metrics, ...) and artifacts (files)."""
