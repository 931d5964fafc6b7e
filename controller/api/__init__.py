"""REST northbound (FastAPI). OpenAPI at ``/openapi.json``, docs at ``/docs``."""
