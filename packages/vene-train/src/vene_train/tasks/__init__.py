"""Reusable task setups for alignment experiments (datasets, causal models, training recipes)."""

__all__: list[str] = []
