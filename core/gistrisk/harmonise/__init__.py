"""Feature harmonisation across sites (scanners, protocols): reference-site ComBat and site files."""
