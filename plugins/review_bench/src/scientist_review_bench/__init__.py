"""`scientist review-bench` as a plugin: it adds its command through `register_commands`, like any third party."""

__version__ = "0.1.0"
