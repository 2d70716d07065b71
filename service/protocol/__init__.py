"""CDS Hooks 2.0.1 wire format: JSON Schemas for requests and feedback, prefetch templates."""
