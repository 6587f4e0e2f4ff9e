"""The nanoGPT research template for scientist; the plugin itself lives in `scientist_nanogpt.plugin`."""

__version__ = "0.1.0"
