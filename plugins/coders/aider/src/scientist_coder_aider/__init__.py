"""aider as a scientist coder: aider edits a run's copy of the template, from its own virtual environment."""

__version__ = "0.1.0"
