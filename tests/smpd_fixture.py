"""Tiny hand-written SMPD directories in either release layout, for parser tests.

``write_smpd(tmp_path, release="2022", user_form="columns")`` writes three train posts and
two test posts with the quirks of FORMAT.md; tests then corrupt single files.
"""

from __future__ import annotations

import json
from pathlib import Path

TRAIN = [
    # pid, uid, category, subcategory, concept, title, tags, postdate, lat, lon, acc, alias, label
    ("775", "59@N75", "Entertainment", "Music", "punk", "Luis Drayton - Edinburgh shoot #6",
     "rock punk uploaded:by=flickstagram", "1425963866", "52.520213", "13.373097", "16", "luisdrayton", "7.46"),
    ("1075", "1@N18", "Fashion", "Health,Fitness", "yoga", "", "", "1425000000", "0", "", "0", "None", "11.98"),
    ("4890", "1@N18", "Electronics", "Electronics", "samsunggalaxy", "Caf\u00e9 @friend #tech", "phone",
     "1426000000", "0", "", "0", "None", "3.46"),
]
TEST = [
    ("50731", "8770@N36", "Social&People", "Love", "hugs", "hug", "hugs love", "1450000000", "0", "", "0", "None", None),
    ("96454", "10082@N16", "Entertainment", "Books", "imagine", "read", "books", "1450100000", "40.1", "-3.5", "11",
     "90250231n0510041136096", None),
]

NAMES = {
    "2022": {"text": "{s}_text.json", "temporal": "{s}_temporalspatial_information.json",
             "additional": "{s}_additional_information.json", "user": "{s}_user_data.json",
             "image_list": "{s}_img_filepath.txt"},
    "2019": {"text": "{s}_tags.json", "temporal": "{s}_temporalspatial.json",
             "additional": "{s}_additional.json", "user": "{s}_userdata.json", "image_list": "{s}_img.txt"},
}


def _dump(path: Path, obj: object) -> None:
    path.write_text(json.dumps(obj), encoding="ascii")


def _user_records(rows: list[tuple]) -> list[dict]:
    out = []
    for i, r in enumerate(rows):
        out.append({"photo_firstdate": "None" if i == 1 else "1213743830", "photo_count": str(100 * (i + 1)),
                    "ispro": str(i % 2), "canbuypro": "0", "timezone_offset": "1", "photo_firstdatetaken": "1204010100",
                    "timezone_timezone_id": "9",
                    "user_description": ",".join(["0.5"] * 399) if i == 0 else ",".join(["0"] * 399),
                    "location_description": "\n" if i else ",".join(["0.25"] * 400) + ",\n"})
    return out


def _user_columns(rows: list[tuple]) -> dict:
    cols = {"Uid": [r[1] for r in rows], "Pid": [int(r[0]) for r in rows],
            "photo_firstdate": [None if i == 1 else "1213743830" for i in range(len(rows))],
            "photo_count": [1813.0 if i != 1 else None for i in range(len(rows))],
            "ispro": [float(i % 2) for i in range(len(rows))],
            "timezone_offset": ["+01:00" if i != 1 else None for i in range(len(rows))],
            "photo_firstdatetaken": ["2013-04-02 17:52:16" for _ in rows],
            "timezone_id": ["Europe/Berlin" if i != 1 else None for i in range(len(rows))],
            "user_description": ["I shoot <a href=\"x\" rel=\"nofollow\">bands</a> &amp; gigs" if i == 0 else None
                                 for i in range(len(rows))],
            "location_description": ["Edinburgh, UK" if i == 0 else None for i in range(len(rows))]}
    return {c: {str(i): v for i, v in enumerate(vals)} for c, vals in cols.items()}


def write_split(folder: Path, split: str, rows: list[tuple], release: str, user_form: str) -> None:
    names = {k: v.format(s=split) for k, v in NAMES[release].items()}
    _dump(folder / f"{split}_category.json",
          [{"Category": r[2], "Concept": r[4], "Pid": r[0], "Uid": r[1], "Subcategory": r[3]} for r in rows])
    _dump(folder / names["text"], [{"Alltags": r[6], "Pid": r[0], "Uid": r[1], "Mediatype": "photo", "Title": r[5]}
                                   for r in rows])
    _dump(folder / names["temporal"], [{"Postdate": r[7], "Uid": r[1], "Pid": r[0], "Longitude": r[9],
                                        "Geoaccuracy": r[10], "Latitude": r[8]} for r in rows])
    _dump(folder / names["additional"], [{"Mediastatus": "ready", "Pathalias": r[11], "Ispublic": "1", "Pid": r[0],
                                          "Uid": r[1]} for r in rows])
    _dump(folder / names["user"], _user_records(rows) if user_form == "records" else _user_columns(rows))
    if release == "2019" and split == "train":
        lines = [f"https://www.flickr.com/photos/{1000 + i}@N00/{385070026 + i}" for i in range(len(rows))]
    else:
        lines = [f"{split}/{r[1]}/{r[0]}.jpg" for r in rows]
    (folder / names["image_list"]).write_text("\n".join(lines) + "\n")
    if split == "train":
        (folder / "train_label.txt").write_text("\n".join(r[12] for r in rows) + "\n")


def write_smpd(root: Path, release: str = "2022", user_form: str = "columns", with_test: bool = True,
               images: bool = True) -> Path:
    """Write a tiny SMPD directory (3 train posts, 2 test posts) and return its path."""
    root = Path(root)
    for split, rows in (("train", TRAIN), ("test", TEST)):
        if split == "test" and not with_test:
            continue
        folder = root / (f"{split}_allmetadata_json" if release == "2022" else "")
        folder.mkdir(parents=True, exist_ok=True)
        write_split(folder, split, rows, release, user_form)
        if images:
            for r in rows[:-1]:  # the last post of each split has no image, as in the real archives
                (root / split / r[1]).mkdir(parents=True, exist_ok=True)
                (root / split / r[1] / f"{r[0]}.jpg").write_bytes(b"\xff\xd8\xff\xd9")
    return root
