"""Small shared helpers with one job each (no torch): atomic writes, arch keys, RNG state, numbers."""
