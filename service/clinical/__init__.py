"""The clinical domain: pure functions over FHIR-shaped dicts. No Flask, no HTTP, no database here."""
