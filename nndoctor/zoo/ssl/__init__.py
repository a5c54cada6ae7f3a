"""Self-supervised pretext tasks (one file per family)."""
