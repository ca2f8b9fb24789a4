"""QuPath I/O: GeoJSON in QuPath's schema, projects through paquo, and Groovy scripts."""
