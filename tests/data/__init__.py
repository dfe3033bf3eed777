"""Test data carried with the repository: tests read nothing outside it."""

from pathlib import Path

DATA = Path(__file__).resolve().parent
#: The official HL7 FHIR R4 examples (CC0; see fhir-r4/README.md).
FHIR_EXAMPLES = DATA / "fhir-r4"
