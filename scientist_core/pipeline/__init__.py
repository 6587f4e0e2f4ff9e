"""The research pipeline, one module per stage."""
