"""The hooks of scientist-literature: the searchers `semantic_scholar`, `openalex` and `offline`, imported when
literature is first searched. scientist_core.searcher.search_with_fallback tries them in the `searchers_order`
setting's order."""

from __future__ import annotations

from scientist_core import hookimpl


@hookimpl
def register_searchers(register):
    from scientist_literature.offline_index import OfflineSearcher
    from scientist_literature.openalex import OpenAlexSearcher
    from scientist_literature.semantic_scholar import SemanticScholarSearcher

    register(SemanticScholarSearcher)
    register(OpenAlexSearcher)
    register(OfflineSearcher)
