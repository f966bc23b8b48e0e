"""Leaf utilities every layer may use: atomic files, errors, progress, memory checks,
integrity seals, nnabla's checkpoint formats, deferred imports, resource paths."""
