"""Health records: FHIR validation, canonical form, sealing, storage and commitments."""
