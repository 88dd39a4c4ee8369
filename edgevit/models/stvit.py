"""Placeholder until the family lands (being written)."""
