"""Health credentials: prove facts from a patient's records to third parties without the records."""
