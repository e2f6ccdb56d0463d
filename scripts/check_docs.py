#!/usr/bin/env python3
"""README.md and docs/*.md as a reader follows them: every relative link
and image points to a file of the repository, every #anchor to a heading
of its file; every `README, "Section"` or `docs/<file>.md, "Section"` that
code, scripts, the chart and the docs cite names a heading that exists.
Called by scripts/check-readme.sh; prints each broken reference, exits 1."""
import pathlib
import re
import sys

root = pathlib.Path(__file__).resolve().parent.parent
pages = [root / "README.md", *sorted((root / "docs").glob("*.md")), root / "BENCHMARKS.md"]


def anchors(page):
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to '-'."""
    seen = {}
    out = set()
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    for title in re.findall(r"^#+ (.*)$", text, flags=re.M):
        a = re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-")
        n = seen.get(a, 0)
        seen[a] = n + 1
        out.add(a if n == 0 else f"{a}-{n}")
    return out


def headings(page):
    return set(re.findall(r"^#+ (.*)$", page.read_text(), flags=re.M))


errors = []
for page in pages:
    text = page.read_text()
    # Inline code and indented code blocks hold no links.
    text = re.sub(r"`[^`\n]*`", "", text)
    for n, line in enumerate(text.split("\n"), 1):
        if line.startswith("    "):
            continue
        for target in re.findall(r"\]\(([^)\s]+)\)", line):
            if re.match(r"[a-z]+:", target):
                continue
            path, _, anchor = target.partition("#")
            dest = (page.parent / path).resolve() if path else page
            where = f"{page.relative_to(root)}:{n}: {target}"
            if not dest.exists():
                errors.append(f"{where}: no such file")
            elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
                errors.append(f"{where}: no heading #{anchor} in {dest.relative_to(root)}")

# Citations in the code and the deployment files.
cited = re.compile(r'(README|docs/[\w.-]+\.md)(?:\.md)?, \\?"([^"\\]+)\\?"')
files = [p for d in ("src", "tests", "scripts", "helm-chart", "fuzz", "docs") for p in (root / d).rglob("*")
         if p.is_file() and "target" not in p.parts and "corpus" not in p.parts and p.name != "check_docs.py"]
files += [root / f for f in ("README.md", "BENCHMARKS.md", "Dockerfile", "Dockerfile.autoscaler", "docker-compose.yml")
          if (root / f).exists()]
for f in files:
    try:
        text = f.read_text()
    except UnicodeDecodeError:
        continue
    for m in cited.finditer(text):
        doc = root / ("README.md" if m.group(1) == "README" else m.group(1))
        if not doc.exists() or m.group(2) not in headings(doc):
            line = text[: m.start()].count("\n") + 1
            errors.append(f"{f.relative_to(root)}:{line}: cites {m.group(1)}, \"{m.group(2)}\": no such heading")

for e in errors:
    print("check-docs:", e, file=sys.stderr)
if errors:
    sys.exit(1)
print(f"check-docs: links of {len(pages)} pages and the citations in {len(files)} files resolve")
