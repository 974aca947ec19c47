"""Canonicalization: expression trees to parametric cone programs."""
