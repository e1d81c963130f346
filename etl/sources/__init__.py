"""Reading the helpdesks we migrate from, one module per source: HTTP only, nothing saved."""
