"""Ingot: capacity, flows and ownership ledgers for strategic and non-ferrous metals policy."""

__version__ = "0.1.0"
