"""Hashing, code fingerprints, cache keys and artifact stores."""
