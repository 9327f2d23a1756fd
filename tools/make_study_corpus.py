#!/usr/bin/env python3
"""English training text for the SmolLM2 uptraining study (issue 22), from Debian's documentation.

Downloads the .deb files of the documentation packages in PACKAGES (`apt-get download`, nothing
is installed), unpacks each with `dpkg-deb -x` into a cache directory, turns every document in
them into plain text, deduplicates, splits a held-out set by document and writes

    OUT/train.jsonl      one {"id": ..., "text": ...} per document, what `rrt prepare` reads
    OUT/heldout.jsonl    the held-out documents (about 1%), never trained on
    OUT/manifest.json    every package with its version, .deb SHA-256 and licences; the counts
                         each stage kept and dropped, and the settings
    OUT/manifest.md      the same as a table

All packages come from Debian's main archive (free software by the Debian Free Software
Guidelines); the manifest lists the licences each package's copyright file names.

Conversion, by file type (a .gz is read through gzip):
- Sphinx trees (a directory with `_sources/`): the reST sources in `_sources/`, never the HTML;
  directives, option lines, targets and title underlines are dropped, roles keep their text.
- Other HTML: text outside <script>, <style>, <head>, <nav>, headers and footers and Sphinx /
  DocBook navigation blocks, with block elements as line breaks and <pre> kept verbatim
  (stdlib html.parser).
- Man pages (`share/man/man*/`): rendered by `groff -t -mandoc -Tutf8` without hyphenation or
  emphasis; pages that are a `.so` link to another page are skipped.
- POD (`.pod`): commands become their text, formatting codes their content.
- .txt, .rst, .md: as they are.
Skipped: changelogs, copyright files, translations, images, scripts, style sheets, indexes,
Sphinx's highlighted module sources (`_modules/`).

Normalisation: Unicode NFC, CRLF to LF, tabs to spaces, trailing spaces cut, runs of spaces after
the first word of a line folded to one (man's justification), more than one blank line to one.

Filters: at least MIN_CHARS characters; English: at least 5% of the words are among twenty common
English function words and at most 5% of the letters outside ASCII (drops translations and files
that are mostly code or tables).

Deduplication, in the sorted order of document ids (package/path), so the first copy wins:
1. exact: a document whose text, lowercased with whitespace folded, was seen before is dropped;
2. near-duplicate, by normalised paragraph hashes (as CCNet does): a paragraph (text between blank
   lines) of at least 40 characters whose lowercased letters and digits, words joined by single
   spaces, were seen in an earlier document is removed; a document that loses more than half its
   characters this way is dropped whole (a near-copy, e.g. the same manual in HTML and text).
The held-out split comes after deduplication, so no paragraph of a held-out document (in the
normalised sense above) appears in the training file.

Held-out split: a document is held out when the first 8 bytes of SHA-256(id), as an integer,
modulo 1000 are below --heldout-permille (10: 1%). It depends on the id only.

Reproducible: the same package versions give byte-identical outputs (sorted traversal, no
randomness, single-threaded decisions). A package version no longer in the archive (Debian
replaces security updates) is replaced by the archive's current one with a warning unless
--strict; the manifest records what was read.

Usage: python3 tools/make_study_corpus.py --out DIR [--cache DIR] [--heldout-permille 10]
           [--jobs N] [--strict] [--packages NAME ...]
"""
import argparse
import gzip
import hashlib
import html.parser
import json
import multiprocessing
import os
import re
import subprocess
import sys
import time
import unicodedata

# Debian 12 (bookworm) main. (package, version); versions as read on 2026-12-06.
PACKAGES = [
    ("linux-doc-6.1", "6.1.192-3"),
    ("python3.11-doc", "3.11.2-6+deb12u9"),
    ("debian-reference-en", "2.100"),
    ("debian-handbook", "11.20220922"),
    ("debian-policy", "4.6.2.0"),
    ("developers-reference", "12.18"),
    ("maint-guide", "1.2.53"),
    ("debian-faq", "11.1"),
    ("harden-doc", "3.19+nmu1"),
    ("manpages", "6.03-2"),
    ("manpages-dev", "6.03-2"),
    ("bash-doc", "5.2.15-2"),
    ("git-doc", "1:2.39.5-0+deb12u3"),
    ("perl-doc", "5.36.0-7+deb12u4"),
    ("postgresql-doc-15", "15.20-0+deb12u1"),
    ("python-django-doc", "3:3.2.25-0+deb12u7"),
    ("sphinx-doc", "5.3.0-4"),
    ("cmake-doc", "3.25.1-1"),
    ("nodejs-doc", "18.20.4+dfsg-1~deb12u3"),
    ("rust-doc", "1.63.0+dfsg1-2"),
    ("openjdk-17-doc", "17.0.21.1+2-1~deb12u1"),
    ("python-sqlalchemy-doc", "1.4.46+ds1-1"),
    ("python-sklearn-doc", "1.2.1+dfsg-1"),
    ("python-scipy-doc", "1.10.1-2"),
    ("python-pandas-doc", "1.5.3+dfsg-2"),
    ("python-sympy-doc", "1.11.1-1"),
    ("python-astropy-doc", "5.2.1-2+deb12u1"),
    ("libreoffice-help-en-us", "4:7.4.7-1+deb12u14"),
    ("gimp-help-en", "2.10.34-2"),
    ("apache2-doc", "2.4.71-1~deb12u1"),
    ("octave-doc", "7.3.0-2"),
    ("libssl-doc", "3.0.22-1~deb12u2"),
    ("erlang-doc", "1:25.2.3+dfsg-1+deb12u4"),
    ("zsh-doc", "5.9-4"),
    ("python-biopython-doc", "1.80+dfsg-4"),
    ("maxima-doc", "5.46.0-11"),
    ("kicad-doc-en", "6.0.11+dfsg-1"),
    ("xorg-docs", "1:1.7.1-1.2"),
    ("grass-doc", "8.2.1-1"),
    ("vim-runtime", "2:9.0.1378-2+deb12u2"),
    ("gnuplot-doc", "5.4.4+dfsg1-2"),
    ("sqlite3-doc", "3.40.1-2+deb12u2"),
    ("postfix-doc", "3.7.11-0+deb12u1"),
    ("python-flask-doc", "2.2.2-3"),
    ("python-lxml-doc", "4.9.2-1+deb12u1"),
    ("tcl8.6-doc", "8.6.13+dfsg-2"),
]

MIN_CHARS = 200
MIN_PARAGRAPH = 40
TEXT_EXT = {".txt", ".rst", ".md", ".markdown", ".text"}
SKIP_PARTS = {"translations", "_static", "_images", "_modules", "_downloads", "lintian",
              "images", "img", "locale", "examples"}
SKIP_NAMES = re.compile(r"^(changelog|copyright|news|readme\.debian|genindex|search|"
                        r"py-modindex|objects\.inv|searchindex|index-\w+)([.-]|$)", re.I)
# Handbook and help trees keep a directory per language; only English ones are read.
# (Explicit codes: two-letter technical directories such as mm/ or fs/ are not languages.)
LANGUAGES = {"ar", "bg", "ca", "cs", "da", "de", "el", "es", "et", "eu", "fa", "fi", "fr", "gl",
             "he", "hr", "hu", "it", "ja", "ko", "lt", "lv", "nb", "nl", "nn", "pt", "ro", "ru",
             "sk", "sl", "sv", "th", "tr", "uk", "vi", "zh"}
FUNCTION_WORDS = {"the", "of", "and", "to", "a", "in", "is", "that", "for", "it", "be", "this",
                  "with", "as", "on", "are", "by", "or", "an", "not"}


def log(*args):
    print(*args, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Fetching


def deb_path(cache, name, version):
    return os.path.join(cache, "debs", f"{name}_{version.replace(':', '%3a')}_all.deb")


def fetch(cache, name, version, strict):
    """Downloads NAME=VERSION (or the archive's current version) unless cached; returns
    (version, path)."""
    path = deb_path(cache, name, version)
    if os.path.exists(path):
        return version, path
    debs = os.path.join(cache, "debs")
    os.makedirs(debs, exist_ok=True)
    r = subprocess.run(["apt-get", "download", "-q", f"{name}={version}"], cwd=debs,
                       capture_output=True, text=True)
    if r.returncode != 0:
        if strict:
            sys.exit(f"apt-get download {name}={version} failed: {r.stderr.strip()}\n"
                     "hint: run apt-get update, or drop --strict to take the archive's version")
        log(f"warning: {name} {version} is not in the archive; taking its current version")
        r = subprocess.run(["apt-get", "download", "-q", name], cwd=debs, capture_output=True,
                           text=True)
        if r.returncode != 0:
            sys.exit(f"apt-get download {name} failed: {r.stderr.strip()}\n"
                     "hint: apt-get update; the package must be in Debian's main archive")
        version = subprocess.run(["apt-cache", "show", "--no-all-versions", name],
                                 capture_output=True, text=True).stdout
        version = re.search(r"^Version: (\S+)", version, re.M).group(1)
        path = deb_path(cache, name, version)
    if not os.path.exists(path):  # architecture-specific packages
        found = [f for f in os.listdir(debs) if f.startswith(f"{name}_")]
        path = os.path.join(debs, sorted(found)[-1])
    return version, path


def unpack(cache, deb):
    root = os.path.join(cache, "x", os.path.basename(deb)[:-4])
    if not os.path.exists(os.path.join(root, ".done")):
        subprocess.run(["rm", "-rf", root], check=True)
        os.makedirs(root)
        subprocess.run(["dpkg-deb", "-x", deb, root], check=True)
        open(os.path.join(root, ".done"), "w").close()
    return root


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def licences(root, name):
    """The licence names a package's copyright file gives: its License fields when it is
    machine-readable (DEP-5), else every known licence name it mentions (a superset)."""
    path = os.path.join(root, "usr/share/doc", name, "copyright")
    if not os.path.exists(path):
        docs = os.path.join(root, "usr/share/doc")
        found = [os.path.join(docs, d, "copyright") for d in sorted(os.listdir(docs))
                 if os.path.exists(os.path.join(docs, d, "copyright"))] if os.path.isdir(docs) else []
        if not found:
            return ["(no copyright file; Debian main)"]
        path = found[0]
    text = open(path, encoding="utf-8", errors="replace").read()
    if text.startswith("Format:"):  # machine-readable (DEP-5): its License fields
        names = sorted({m.strip() for m in re.findall(r"^License:[ \t]*(\S[^\n]*)", text, re.M)})
        if names:
            return names
    known = ["GPL-3", "GPL-2", "GPL", "LGPL", "GFDL", "BSD", "MIT", "Apache", "Artistic", "PSF",
             "Python Software Foundation", "PostgreSQL", "MPL", "CC-BY-SA", "CC-BY", "Expat"]
    # Whole words, case as written (a case-blind "MPL" would match "example").
    found = [k for k in known if re.search(r"(?<![\w-])" + re.escape(k) + r"(?![\w-])", text)]
    if re.search(r"public domain", text, re.I):
        found.append("public domain")
    return found or ["see copyright file"]


# ---------------------------------------------------------------------------------------------
# Conversion to text


class HtmlText(html.parser.HTMLParser):
    SKIP_TAGS = {"script", "style", "head", "nav", "header", "footer", "noscript", "svg", "form",
                 "button", "select"}
    SKIP_CLASS = re.compile(r"\b(sphinxsidebar|related|footer|header|navigation|navheader|"
                            r"navfooter|breadcrumbs?|sidebar|toc|headerlink|menu|"
                            r"sub-nav|top-nav|bottom-nav|skip-nav|search)\b", re.I)
    BLOCK = {"p", "div", "br", "li", "ul", "ol", "dl", "dt", "dd", "tr", "table", "h1", "h2", "h3",
             "h4", "h5", "h6", "pre", "blockquote", "section", "article", "hr", "title", "td",
             "th"}
    CONTAINERS = {"html", "body", "main", "article"}
    VOID = {"br", "img", "meta", "link", "input", "hr", "area", "base", "col", "embed", "param",
            "source", "track", "wbr"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.out = []
        self.skip = []  # [tag, depth] of the element being skipped
        self.pre = 0

    def handle_starttag(self, tag, attrs):
        if self.skip:
            if tag == self.skip[0] and tag not in self.VOID:
                self.skip[1] += 1
            return
        a = dict(attrs)
        marker = " ".join(filter(None, (a.get("class"), a.get("id"), a.get("role"))))
        # Asciidoctor's <body class="toc2 toc-left">: containers of the page are never skipped.
        by_class = tag not in self.CONTAINERS and marker and self.SKIP_CLASS.search(marker)
        if tag in self.SKIP_TAGS or by_class:
            if tag not in self.VOID:
                self.skip = [tag, 1]
            return
        if tag == "pre":
            self.pre += 1
        if tag in self.BLOCK:
            self.out.append("\n")
        if tag == "li":
            self.out.append("- ")

    def handle_endtag(self, tag):
        if self.skip:
            if tag == self.skip[0]:
                self.skip[1] -= 1
                if self.skip[1] == 0:
                    self.skip = []
            return
        if tag == "pre" and self.pre:
            self.pre -= 1
        if tag in self.BLOCK:
            self.out.append("\n")
        elif tag in ("td", "th"):
            self.out.append(" ")

    def handle_data(self, data):
        if self.skip:
            return
        if not self.pre:
            data = re.sub(r"\s+", " ", data)
            if not self.out or self.out[-1].endswith("\n"):
                data = data.lstrip()  # markup indentation, not the text's
        if data:
            self.out.append(data)


def html_to_text(raw):
    p = HtmlText()
    try:
        p.feed(raw)
        p.close()
    except Exception:  # html.parser copes with most broken markup; a page it cannot read is lost
        return ""
    return "".join(p.out)


RST_DROP = re.compile(r"^\s*(\.\. [\w:-]+::.*|\.\. _[^:]+:.*|\.\. \|.*|\.\. \[.*|:\w[\w -]*:.*|"
                      r"\.\.\s*$|[=\-~^\"'`#*+<>_:.]{4,}\s*)$")
RST_ROLE = re.compile(r":[\w:+-]+:`([^`<]*?)(?:\s*<[^`>]*>)?`")


def rst_to_text(raw):
    lines = []
    for line in raw.split("\n"):
        if RST_DROP.match(line):
            continue
        line = RST_ROLE.sub(r"\1", line)
        line = re.sub(r"``([^`]+)``", r"\1", line)
        line = re.sub(r"`([^`<]+?)\s*<[^`>]+>`_+", r"\1", line)
        lines.append(line)
    return "\n".join(lines)


POD_CODE = re.compile(r"[A-Z]<(?:<+\s+(.*?)\s+>+|([^<>]*))>")


def pod_to_text(raw):
    out = []
    in_pod = raw.lstrip().startswith("=")
    for line in raw.split("\n"):
        if line.startswith("="):
            cmd, _, rest = line.partition(" ")
            in_pod = cmd != "=cut"
            if cmd in ("=head1", "=head2", "=head3", "=head4", "=item"):
                out.append(("- " if cmd == "=item" and rest.strip() != "*" else "") +
                           rest.strip().lstrip("*").strip())
            continue
        if in_pod:
            out.append(line)
    text = "\n".join(out)
    for _ in range(3):  # nested codes, innermost first
        text = POD_CODE.sub(lambda m: (m.group(1) or m.group(2) or "").split("|")[0], text)
    return text


def man_to_text(raw):
    if re.match(r"^\.so\s", raw.lstrip()) and raw.count("\n") <= 2:
        return ""
    r = subprocess.run(["groff", "-t", "-mandoc", "-Tutf8", "-rHY=0", "-rLL=100n",
                        "-P", "-cbou"], input=raw.encode("utf-8", "replace"),
                       capture_output=True, timeout=60)
    return r.stdout.decode("utf-8", "replace")


def read(path):
    if path.endswith(".gz"):
        with gzip.open(path, "rb") as f:
            data = f.read()
    else:
        with open(path, "rb") as f:
            data = f.read()
    return data.decode("utf-8", "replace")


def kind_of(rel, sphinx_roots):
    """How to read the file at REL (relative to the unpacked package), or None to skip it."""
    parts = rel.split("/")
    name = parts[-1]
    base = name[:-3] if name.endswith(".gz") else name
    ext = os.path.splitext(base)[1].lower()
    if SKIP_NAMES.match(base) or any(p in SKIP_PARTS for p in parts[:-1]):
        return None
    for p in parts[:-1]:  # language directories: de, pt-BR, zh_CN, ...
        if re.split(r"[-_]", p)[0].lower() in LANGUAGES and len(p) in (2, 5):
            return None
    if "/share/man/" in "/" + rel + "/":
        return "man" if re.match(r"^man\d", parts[-2]) and parts[-3] == "man" else None
    if "_sources" in parts[:-1]:
        return "rst"
    if ext in (".html", ".htm", ".xhtml", ".xhp"):
        if any(rel.startswith(r + "/") for r in sphinx_roots):
            return None  # read through its _sources
        return "html"
    if ext == ".pod":
        return "pod"
    if ext == ".rst":
        return "rst"
    if ext in TEXT_EXT:
        return "text"
    return None


NON_ASCII_LETTER = re.compile(r"[^\W\d_a-zA-Z]")


def normalise(text):
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    text = text.replace("\u00a0", " ").replace("\u00ad", "")
    lines = []
    for line in text.split("\n"):
        line = line.expandtabs(4).rstrip()
        m = re.match(r" *", line)
        lead = m.end()
        lines.append(line[:lead] + re.sub(r"(?<=\S) {2,}(?=\S)", " ", line[lead:]))
    text = "\n".join(lines)
    return re.sub(r"\n{3,}", "\n\n", text).strip("\n")


def is_english(text):
    words = re.findall(r"[A-Za-z]+", text)
    if len(words) < 20:
        return False
    common = sum(1 for w in words if w.lower() in FUNCTION_WORDS)
    letters = sum(c.isalpha() for c in text)
    foreign = len(NON_ASCII_LETTER.findall(text))
    return common >= 0.05 * len(words) and foreign <= 0.05 * max(letters, 1)


def convert(job):
    """(doc_id, path, kind) -> (doc_id, text or '', reason)."""
    doc_id, path, kind = job
    try:
        raw = read(path)
        if kind == "html":
            text = html_to_text(raw)
        elif kind == "rst":
            text = rst_to_text(raw)
        elif kind == "pod":
            text = pod_to_text(raw)
        elif kind == "man":
            text = man_to_text(raw)
        else:
            text = raw
    except Exception as e:  # noqa: BLE001 - a broken file is counted, not fatal
        return doc_id, "", f"unreadable ({type(e).__name__})"
    text = normalise(text)
    if len(text) < MIN_CHARS:
        return doc_id, "", "short"
    if not is_english(text):
        return doc_id, "", "not English prose"
    return doc_id, text, ""


# ---------------------------------------------------------------------------------------------
# Deduplication and the split


def norm_key(text):
    words = re.findall(r"\w+", text.lower())
    return hashlib.blake2b(" ".join(words).encode(), digest_size=8).digest()


def heldout(doc_id, permille):
    return int.from_bytes(hashlib.sha256(doc_id.encode()).digest()[:8], "big") % 1000 < permille


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="output directory")
    ap.add_argument("--cache", default=os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "rrt", "study_corpus"),
                    help="where the .deb files and their unpacked trees stay")
    ap.add_argument("--heldout-permille", type=int, default=10)
    ap.add_argument("--jobs", type=int, default=min(4, os.cpu_count() or 1))
    ap.add_argument("--strict", action="store_true",
                    help="fail when a listed version is no longer in the archive")
    ap.add_argument("--packages", nargs="*", help="only these packages of the list")
    args = ap.parse_args()
    t0 = time.time()
    cache = os.path.abspath(args.cache)
    os.makedirs(args.out, exist_ok=True)
    wanted = PACKAGES
    if args.packages:
        unknown = set(args.packages) - {n for n, _ in PACKAGES}
        if unknown:
            sys.exit(f"--packages: {sorted(unknown)} not in the list; known: "
                     f"{', '.join(n for n, _ in PACKAGES)}")
        wanted = [p for p in PACKAGES if p[0] in args.packages]

    packages, jobs = [], []
    for name, version in wanted:
        version, deb = fetch(cache, name, version, args.strict)
        root = unpack(cache, deb)
        files = []
        for d, dirs, names in os.walk(root):
            dirs.sort()
            files.extend(os.path.relpath(os.path.join(d, n), root) for n in sorted(names)
                         if not os.path.islink(os.path.join(d, n)))
        sphinx_roots = {f.split("/_sources/")[0] for f in files if "/_sources/" in f}
        kinds = {}
        for rel in files:
            kind = kind_of(rel, sphinx_roots)
            if kind:
                jobs.append((f"{name}/{rel}", os.path.join(root, rel), kind))
                kinds[kind] = kinds.get(kind, 0) + 1
        packages.append({"name": name, "version": version, "deb": os.path.basename(deb),
                         "sha256": sha256_file(deb), "licences": licences(root, name),
                         "files_read": kinds})
        log(f"{name} {version}: {sum(kinds.values())} files {kinds}")
    jobs.sort()
    log(f"converting {len(jobs)} files with {args.jobs} processes")

    counts = {"files": len(jobs), "short": 0, "not English prose": 0, "unreadable": 0,
              "exact duplicate": 0, "near duplicate": 0, "paragraphs removed": 0,
              "characters removed as duplicate paragraphs": 0}
    seen_docs, seen_paragraphs = set(), set()
    per_package = {p["name"]: {"documents": 0, "characters": 0} for p in packages}
    split = {"train": [0, 0], "heldout": [0, 0]}
    tmp = {s: os.path.join(args.out, f"{s}.jsonl.part") for s in split}
    outs = {s: open(tmp[s], "w", encoding="utf-8") for s in split}
    with multiprocessing.Pool(args.jobs) as pool:
        for i, (doc_id, text, reason) in enumerate(pool.imap(convert, jobs, chunksize=16)):
            if i % 5000 == 0:
                log(f"  {i}/{len(jobs)} files, {time.time() - t0:.0f} s")
            if not text:
                counts[reason.split(" (")[0]] += 1
                continue
            key = norm_key(text)
            if key in seen_docs:
                counts["exact duplicate"] += 1
                continue
            seen_docs.add(key)
            kept, removed = [], 0
            for para in text.split("\n\n"):
                if len(para) >= MIN_PARAGRAPH:
                    k = norm_key(para)
                    if k in seen_paragraphs:
                        removed += len(para)
                        counts["paragraphs removed"] += 1
                        continue
                    seen_paragraphs.add(k)
                kept.append(para)
            if removed * 2 > len(text):
                counts["near duplicate"] += 1
                continue
            counts["characters removed as duplicate paragraphs"] += removed
            text = "\n\n".join(kept)
            if len(text) < MIN_CHARS:
                counts["short"] += 1
                continue
            s = "heldout" if heldout(doc_id, args.heldout_permille) else "train"
            outs[s].write(json.dumps({"id": doc_id, "text": text}, ensure_ascii=False) + "\n")
            split[s][0] += 1
            split[s][1] += len(text)
            pkg = per_package[doc_id.split("/")[0]]
            pkg["documents"] += 1
            pkg["characters"] += len(text)
    for s, f in outs.items():
        f.close()
        os.replace(tmp[s], os.path.join(args.out, f"{s}.jsonl"))
    for p in packages:
        p.update(per_package[p["name"]])
    manifest = {
        "what": "English documentation text from Debian 12 (bookworm) main, "
                "tools/make_study_corpus.py",
        "settings": {"heldout_permille": args.heldout_permille, "min_chars": MIN_CHARS,
                     "min_paragraph": MIN_PARAGRAPH},
        "packages": packages,
        "counts": counts,
        "train": {"documents": split["train"][0], "characters": split["train"][1]},
        "heldout": {"documents": split["heldout"][0], "characters": split["heldout"][1]},
        "seconds": round(time.time() - t0, 1),
    }
    with open(os.path.join(args.out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")
    rows = ["| package | version | licences | documents | characters |", "|---|---|---|---:|---:|"]
    for p in packages:
        rows.append(f"| {p['name']} | {p['version']} | {', '.join(p['licences'])[:120]} "
                    f"| {p['documents']} | {p['characters']} |")
    with open(os.path.join(args.out, "manifest.md"), "w") as f:
        f.write("\n".join(rows) + "\n")
    log(json.dumps(counts))
    print(f"{args.out}: train {split['train'][0]} documents, {split['train'][1]} characters; "
          f"held-out {split['heldout'][0]} documents, {split['heldout'][1]} characters "
          f"({time.time() - t0:.0f} s)")


if __name__ == "__main__":
    main()
