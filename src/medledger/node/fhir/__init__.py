"""The node's FHIR R4 REST API (``/fhir``).

Beside authorisation and the data path, it has pure pieces every route uses, with no
network, database or caller of their own: Bundles (``bundle.py``), OperationOutcomes
and the status of each refusal (``outcome.py``), the CapabilityStatement
(``capability.py``) and content negotiation (``content.py``). Search runs on records
already opened: ``records/fhir_search/``.
"""
