"""Read models built from the events, rebuildable from position 0."""
