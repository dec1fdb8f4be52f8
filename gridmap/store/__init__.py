"""The store: PostGIS. Every SQL statement of gridmap lives in this package."""
