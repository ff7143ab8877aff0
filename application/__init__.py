"""Commands of aero-auth. Decisions come from aggregates only."""
