"""A local, faithful Smarticks REST API with deterministic seed data and fault switches.

from etl.sandbox import Sandbox
with Sandbox(seed=1, conversations=200) as sb:
    requests.get(sb.url + "/api/conversations", headers={"X-Smarticks-API-Key": sb.api_key})
"""

from .serve import serve_forever
from .server import Sandbox
from .store import Store

__all__ = ["Sandbox", "Store", "serve_forever"]
