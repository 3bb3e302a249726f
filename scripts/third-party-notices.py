#!/usr/bin/env python3
"""Writes THIRD-PARTY-NOTICES.md: every crate compiled into the `graven` binary, and the notices
their licences ask a redistributor of that binary to pass on.

    python3 scripts/third-party-notices.py            # rewrite THIRD-PARTY-NOTICES.md
    python3 scripts/third-party-notices.py --check    # exit 1 if the committed file is stale

Run it after any change to Cargo.lock or to the binary's dependencies, and commit the result;
`crates/graven/tests/packaging.rs` fails while the file does not list exactly the crates of the
binary's dependency closure (names and versions).

Which crates: the normal (not build, not dev) dependency closure of the `graven` package on
Linux (x86_64 and aarch64, GNU), as `cargo tree -e normal` resolves it. `cargo metadata` gives
each crate's licence, repository and source directory, but not the closure: its resolve unifies
features across the whole workspace, dev-dependencies included, and so lists crates the binary
does not contain (tempfile, rustix, pkcs8, ... that only tests turn on). Proc-macro crates are
listed too (they run at build time, but what they generate is in the binary). Workspace crates
are Graven's own (LICENSE).

Which texts: a crate offered under a choice of licences that includes Apache-2.0 is used under
Apache-2.0, whose text is Graven's own LICENSE; Apache-2.0 then asks only that the crate's
NOTICE file, if it ships one, be passed on (section 4(d)). Otherwise the first licence in
PREFERENCE is chosen. For every licence that asks for its notice to go with copies of the
software (MIT, BSD, ISC, Unicode, CDLA-Permissive, ...), the licence files the crate ships are
reproduced as they are, copyright lines included; files that name a licence not chosen
(LICENSE-MIT of a crate used under Apache-2.0, say) are left out. A crate that needs a text and
ships none must have one in scripts/third-party-notices.d/ (see EXTRA_TEXTS), else this script
fails and names it.
"""

import hashlib
import json
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "THIRD-PARTY-NOTICES.md")
EXTRA_DIR = os.path.join(ROOT, "scripts", "third-party-notices.d")
TARGETS = ["x86_64-unknown-linux-gnu", "aarch64-unknown-linux-gnu"]

# When a crate offers a choice, the first of these it offers is the one Graven uses.
PREFERENCE = ["Apache-2.0", "Unlicense", "MIT", "ISC", "BSD-3-Clause", "BSD-2-Clause", "Zlib", "BSL-1.0"]
# Licences that ask nothing of a redistributor of a binary beyond what LICENSE already does
# (Apache-2.0: its text, which is Graven's LICENSE, and any NOTICE file; handled apart), or
# nothing at all (Unlicense, CC0-1.0).
NO_TEXT_NEEDED = {"Apache-2.0", "Unlicense", "CC0-1.0"}

# Crates whose published package ships no licence file although their licence asks for its
# notice: the text from their repository, kept in scripts/third-party-notices.d/.
EXTRA_TEXTS = {
    # https://github.com/Nugine/simd: LICENSE at the repository's root (unchanged since
    # 2021-12-27), not included in the crates' packages.
    "base64-simd": "Nugine-simd.LICENSE",
    "vsimd": "Nugine-simd.LICENSE",
}

LICENSE_FILE = re.compile(r"^(licen[cs]e|copying|notice|unlicense)([-._].*)?$", re.IGNORECASE)
NOTICE_FILE = re.compile(r"^notice([-._].*)?$", re.IGNORECASE)
# A licence file whose name says which licence it holds.
NAMED = [
    (re.compile(r"apache", re.I), "Apache-2.0"),
    (re.compile(r"(^|[-._])mit($|[-._])", re.I), "MIT"),
    (re.compile(r"unlicense", re.I), "Unlicense"),
    (re.compile(r"unicode", re.I), "Unicode-3.0"),
    (re.compile(r"(^|[-._])zlib($|[-._])", re.I), "Zlib"),
    (re.compile(r"(^|[-._])isc($|[-._])", re.I), "ISC"),
    (re.compile(r"(^|[-._])bsd", re.I), "BSD"),
    (re.compile(r"(^|[-._])bsl", re.I), "BSL-1.0"),
]


def run(*args):
    return subprocess.run(args, cwd=ROOT, check=True, capture_output=True, text=True).stdout


def closure():
    """(name, version) of every crate in the binary's normal dependency closure on the targets."""
    args = ["cargo", "tree", "--locked", "-p", "graven", "-e", "normal", "--prefix", "none", "-f", "{p}"]
    for t in TARGETS:
        args += ["--target", t]
    crates = set()
    for line in run(*args).splitlines():
        parts = line.split()
        if len(parts) < 2:
            continue
        if len(parts) > 2 and parts[2].startswith("(/"):
            continue  # a workspace crate: Graven's own
        crates.add((parts[0], parts[1].lstrip("v")))
    return crates


def packages():
    """(name, version) -> cargo metadata's package, registry packages only."""
    found = {}
    for t in TARGETS:
        meta = json.loads(run("cargo", "metadata", "--format-version", "1", "--locked", "--filter-platform", t))
        for p in meta["packages"]:
            if p["source"] is not None:
                found[(p["name"], p["version"])] = p
    return found


def tokens(expr):
    # Old-style "MIT/Apache-2.0" means a choice.
    return re.findall(r"\(|\)|[^\s()]+", expr.replace("/", " OR "))


def parse(expr):
    """An SPDX expression as nested ("OR"|"AND", [terms]) tuples and licence ids."""
    toks = tokens(expr)
    pos = 0

    def peek():
        return toks[pos] if pos < len(toks) else None

    def take():
        nonlocal pos
        pos += 1
        return toks[pos - 1]

    def atom():
        t = take()
        if t == "(":
            e = either()
            if take() != ")":
                raise ValueError(f"unbalanced parentheses in {expr!r}")
            return e
        if peek() == "WITH":
            take()
            return f"{t} WITH {take()}"
        return t

    def both():
        terms = [atom()]
        while peek() == "AND":
            take()
            terms.append(atom())
        return terms[0] if len(terms) == 1 else ("AND", terms)

    def either():
        terms = [both()]
        while peek() == "OR":
            take()
            terms.append(both())
        return terms[0] if len(terms) == 1 else ("OR", terms)

    e = either()
    if pos != len(toks):
        raise ValueError(f"cannot read licence expression {expr!r}")
    return e


def ids(e):
    if isinstance(e, str):
        return {e}
    return set().union(*(ids(t) for t in e[1]))


def rank(e):
    """How little a choice asks of us: lower is better."""
    worst = 0
    for i in ids(e):
        base = i.split(" WITH ")[0]
        worst = max(worst, PREFERENCE.index(base) if base in PREFERENCE else len(PREFERENCE))
    # Ties go to the plain licence over one with an exception (Apache-2.0 over
    # Apache-2.0 WITH LLVM-exception, when a crate offers both): its text is LICENSE.
    return (worst, len(ids(e)), sum(" WITH " in i for i in ids(e)))


def choose(e):
    """The set of licences Graven uses the crate under."""
    if isinstance(e, str):
        return {e}
    op, terms = e
    if op == "AND":
        return set().union(*(choose(t) for t in terms))
    return choose(min(terms, key=rank))


def licence_files(directory):
    return sorted(f for f in os.listdir(directory) if LICENSE_FILE.match(f) and os.path.isfile(os.path.join(directory, f)))


def named(filename):
    for pattern, licence in NAMED:
        if pattern.search(filename):
            return licence
    return None


def texts_for(pkg, chosen):
    """[(label, text)] this crate's licences ask us to pass on."""
    directory = os.path.dirname(pkg["manifest_path"])
    files = licence_files(directory)
    out = []
    for f in files:
        if NOTICE_FILE.match(f):
            out.append((f, read(os.path.join(directory, f))))
    needs_text = {c for c in chosen if c.split(" WITH ")[0] not in NO_TEXT_NEEDED}
    if not needs_text:
        return out
    for f in files:
        if NOTICE_FILE.match(f):
            continue
        which = named(f)
        if which == "Apache-2.0" or (which is not None and not any(c.startswith(which) for c in chosen)):
            continue  # Apache-2.0 is LICENSE; a licence not chosen is not passed on
        out.append((f, read(os.path.join(directory, f))))
    if len(out) == sum(1 for f in files if NOTICE_FILE.match(f)):
        extra = EXTRA_TEXTS.get(pkg["name"])
        if extra is None:
            sys.exit(
                f"third-party-notices: {pkg['name']} {pkg['version']} is used under {', '.join(sorted(needs_text))}, "
                f"which asks for its notice, but its package ships no licence file; put the text from its "
                f"repository in scripts/third-party-notices.d/ and name it in EXTRA_TEXTS"
            )
        out.append((f"{extra} (from the crate's repository)", read(os.path.join(EXTRA_DIR, extra))))
    return out


def read(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read().replace("\r\n", "\n").strip("\n") + "\n"


def fence(text):
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def cell(s):
    return (s or "").replace("|", "\\|").replace("\n", " ")


def render():
    crates = closure()
    meta = packages()
    rows = []
    groups = {}  # text digest -> (label, text, [crate versions])
    for name, version in sorted(crates):
        pkg = meta.get((name, version))
        if pkg is None:
            sys.exit(f"third-party-notices: cargo metadata has no registry package {name} {version}")
        expr = pkg["license"]
        if not expr:
            sys.exit(
                f"third-party-notices: {name} {version} declares no SPDX licence (license_file = "
                f"{pkg['license_file']!r}); read it and add a rule for it here"
            )
        chosen = choose(parse(expr))
        rows.append((name, version, expr, " AND ".join(sorted(chosen)), pkg.get("repository") or ""))
        for label, text in texts_for(pkg, chosen):
            digest = hashlib.sha256(text.encode()).hexdigest()
            groups.setdefault(digest, (label, text, []))[2].append(f"{name} {version}")

    out = []
    w = out.append
    w("# Third-party notices\n")
    w(
        "Generated by `scripts/third-party-notices.py` from `Cargo.lock`; do not edit by hand (run the "
        "script after a dependency change; `crates/graven/tests/packaging.rs` fails while this file is "
        "stale).\n"
    )
    w(
        "The `graven` binary is Graven's own code (Apache License 2.0, [LICENSE](LICENSE)) compiled "
        f"together with the {len(rows)} crates below: the normal dependency closure of the `graven` "
        "package on Linux (x86_64 and aarch64), proc-macro crates included. Where a crate offers a "
        "choice of licences that includes Apache-2.0, Graven uses it under Apache-2.0, whose text is "
        "[LICENSE](LICENSE); otherwise the licence in the column \"used under\". The texts those "
        "licences ask to be passed on with the binary follow the table, each once, with the crates "
        "that ship it.\n"
    )
    w("## Crates\n")
    w("| crate | version | licence (as declared) | used under | repository |")
    w("|---|---|---|---|---|")
    for name, version, expr, chosen, repo in rows:
        w(f"| {cell(name)} | {cell(version)} | {cell(expr)} | {cell(chosen)} | {cell(repo)} |")
    w("")
    w("## Licence texts and notices\n")
    for label, text, users in sorted(groups.values(), key=lambda g: (g[2][0], g[0])):
        w(f"### {', '.join(users)}: {label}\n")
        f = fence(text)
        w(f + "text")
        w(text.rstrip("\n"))
        w(f + "\n")
    return "\n".join(out).rstrip("\n") + "\n"


def main():
    check = sys.argv[1:] == ["--check"]
    if sys.argv[1:] not in ([], ["--check"]):
        sys.exit("usage: third-party-notices.py [--check]")
    text = render()
    if check:
        try:
            with open(OUT, encoding="utf-8") as f:
                current = f.read()
        except FileNotFoundError:
            current = ""
        if current != text:
            sys.exit("THIRD-PARTY-NOTICES.md is stale: run python3 scripts/third-party-notices.py and commit it")
        return
    with open(OUT, "w", encoding="utf-8") as f:
        f.write(text)
    print(f"wrote {os.path.relpath(OUT, ROOT)}")


if __name__ == "__main__":
    main()
