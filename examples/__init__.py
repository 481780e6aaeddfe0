"""Runnable agents that show the whole platform (importable as endure.examples)."""
