"""Zero-code capture: run scripts under observation."""
