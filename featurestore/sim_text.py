"""Vocabulary of the simulated SMPD world: category tree, places, titles, tags, user texts.

The 11 top-level ``Category`` strings are SMPD format constants (FORMAT.md §4). Every
subcategory and concept below is invented for this simulator (not taken from the real
data); the tree keeps the real quirks: 11/77/668 nodes, five subcategories with a comma,
five subcategories equal to their category, concepts as lower-case hashtag-like words.

The tree and word lists do not depend on the simulation seed; texts drawn from them do.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# FORMAT.md §4: category shares of the real train split (third-party README), in %.
CATEGORY_SHARES: dict[str, float] = {
    "Travel&Active&Sports": 21.75, "Holiday&Celebrations": 17.92, "Fashion": 16.13, "Entertainment": 9.68,
    "Social&People": 7.64, "Whether&Season": 6.64, "Animal": 6.54, "Food": 5.47, "Urban": 5.00,
    "Electronics": 1.84, "Family": 1.40,
}

# category -> "Subcategory: four root words; ..." (77 subcategories in all).
_TREE_SPEC: dict[str, str] = {
    "Animal": (
        "Pets: pet puppy kitty doggo; Wildlife: wildlife safari wildanimal fauna; Birdwatching: bird birding "
        "feathers owl; Insects: insect butterfly bug beetle; Horses: horse pony equine stable; Aquarium: fish "
        "aquarium reef coral; Farm,Animals: farm cow sheep goat"),
    "Electronics": (
        "Electronics: gadget tech electronic device; Smartphones: phone smartphone mobile touchscreen; "
        "Cameras: camera lens rangefinder tripod; Computers: computer laptop keyboard desktop; Consoles: "
        "console gamer controller arcade"),
    "Entertainment": (
        "Music: music concert guitar band; Movies: movie cinema filmset popcorn; Reading: book library novel "
        "reading; Theatre: theatre stage drama actor; Festivals: festival crowd livemusic carnival; Art: "
        "painting artwork gallery sketch; Dance: dance ballet dancer hiphop"),
    "Family": (
        "Family: family familytime home together; Kids: kid toddler children playtime; Babies: baby newborn "
        "infant babyshower; Parents: mom dad parenting mother"),
    "Fashion": (
        "Fashion: fashion outfit style ootd; Streetstyle: streetstyle streetwear lookbook urbanstyle; Shoes: "
        "shoes sneakers heels boots; Accessories: jewelry wristwatch handbag sunglasses; Makeup: makeup "
        "lipstick beauty cosmetics; Hairstyle: hair hairstyle braids haircut; Menswear: menswear suit dapper "
        "beard; Models: model photoshoot portrait modeling; Vintage: vintage retro thrift classic"),
    "Food": (
        "Food: food foodie yummy delicious; Baking: cake baking bread pastry; Drinks: coffee tea cocktail "
        "drink; Fruit: fruit berries apple citrus; Street,Food: streetfood tacos foodtruck burger; Healthy: "
        "salad vegan healthyfood smoothie; Restaurants: restaurant dinner brunch chef"),
    "Holiday&Celebrations": (
        "Christmas: christmas xmas santa christmastree; Halloween: halloween costume pumpkin spooky; "
        "Weddings: wedding bride weddingday ceremony; Birthdays: birthday party birthdaycake balloons; "
        "NewYear: newyear fireworks countdown celebration; Easter: easter eastereggs bunny springholiday; "
        "Valentines: valentine hearts roses romance; Vacation: vacation holiday getaway resort"),
    "Social&People": (
        "Friends: friends friendship besties squad; Selfies: selfie me faces smile; Couples: couple kiss "
        "inlove dating; Portraits: headshot portraiture face eyes; Crowds: people strangers citylife candid; "
        "Quotes: quote motivation inspiration words; Morning,Mood: morning mood goodvibes wakeup"),
    "Travel&Active&Sports": (
        "Travel: travel wanderlust trip explore; Hiking: hiking mountains trail outdoors; Beach: beach sea "
        "ocean waves; Cycling: cycling bike bicycle mtb; Running: running marathon runner jogging; Football: "
        "football soccer stadium goal; Fitness,Gym: fitness gym workout training; Watersports: surfing kayak "
        "sailing swim; Snowsports: ski snowboard skiing slopes"),
    "Urban": (
        "Urban: urban city downtown metropolis; Architecture: architecture building facade tower; Murals: "
        "mural streetpainting wallart spraypaint; Nightlife: nightlife neon citylights bar; Transport: train "
        "subway tram bus; Bridges: bridge river waterfront harbour; Skylines: skyline rooftop cityscape "
        "skyscraper"),
    "Whether&Season": (
        "Autumn: autumn fall leaves foliage; Winter: winter snow frost cold; Spring: spring blossom flowers "
        "bloom; Summer: summer sunshine sunny heatwave; Rain,Storm: rain storm clouds thunder; Sunsets: "
        "sunset sunrise goldenhour dusk; Sky: sky bluesky rainbow cloudscape"),
}
SUBCATEGORIES: dict[str, list[tuple[str, tuple[str, ...]]]] = {
    cat: [(part.split(":")[0].strip(), tuple(part.split(":")[1].split())) for part in spec.split(";")]
    for cat, spec in _TREE_SPEC.items()
}
SUFFIXES = ("lover", "life", "photography", "love", "daily", "time", "gram", "vibes", "art", "addict", "oftheday",
            "world", "moments", "shot", "lovers", "club", "mood")
N_CONCEPTS = 668

# (UTC offset minutes, timezone label, weight, [(city, country, lat, lon)]): where the simulated users live.
PLACES: list[tuple[int, str, float, list[tuple[str, str, float, float]]]] = [
    (-480, "America/Los_Angeles", 9, [("San Francisco", "USA", 37.7749, -122.4194),
                                      ("Seattle", "USA", 47.6062, -122.3321)]),
    (-420, "America/Denver", 2, [("Denver", "USA", 39.7392, -104.9903)]),
    (-360, "America/Chicago", 5, [("Chicago", "USA", 41.8781, -87.6298), ("Austin", "USA", 30.2672, -97.7431)]),
    (-300, "America/New_York", 12, [("New York", "USA", 40.7128, -74.006), ("Toronto", "Canada", 43.6532, -79.3832)]),
    (-180, "America/Sao_Paulo", 4, [("S\u00e3o Paulo", "Brazil", -23.5505, -46.6333)]),
    (0, "Europe/London", 10, [("London", "UK", 51.5074, -0.1278), ("Dublin", "Ireland", 53.3498, -6.2603)]),
    (60, "Europe/Paris", 22, [("Paris", "France", 48.8566, 2.3522), ("Berlin", "Germany", 52.52, 13.405),
                              ("Madrid", "Spain", 40.4168, -3.7038), ("Roma", "Italy", 41.9028, 12.4964),
                              ("K\u00f6ln", "Germany", 50.9375, 6.9603)]),
    (120, "Europe/Athens", 4, [("Athens", "Greece", 37.9838, 23.7275), ("Helsinki", "Finland", 60.1699, 24.9384)]),
    (180, "Europe/Moscow", 3, [("Moscow", "Russia", 55.7558, 37.6173)]),
    (330, "Asia/Kolkata", 3, [("Mumbai", "India", 19.076, 72.8777)]),
    (420, "Asia/Bangkok", 2, [("Bangkok", "Thailand", 13.7563, 100.5018)]),
    (480, "Asia/Singapore", 4, [("Singapore", "Singapore", 1.3521, 103.8198), ("Taipei", "Taiwan", 25.033, 121.5654)]),
    (540, "Asia/Tokyo", 4, [("Tokyo", "Japan", 35.6762, 139.6503)]),
    (600, "Australia/Sydney", 3, [("Sydney", "Australia", -33.8688, 151.2093)]),
]
GENERIC_TAGS = ("photo", "photography", "nikon", "canon", "sony", "fujifilm", "iphone", "instagood", "picoftheday",
                "photooftheday", "beautiful", "nature", "color", "light", "blackandwhite", "bw", "art", "love",
                "instadaily", "follow", "street", "travelgram", "happy", "fun", "cute", "bokeh", "35mm", "50mm",
                "hdr", "landscape", "macro", "longexposure", "explore", "vsco", "lumix", "olympus", "flickr",
                "amazing", "weekend", "today")
ADJECTIVES = ("Lovely", "Golden", "Quiet", "Happy", "Sunny", "Lazy", "Little", "Blue", "Wild", "Old", "Sweet", "Early",
              "Last", "Misty", "Bright", "Soft", "Tiny", "Big", "Crazy", "First")
NON_ASCII_BITS = ("caf\u00e9", "\u00e9t\u00e9", "m\u00fcnchen", "se\u00f1or", "\u65e5\u66dc\u65e5", "\u2764",
                  "\U0001f60d", "\U0001f4f7", "\u00bfqu\u00e9?", "\u2014", "na\u00efve", "\u00c5land")
SYLLABLES = ("ka", "ri", "mo", "lu", "sen", "ta", "vi", "no", "da", "el", "mar", "to", "bi", "ra", "zo", "fe", "li",
             "an", "jo", "ne", "su", "kei", "ol", "pa", "rin", "go", "dex", "mi", "ul", "sa")
CAMERA_PREFIXES = ("DSC_", "IMG_", "P10", "DSCF", "_MG_")


@dataclass(frozen=True)
class CategoryTree:
    """Fixed 11/77/668 tree. Index arrays map each node to its parent."""

    categories: tuple[str, ...]          # (11,)
    subcategories: tuple[str, ...]       # (77,)
    sub_parent: np.ndarray               # (77,) int, category index
    sub_roots: tuple[tuple[str, ...], ...]
    concepts: tuple[str, ...]            # (668,)
    concept_parent: np.ndarray           # (668,) int, subcategory index
    category_p: np.ndarray               # (11,) float, real category shares (sum 1)


def build_tree() -> CategoryTree:
    """The category tree: 77 subcategories, 668 concepts, each concept under exactly one subcategory."""
    cats = tuple(CATEGORY_SHARES)
    subs, parents, roots = [], [], []
    for ci, cat in enumerate(cats):
        for name, words in SUBCATEGORIES[cat]:
            subs.append(name), parents.append(ci), roots.append(words)
    rng = np.random.default_rng(20150101)  # fixed: the tree is part of the world, not of the seed
    counts = rng.integers(5, 13, len(subs))
    while counts.sum() != N_CONCEPTS:
        i = rng.integers(len(subs))
        counts[i] = np.clip(counts[i] + np.sign(N_CONCEPTS - counts.sum()), 4, 14)
    seen: set[str] = set()
    concepts, cparent = [], []
    for si, words in enumerate(roots):
        combos = [w + s for s in SUFFIXES for w in words]
        cands = dict.fromkeys(list(words) + [combos[i] for i in rng.permutation(len(combos))])
        picked = [c for c in cands if c not in seen][: counts[si]]
        seen.update(picked)
        concepts += picked
        cparent += [si] * len(picked)
    share = np.array([CATEGORY_SHARES[c] for c in cats])
    return CategoryTree(cats, tuple(subs), np.array(parents), tuple(roots), tuple(concepts), np.array(cparent),
                        share / share.sum())


def place_table() -> tuple[np.ndarray, list[str], list[tuple[str, str, float, float]], np.ndarray, np.ndarray]:
    """Flatten PLACES to one row per city: (offsets_min, tz_ids, cities, weights, zone index)."""
    offs, tzs, cities, w, zone = [], [], [], [], []
    for z, (off, tz, weight, cs) in enumerate(PLACES):
        for c in cs:
            offs.append(off), tzs.append(tz), cities.append(c), w.append(weight / len(cs)), zone.append(z)
    w = np.array(w)
    return np.array(offs), tzs, cities, w / w.sum(), np.array(zone)


def format_offset(minutes: int) -> str:
    """UTC offset minutes -> ``"+01:00"`` / ``"-08:00"`` / ``"+05:30"``."""
    sign = "-" if minutes < 0 else "+"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def ascii_fold(text: str) -> str:
    """Lower-case tag form: letters and digits only, accents dropped (``"São Paulo"`` -> ``"saopaulo"``)."""
    import unicodedata

    norm = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(ch for ch in norm.lower() if ch.isalnum())


def make_pathaliases(rng: np.random.Generator, n: int) -> list[str]:
    """``n`` unique lower-case Flickr-style aliases made of invented syllables, words and digits."""
    out, seen = [], set()
    kinds = rng.choice(5, size=n, p=[0.35, 0.2, 0.2, 0.15, 0.1])
    words = [w for _, subs in SUBCATEGORIES.items() for _, ws in subs for w in ws if w.isalpha()]
    for k in kinds:
        syl = "".join(SYLLABLES[i] for i in rng.integers(0, len(SYLLABLES), rng.integers(2, 5)))
        if k == 0:
            a = syl
        elif k == 1:
            a = f"{syl}{int(rng.integers(1, 2000))}"
        elif k == 2:
            a = f"{syl}{'_-'[int(rng.integers(2))]}{words[int(rng.integers(len(words)))]}"
        elif k == 3:
            a = f"{words[int(rng.integers(len(words)))]}{syl}photo"
        else:
            a = str(int(rng.integers(10**5, 10**11)))
        while a in seen:
            a += str(int(rng.integers(10)))
        seen.add(a)
        out.append(a)
    return out


def make_description(rng: np.random.Generator, city: str, roots: tuple[str, ...], alias: str) -> str:
    """A short raw profile text with the HTML quirks of Flickr (``&amp;``, ``<a ... rel="nofollow">``)."""
    parts = [
        f"Amateur photographer based in {city}.", f"I love {roots[0]} &amp; {roots[1]}.",
        f"Shooting {roots[2]} since {int(rng.integers(1995, 2015))}.",
        f'Portfolio: <a href="http://www.{alias}-photo.example.com" rel="nofollow">www.{alias}-photo.example.com</a>',
        "Please do not use my images without permission.", "Fot\u00f3grafo aficionado \U0001f4f7",
        "Gear: mirrorless &amp; a 35mm prime.", "Thanks for the faves &amp; comments!",
    ]
    k = int(rng.integers(1, 4))
    return " ".join(parts[i] for i in np.sort(rng.choice(len(parts), k, replace=False)))


def make_title(kind: int, u: tuple[float, float, float, float], concept: str, roots: tuple[str, ...], city: str) -> str:
    """One title of ``kind``: 0 empty, 1 camera default, 2 short, 3 descriptive, 4 hashtag style, 5 non-ASCII.

    ``u`` holds four uniforms in [0, 1) that make every choice (drawn in bulk by the caller).
    """
    r = roots[int(u[0] * len(roots))]
    adj = ADJECTIVES[int(u[1] * len(ADJECTIVES))]
    if kind == 0:
        return ""
    if kind == 1:
        return f"{CAMERA_PREFIXES[int(u[1] * len(CAMERA_PREFIXES))]}{int(u[2] * 9999):04d}"
    if kind == 2:
        return concept.capitalize() if u[2] < 0.5 else f"{adj} {r}"
    if kind == 3:
        if u[2] < 0.5:
            return f"{adj} {r} in {city}, {2014 + int(u[3] * 3)}"
        return f"{r.capitalize()} - {city} #{1 + int(u[3] * 30)}"
    if kind == 4:
        a, b, c = (SYLLABLES[int(x * len(SYLLABLES))] for x in (u[1], u[2], u[3]))
        return f"{r.capitalize()} with @{a}{b}{c}__ #{concept} #{r} #instagood..."
    return f"{r.capitalize()} {NON_ASCII_BITS[int(u[2] * len(NON_ASCII_BITS))]} {city}"


def make_tags(rng: np.random.Generator, n_tags: np.ndarray, concept: np.ndarray, tree: CategoryTree,
              city_tag: np.ndarray, insta: np.ndarray) -> list[str]:
    """``Alltags`` strings: the concept first, then related, generic and place words; machine tags for
    Instagram uploads. ``n_tags`` (P,) counts ordinary tags; returns P space-joined strings."""
    sub = tree.concept_parent
    sub_words = [list(tree.sub_roots[s]) + [c for c, p in zip(tree.concepts, sub) if p == s]
                 for s in range(len(tree.subcategories))]
    total = int(n_tags.sum())
    kinds = rng.choice(3, size=total, p=[0.55, 0.35, 0.10]).tolist()
    picks = rng.integers(0, 1 << 30, size=total).tolist()
    digits = [f"{a}{b}" for a, b in zip(rng.integers(10**17, 10**18, len(n_tags)).tolist(),
                                        rng.integers(10**8, 10**9, len(n_tags)).tolist())]
    out, pos = [], 0
    pools = [sub_words[s] for s in sub[concept].tolist()]
    for i, (n, c, pool, ins) in enumerate(zip(n_tags.tolist(), concept.tolist(), pools, insta.tolist())):
        words = [tree.concepts[c]] if n else []
        for k, r in zip(kinds[pos:pos + n - 1], picks[pos:pos + n - 1]):
            if k == 0:
                words.append(pool[r % len(pool)])
            else:
                words.append(GENERIC_TAGS[r % len(GENERIC_TAGS)] if k == 1 else city_tag[i])
        pos += n
        tags = list(dict.fromkeys(words))
        if ins:
            tags += ["uploaded:by=instagram", f"instagram:photo={digits[i]}"]
        out.append(" ".join(tags))
    return out
