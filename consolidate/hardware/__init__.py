"""The hardware catalog (data files shipped in the package) and, later, the micro-architectural core model."""
