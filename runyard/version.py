"""runyard's version (its run client inside built environments is keyed by it)."""
__version__ = "0.1.0"
