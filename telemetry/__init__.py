"""CPN package."""
