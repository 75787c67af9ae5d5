"""A small document set written for the demo (project text, free to redistribute)."""

from __future__ import annotations

__all__ = ["DEMO_DOCUMENTS", "DEMO_QUERIES"]

DEMO_DOCUMENTS: dict[str, str] = {
    "photosynthesis": (
        "Green plants turn light into chemical energy. In the chloroplasts of their leaves, chlorophyll "
        "absorbs sunlight, water is split, and carbon dioxide from the air is fixed into sugars. Oxygen is "
        "released as a by-product, which is why forests and algae keep the atmosphere breathable."
    ),
    "vaccines": (
        "A vaccine trains the immune system without causing the disease. It presents a harmless piece or "
        "weakened form of a pathogen, so that B cells learn to make antibodies and memory cells remember the "
        "threat. A later infection is then met quickly, before it can make the person seriously ill."
    ),
    "tides": (
        "Ocean tides come mostly from the Moon's gravity pulling unevenly on the Earth. The water bulges on "
        "the side facing the Moon and on the opposite side, so most coasts see two high tides a day. When Sun "
        "and Moon line up, spring tides are larger; at right angles, neap tides are smaller."
    ),
    "rust": (
        "Rust is a systems programming language that prevents memory errors at compile time. Its ownership "
        "rules and borrow checker ensure that references never outlive the data they point to and that data "
        "races cannot happen, without the pauses of a garbage collector."
    ),
    "sql-index": (
        "A database index is a sorted structure, usually a B-tree, that lets the engine find rows without "
        "scanning the whole table. Indexes speed up lookups and joins on the indexed columns but make inserts "
        "and updates slower, because every index must be kept up to date."
    ),
    "vector-search": (
        "Vector search finds the items whose embeddings lie closest to a query embedding. Exact search compares "
        "against every vector; approximate methods such as HNSW graphs visit only a small neighbourhood and "
        "answer in milliseconds over millions of points, trading a little recall for speed."
    ),
    "bm25": (
        "BM25 ranks documents by the query words they contain. Rare words count more than common ones through "
        "inverse document frequency, repeated words help with diminishing returns, and long documents are "
        "penalised slightly so they do not win just by containing more text."
    ),
    "sourdough": (
        "Sourdough bread rises without commercial yeast. A starter of flour and water hosts wild yeasts and "
        "lactic acid bacteria; fed daily, it ferments the dough slowly, producing gas for the rise and the "
        "acids that give the crumb its tang and keep the loaf fresh for longer."
    ),
    "espresso": (
        "Espresso is brewed by forcing hot water at about nine bars of pressure through finely ground, tightly "
        "packed coffee. A shot takes roughly twenty-five seconds and yields a concentrated drink topped with "
        "crema, the foam of emulsified oils and carbon dioxide."
    ),
    "marathon": (
        "The marathon covers 42.195 kilometres. Runners prepare for months, building weekly mileage and one long "
        "run per week; during the race, glycogen stores run low near the thirtieth kilometre, which is why "
        "experienced runners take carbohydrates on the way."
    ),
    "volcano": (
        "A volcano forms where molten rock reaches the surface. At subduction zones, water released from a "
        "sinking plate lowers the melting point of the mantle above it, and the sticky, gas-rich magma that "
        "results tends to erupt explosively."
    ),
    "bees": (
        "Honey bees communicate the location of food with the waggle dance. The angle of the dance relative to "
        "vertical gives the direction of the flowers relative to the sun, and the length of the waggle run "
        "tells how far away they are."
    ),
}

DEMO_QUERIES: tuple[str, ...] = (
    "How do plants produce oxygen?",
    "Why are there two high tides each day?",
    "memory safety without garbage collection",
    "What makes sourdough taste sour?",
    "approximate nearest neighbour search",
)
