"""Coverage-guided fuzz targets (atheris) for kbroker's parsers: see fuzz/README.md."""
