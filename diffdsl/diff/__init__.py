"""Derivatives of the cone program's solution map (P, c, A, b) ↦ (x, y, s)."""
