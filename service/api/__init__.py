"""The HTTP edge: thin Flask blueprints over the protocol and the clinical core."""
