"""gridmap: electronic grid map ("一张图") for community grid governance on PostGIS."""

__version__ = "0.1.0"
