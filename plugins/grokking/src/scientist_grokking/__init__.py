"""The grokking research template for scientist; the plugin itself lives in `scientist_grokking.plugin`."""

__version__ = "0.1.0"
