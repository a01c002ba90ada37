"""Brand guidelines: a tenant's brands, each a name, a palette, typography, a voice, an
audience with buyer personas, mood images and design-system notes (see docs/brands.md).

``models`` holds the table, ``schema`` the JSON Schema of a brand's body and its checks,
``store`` creates, reads, changes and deletes brands, ``book`` writes one brand out as
Markdown or JSON.
"""
