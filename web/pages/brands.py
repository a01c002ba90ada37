"""Pages for brand guidelines: the list of a person's brands (with a form to start one), and
one brand's editor with colour pickers, font choices, voice and personas, logo and mood
images picked from the library, and a live preview of the palette and fonts.

The server renders the shell and decides only who may see it: another tenant's brand is a
404 page, exactly like one that does not exist (the lookup is the API's own, under the
person's tenant). The page's script reads and saves the brand through ``/v1/brands``.
"""

from __future__ import annotations

from typing import Any

from faktry.errors import NotFound
from pipelines.brands import schema, store
from web.auth import db
from web.pages import blueprint, person, render

#: Offered in the editor's font fields (any family the schema takes may be typed instead).
FONT_CHOICES = (
    "Inter", "Roboto", "Open Sans", "Lato", "Montserrat", "Poppins", "Source Sans Pro", "Merriweather",
    "Playfair Display", "Lora", "Georgia", "Helvetica", "Arial", "Verdana", "Times New Roman",
    "Courier New", "DejaVu Sans", "DejaVu Serif", "Liberation Sans", "Liberation Serif", "Noto Sans",
    "Noto Serif",
)  # fmt: skip


@blueprint.get("/brands")
@person
def brands_list() -> Any:
    return render("brands.html", title="Brands", active="brands", max_name=schema.MAX_NAME)


@blueprint.get("/brands/<brand_id>")
@person
def brand_edit(brand_id: str) -> Any:
    try:
        brand = store.get(db(), brand_id)
    except NotFound:
        return render("error.html", title="Not found", message="There is no such brand."), 404
    return render(
        "brands_edit.html",
        title=f"Brand {brand.name}",
        active="brands",
        brand_id=brand.id,
        fonts=FONT_CHOICES,
        limits=schema,
    )
