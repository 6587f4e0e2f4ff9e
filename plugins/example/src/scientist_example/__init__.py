"""An example research template for scientist; the plugin itself lives in `scientist_example.plugin`."""

__version__ = "0.1.0"
