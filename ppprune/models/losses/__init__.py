"""Detection losses as graph ops (no data-dependent control flow, so static programs stay fixed)."""
