"""Operating-system helpers that the application and the projections both use."""
