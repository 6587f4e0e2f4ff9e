"""A local model for scientist: Qwen2.5-Coder-Instruct run by llama.cpp on the CPU, offline and free.

The plugin lives in `scientist_llm_local.plugin`; `scientist-llm-local install` puts the weights in place.
"""

__version__ = "0.1.0"
