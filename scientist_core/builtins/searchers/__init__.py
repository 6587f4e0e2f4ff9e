"""The built-in literature searchers: `semantic_scholar`, `openalex` and `offline`.

Each module imports its HTTP client or SQLite only when it searches, so registering them costs little.
scientist_core.literature.search_with_fallback tries them in the `searchers_order` setting's order.
"""

from __future__ import annotations

from scientist_core.builtins.searchers.offline_index import OfflineSearcher
from scientist_core.builtins.searchers.openalex import OpenAlexSearcher
from scientist_core.builtins.searchers.semantic_scholar import SemanticScholarSearcher
from scientist_core.hookspecs import hookimpl

__all__ = ["OfflineSearcher", "OpenAlexSearcher", "SemanticScholarSearcher"]


@hookimpl
def register_searchers(register):
    register(SemanticScholarSearcher)
    register(OpenAlexSearcher)
    register(OfflineSearcher)
