"""Side-by-side performance measurements (not tests)."""
