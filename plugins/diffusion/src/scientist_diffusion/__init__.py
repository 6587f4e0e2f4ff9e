"""The 2-D diffusion research template for scientist; the plugin itself lives in `scientist_diffusion.plugin`."""

__version__ = "0.1.0"
