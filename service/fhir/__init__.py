"""Reading the EHR's FHIR server: bearer token, timeouts, paging, one deadline, no stray hosts."""
