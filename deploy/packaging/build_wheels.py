#!/usr/bin/env python3
"""Build one wheel per tier from this source tree: kakehashi-lgwan, kakehashi-relay, kakehashi-sanitizer.

Issue 8: each tier installs on its own machine with only what it needs. The top-level
``pyproject.toml`` stays the developer distribution (``pip install -e .[all,test]``, all four
packages); this script cuts per-tier wheels out of the same tree:

* the tier's own package, whole (code and data files such as migrations, static files, OpenAPI);
* the ``shared`` modules that package actually imports (followed transitively, module by module), so
  the relay wheel carries no LGWAN-only code such as ``shared.manifest`` (records-export signing);
* ``Requires-Dist`` = the third-party distributions those modules import, with the version pins taken
  from ``[project] dependencies`` and the tier's extra in ``pyproject.toml``.

The build fails (exit 1) when a tier imports another tier's package (the relay must never import
``lgwan_server``), when a module imports a third-party package nobody declared, or when a tier's extra
declares a dependency its code never imports. Only the standard library is used: the wheels are built
offline, byte-for-byte reproducibly (fixed timestamps, sorted entries; ``SOURCE_DATE_EPOCH`` is
honoured), and a ``kakehashi-build.json`` inside ``*.dist-info`` lists the modules and dependencies.

Usage::

    python deploy/packaging/build_wheels.py --out dist/                # all tiers
    python deploy/packaging/build_wheels.py --out dist/ relay          # one tier
    python deploy/packaging/build_wheels.py --list relay               # show contents, build nothing

Install (one virtual environment per tier and host; see docs/admin-guide.en.md)::

    python3 -m venv /opt/kakehashi/relay
    /opt/kakehashi/relay/bin/pip install --no-index --find-links WHEELHOUSE kakehashi-relay
"""

from __future__ import annotations

import argparse
import ast
import base64
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import time
import tomllib
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUR_PACKAGES = ("shared", "lgwan_server", "internet_relay", "sanitizer")


@dataclass(frozen=True)
class Tier:
    dist: str                      # distribution name
    package: str                   # the tier's own package, shipped whole
    extra: str                     # its extra in pyproject.toml (the dependency pins)
    summary: str
    scripts: dict[str, str]        # console scripts
    extra_roots: tuple[str, ...] = ()    # further modules to ship (with their imports)
    forbidden: frozenset[str] = field(default_factory=frozenset)
    # Another component this tier runs in-process: when the tier imports it (even inside a function), the
    # whole package ships with the tier, with the dependencies of its own extra.
    bundled: tuple[tuple[str, str], ...] = ()          # (package, its extra)


TIERS: dict[str, Tier] = {
    "lgwan": Tier(
        dist="kakehashi-lgwan", package="lgwan_server", extra="lgwan",
        summary="Kakehashi (架け橋) LGWAN server: the system of record on LGWAN接続系",
        scripts={"kakehashi-lgwan": "lgwan_server.__main__:main", "kakehashi-keys": "shared.keys:main"},
        extra_roots=("shared.keys",),
        # bridge/files.py re-checks every crossing file with sanitizer.pool when [bridge] sanitizer_socket is
        # empty (the production config points it at a sanitizer service of its own user instead).
        forbidden=frozenset({"internet_relay"}), bundled=(("sanitizer", "sanitizer"),)),
    "relay": Tier(
        dist="kakehashi-relay", package="internet_relay", extra="relay",
        summary="Kakehashi (架け橋) internet relay: text-only relay on インターネット接続系",
        scripts={"kakehashi-relay": "internet_relay.__main__:main", "kakehashi-keys": "shared.keys:main"},
        extra_roots=("shared.keys",),
        forbidden=frozenset({"lgwan_server", "sanitizer"})),
    "sanitizer": Tier(
        dist="kakehashi-sanitizer", package="sanitizer", extra="sanitizer",
        summary="Kakehashi (架け橋) sanitizer: 無害化 (CDR) of files before they enter LGWAN",
        scripts={"kakehashi-sanitize": "sanitizer.__main__:main", "kakehashi-keys": "shared.keys:main"},
        extra_roots=("shared.keys",),                  # the service's signing key (kakehashi-keys generate)
        forbidden=frozenset({"lgwan_server", "internet_relay"})),
}

# Import name -> distribution name, for every third-party package the code may import.
IMPORT_TO_DIST = {
    "aiohttp": "aiohttp", "aiosqlite": "aiosqlite", "argon2": "argon2-cffi", "pyotp": "pyotp",
    "segno": "segno", "jsonschema": "jsonschema", "yaml": "pyyaml", "magic": "python-magic",
    "openpyxl": "openpyxl", "pikepdf": "pikepdf", "PIL": "pillow", "defusedxml": "defusedxml",
    "cryptography": "cryptography", "referencing": "referencing", "reportlab": "reportlab",
}
# Imported directly but installed by a declared dependency (none at present; kept for such cases).
PROVIDED_BY: dict[str, str] = {}

DATA_EXCLUDE = re.compile(r"(^|/)(__pycache__|\.mypy_cache)(/|$)|\.py[co]$")


class BuildError(Exception):
    pass


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _req_name(requirement: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    if not match:
        raise BuildError(f"cannot read requirement {requirement!r}")
    return _norm(match.group(1))


# --- import graph ----------------------------------------------------------------------------------

def module_file(module: str) -> Path | None:
    parts = module.split(".")
    base = ROOT.joinpath(*parts)
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    return None


def _is_package(module: str) -> bool:
    return (ROOT.joinpath(*module.split(".")) / "__init__.py").is_file()


def imports_of(module: str) -> set[str]:
    """Absolute names imported anywhere in ``module`` (top level and inside functions)."""
    path = module_file(module)
    assert path is not None, module
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = module if _is_package(module) else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            if base == "__future__":
                continue
            found.add(base)
            for alias in node.names:     # ``from pkg import submodule``
                candidate = f"{base}.{alias.name}"
                if module_file(candidate) is not None:
                    found.add(candidate)
    return found


def package_modules(package: str) -> list[str]:
    out = []
    for path in sorted(ROOT.joinpath(package).rglob("*.py")):
        rel = path.relative_to(ROOT).with_suffix("")
        if "__pycache__" in rel.parts:
            continue
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out.append(".".join(parts))
    return out


@dataclass
class Closure:
    modules: set[str]
    third_party: dict[str, set[str]]      # import name -> modules importing it
    bundled: dict[str, set[str]] = field(default_factory=dict)    # bundled component -> modules using it


def closure(tier: Tier) -> Closure:
    todo = [*package_modules(tier.package), *tier.extra_roots]
    seen: set[str] = set()
    third: dict[str, set[str]] = {}
    bundled: dict[str, set[str]] = {}
    bundled_names = {name for name, _ in tier.bundled}
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        parent = module.rpartition(".")[0]
        while parent:                     # importing a.b.c runs a/__init__ and a/b/__init__
            if parent not in seen:
                todo.append(parent)
            parent = parent.rpartition(".")[0]
        for name in imports_of(module):
            top = name.split(".")[0]
            if top in bundled_names and not module.startswith(top):
                if top not in bundled:        # the whole package: it also runs modules by name (-m)
                    todo.extend(package_modules(top))
                bundled.setdefault(top, set()).add(module)
            if top in tier.forbidden:
                raise BuildError(f"{tier.dist}: {module} imports {name}, which belongs to another tier")
            if top in OUR_PACKAGES:
                # the longest prefix that is a module of ours
                parts = name.split(".")
                while parts and module_file(".".join(parts)) is None:
                    parts.pop()
                if parts:
                    todo.append(".".join(parts))
            elif top not in sys.stdlib_module_names:
                third.setdefault(top, set()).add(module)
    return Closure(seen, third, bundled)


# --- dependencies ------------------------------------------------------------------------------------

def pyproject() -> dict:  # type: ignore[type-arg]
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def requirements(tier: Tier, found: Closure, project: dict) -> list[str]:  # type: ignore[type-arg]
    core = list(project["project"].get("dependencies", []))
    extras = project["project"]["optional-dependencies"]
    extra = list(extras[tier.extra])
    # a bundled component brings its own extra's pins (the tier's extra may repeat them)
    component = [r for name, extra_name in tier.bundled if name in found.bundled for r in extras[extra_name]]
    declared = {_req_name(r): r for r in core + component + extra}
    used: set[str] = set()
    for name, where in sorted(found.third_party.items()):
        dist = IMPORT_TO_DIST.get(name) or PROVIDED_BY.get(name)
        if dist is None:
            raise BuildError(f"{tier.dist}: {sorted(where)[0]} imports {name!r}; add it to IMPORT_TO_DIST in "
                             f"{Path(__file__).name} and to the [{tier.extra}] extra in pyproject.toml")
        if _norm(dist) not in declared:
            raise BuildError(f"{tier.dist}: {sorted(where)[0]} imports {name!r} ({dist}), which neither "
                             f"[project] dependencies nor the [{tier.extra}] extra declares")
        used.add(_norm(dist))
    unused = sorted(_req_name(r) for r in extra if _req_name(r) not in used)
    if unused:
        raise BuildError(f"{tier.dist}: the [{tier.extra}] extra declares {', '.join(unused)}, which the tier's "
                         "code never imports: remove it there, or it would be installed for nothing")
    # core dependencies that this tier does not import are left out (the sanitizer signs nothing)
    return sorted((declared[name] for name in used), key=_req_name)


# --- wheel -----------------------------------------------------------------------------------------------

def _files(tier: Tier, found: Closure) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    for module in found.modules:
        path = module_file(module)
        assert path is not None
        files[path.relative_to(ROOT).as_posix()] = path.read_bytes()
    for package in [tier.package, *sorted(found.bundled)]:
        for path in sorted(ROOT.joinpath(package).rglob("*")):
            rel = path.relative_to(ROOT).as_posix()
            if path.is_file() and not path.name.endswith(".py") and not DATA_EXCLUDE.search(rel):
                files[rel] = path.read_bytes()
    return files


def _license(meta: dict) -> str:  # type: ignore[type-arg]
    value = meta.get("license", "")
    return str(value.get("text", "")) if isinstance(value, dict) else str(value)   # PEP 639 string or old table


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def _source_commit() -> str:
    try:
        out = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=10, check=False)
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=False).stdout.strip()
        return out.stdout.strip() + ("+dirty" if dirty else "") if out.returncode == 0 else "unknown"
    except OSError:
        return "unknown"


def build(tier_name: str, out_dir: Path) -> Path:
    tier = TIERS[tier_name]
    project = pyproject()
    found = closure(tier)
    requires = requirements(tier, found, project)
    version = project["project"]["version"]
    meta = project["project"]
    dist_ident = tier.dist.replace("-", "_")
    info = f"{dist_ident}-{version}.dist-info"

    metadata = [
        "Metadata-Version: 2.1", f"Name: {tier.dist}", f"Version: {version}", f"Summary: {tier.summary}",
        f"License: {_license(meta)}", f"Requires-Python: {meta['requires-python']}",
        *(f"Requires-Dist: {r}" for r in requires), "",
        f"Built from the Kakehashi source tree (distribution {meta['name']} {version}) by "
        "deploy/packaging/build_wheels.py: only this tier's package and the shared modules it imports.", "",
    ]
    files = _files(tier, found)
    files[f"{info}/METADATA"] = "\n".join(metadata).encode("utf-8")
    files[f"{info}/WHEEL"] = (b"Wheel-Version: 1.0\nGenerator: kakehashi build_wheels.py\nRoot-Is-Purelib: true\n"
                              b"Tag: py3-none-any\n")
    files[f"{info}/entry_points.txt"] = ("[console_scripts]\n" + "".join(
        f"{name} = {target}\n" for name, target in sorted(tier.scripts.items()))).encode()
    top_level = sorted({m.split(".")[0] for m in found.modules})
    files[f"{info}/top_level.txt"] = ("\n".join(top_level) + "\n").encode()
    files[f"{info}/kakehashi-build.json"] = json.dumps({
        "tier": tier_name, "distribution": tier.dist, "version": version, "source_commit": _source_commit(),
        "modules": sorted(found.modules), "requires": requires,
        "third_party_imports": sorted(found.third_party),
        "bundled_components": {name: sorted(mods) for name, mods in sorted(found.bundled.items())},
    }, indent=2, ensure_ascii=False).encode("utf-8")

    record = io.StringIO()
    for name in sorted(files):
        record.write(f"{name},{_record_hash(files[name])},{len(files[name])}\n")
    record.write(f"{info}/RECORD,,\n")
    files[f"{info}/RECORD"] = record.getvalue().encode()

    epoch = int(os.environ.get("SOURCE_DATE_EPOCH", "315532800"))      # default: 1980-01-01, zip's minimum
    stamp = time.gmtime(max(epoch, 315532800))[:6]
    out_dir.mkdir(parents=True, exist_ok=True)
    wheel = out_dir / f"{dist_ident}-{version}-py3-none-any.whl"
    tmp = wheel.with_suffix(".tmp")
    # dist-info goes last, as the wheel spec recommends; everything else sorted
    order = sorted(n for n in files if not n.startswith(info)) + sorted(n for n in files if n.startswith(info))
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name in order:
            entry = zipfile.ZipInfo(name, date_time=stamp)
            entry.external_attr = 0o644 << 16
            entry.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(entry, files[name])
    os.replace(tmp, wheel)
    return wheel


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("tiers", nargs="*", metavar="TIER", help=f"{', '.join(TIERS)} (default: all)")
    parser.add_argument("--out", type=Path, default=ROOT / "dist", help="output folder (default: dist/)")
    parser.add_argument("--list", action="store_true", help="print each tier's modules and requirements only")
    args = parser.parse_args(argv)
    if unknown := [t for t in args.tiers if t not in TIERS]:
        parser.error(f"unknown tier(s): {', '.join(unknown)}")
    try:
        for name in args.tiers or list(TIERS):
            if args.list:
                found = closure(TIERS[name])
                print(json.dumps({"tier": name, "modules": sorted(found.modules),
                                  "requires": requirements(TIERS[name], found, pyproject())}, indent=2))
            else:
                print(build(name, args.out))
    except BuildError as exc:
        print(f"build_wheels: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
