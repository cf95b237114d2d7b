"""Where the SMPD files live: release file names and how to find them in a directory.

Both releases are accepted (see ``FORMAT.md`` §0):

* 2019/2020 (``train_all_json.zip``): ``train_tags.json``, ``train_temporalspatial.json``,
  ``train_additional.json``, ``train_userdata.json``, ``train_img.txt`` (Flickr URLs);
* 2022+ (``train_allmetadata_json/``): ``train_text.json``,
  ``train_temporalspatial_information.json``, ``train_additional_information.json``,
  ``train_user_data.json``, ``train_img_filepath.txt`` (relative paths).

Files are searched in the directory itself and up to two levels below it, so an unpacked
archive (``DIR/train_allmetadata_json/train_text.json``) and a flat folder both work.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

SPLITS = ("train", "test")

# kind -> candidate names, newest release first; "{s}" is the split.
FILE_NAMES: dict[str, tuple[str, ...]] = {
    "label": ("{s}_label.txt",),
    "image_list": ("{s}_img_filepath.txt", "{s}_img_path.txt", "{s}_img.txt", "{s}_imgfile.txt"),
    "category": ("{s}_category.json",),
    "text": ("{s}_text.json", "{s}_tags.json"),
    "temporal": ("{s}_temporalspatial_information.json", "{s}_temporalspatial.json"),
    "additional": ("{s}_additional_information.json", "{s}_additional.json"),
    "user": ("{s}_user_data.json", "{s}_userdata.json"),
}
REQUIRED = ("category", "text", "temporal", "additional", "user", "image_list")
LEGACY_NAMES = {"{s}_tags.json", "{s}_temporalspatial.json", "{s}_additional.json", "{s}_userdata.json"}


class SMPDFormatError(ValueError):
    """Malformed SMPD input. The message names the file, the row and the field."""


def bad_value(file: str, row: int | None, field: str | None, problem: str) -> SMPDFormatError:
    """Build an error whose message reads ``<file> row <row> field '<field>': <problem>``.

    ``row`` is the 0-based record index (for text files: the 0-based line index).
    """
    where = file
    if row is not None:
        where += f" row {row}"
    if field is not None:
        where += f" field '{field}'"
    return SMPDFormatError(f"{where}: {problem}")


@dataclass(frozen=True)
class SplitFiles:
    """The located files of one split: kind -> path (``label`` absent for test)."""

    split: str
    paths: dict[str, Path]
    release: str  # "2019/2020" or "2022+"

    def __getitem__(self, kind: str) -> Path:
        return self.paths[kind]


def candidate_files(root: Path) -> dict[str, list[Path]]:
    """File name -> paths of every file in ``root`` and up to two folder levels below (image folders skipped)."""
    found: dict[str, list[Path]] = {}
    levels = [root] + [p for p in sorted(root.iterdir()) if p.is_dir()]
    levels += [q for p in levels[1:] if p.name not in SPLITS  # never list the image folders
               for q in sorted(p.iterdir()) if q.is_dir() and q.name not in SPLITS]
    for folder in levels:
        if folder.name in SPLITS and folder != root:
            continue  # image folders hold tens of thousands of user dirs: never scan them
        for f in folder.iterdir():
            if f.is_file():
                found.setdefault(f.name, []).append(f)
    return found


def locate_split(root: Path, split: str, found: dict[str, list[Path]] | None = None) -> SplitFiles | None:
    """Find the files of ``split`` under ``root``; ``None`` when the split has no files at all.

    Raises SMPDFormatError when a required file is missing or a name is ambiguous.
    """
    found = candidate_files(root) if found is None else found
    paths: dict[str, Path] = {}
    legacy = False
    for kind, names in FILE_NAMES.items():
        for pattern in names:
            hits = found.get(pattern.format(s=split), [])
            if len(hits) > 1:
                raise SMPDFormatError(f"{split}: ambiguous {kind} file, found {[str(h) for h in hits]}")
            if hits:
                paths[kind] = hits[0]
                legacy |= pattern in LEGACY_NAMES
                break
    if not paths:
        return None
    required = REQUIRED + (("label",) if split == "train" else ())
    missing = [k for k in required if k not in paths]
    if missing:
        wanted = ", ".join(FILE_NAMES[k][0].format(s=split) for k in missing)
        raise SMPDFormatError(f"{root}: {split} split is incomplete, missing file(s): {wanted}")
    return SplitFiles(split=split, paths=paths, release="2019/2020" if legacy else "2022+")


def locate_smpd(root: Path) -> dict[str, SplitFiles]:
    """Locate the train (required) and test (optional) files of an SMPD directory."""
    root = Path(root)
    if not root.is_dir():
        raise SMPDFormatError(f"{root}: SMPD directory does not exist")
    found = candidate_files(root)
    located = {s: f for s in SPLITS if (f := locate_split(root, s, found)) is not None}
    if "train" not in located:
        raise SMPDFormatError(f"{root}: no SMPD train files found (looked for train_category.json etc.)")
    return located
