"""Interfaces: HTTP, CLI, settings and the composition root that wires them."""
