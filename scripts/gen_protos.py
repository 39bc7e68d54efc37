#!/usr/bin/env python3
"""Regenerate the Python code in wedsync/ from protos/ (grpcio-tools).

Usage (from anywhere; paths are relative to the repository root):

    python scripts/gen_protos.py          # delete wedsync/ and regenerate it
    python scripts/gen_protos.py --check  # exit 1 if wedsync/ is out of date

The generated tree is committed and never edited by hand. ``--check``
generates into a temporary directory and compares it byte for byte with the
committed tree; it prints every differing, missing or extra file and exits 1
on drift, 0 otherwise (used by CI).
"""

from __future__ import annotations

import argparse
import filecmp
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "protos"
PACKAGE = "wedsync"


def _proto_files() -> list[str]:
    """All .proto files under protos/, relative to it, sorted (stable output)."""
    return sorted(p.relative_to(PROTO_DIR).as_posix() for p in PROTO_DIR.rglob("*.proto"))


def _grpc_tools_include() -> str:
    """grpc_tools' bundled include dir holding google/protobuf/*.proto."""
    import grpc_tools

    return str(Path(grpc_tools.__file__).resolve().parent / "_proto")


def generate(out_dir: Path) -> None:
    """Generate the Python package into out_dir/wedsync (out_dir must exist)."""
    protos = _proto_files()
    if not protos:
        sys.exit(f"no .proto files under {PROTO_DIR}")
    cmd = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        f"-I{PROTO_DIR}",
        f"-I{_grpc_tools_include()}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *protos,
    ]
    # Run from protos/ so that protoc sees the same relative file names
    # regardless of the caller's working directory.
    subprocess.run(cmd, check=True, cwd=PROTO_DIR)
    pkg = out_dir / PACKAGE
    # Empty __init__.py in wedsync/ and every subpackage.
    for dirpath, _dirnames, _files in os.walk(pkg):
        (Path(dirpath) / "__init__.py").write_bytes(b"")


def _tree(base: Path) -> set[str]:
    """Relative paths of all files under base (ignoring bytecode caches)."""
    if not base.exists():
        return set()
    return {
        p.relative_to(base).as_posix()
        for p in base.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    }


def check() -> int:
    """Compare a fresh generation with the committed tree; 1 on drift."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        generate(tmp_path)
        fresh, committed = tmp_path / PACKAGE, ROOT / PACKAGE
        fresh_files, committed_files = _tree(fresh), _tree(committed)
        drift = []
        for rel in sorted(fresh_files | committed_files):
            if rel not in committed_files:
                drift.append(f"missing: {PACKAGE}/{rel}")
            elif rel not in fresh_files:
                drift.append(f"extra:   {PACKAGE}/{rel}")
            elif not filecmp.cmp(fresh / rel, committed / rel, shallow=False):
                drift.append(f"differs: {PACKAGE}/{rel}")
    if drift:
        print("generated code is out of date; run: python scripts/gen_protos.py")
        for line in drift:
            print(line)
        return 1
    print("generated code is up to date")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check",
        action="store_true",
        help="do not write; exit 1 if wedsync/ differs from a fresh generation",
    )
    args = parser.parse_args(argv)
    if args.check:
        return check()
    target = ROOT / PACKAGE
    # Generate into a temp dir first so a protoc failure leaves wedsync/ intact.
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        generate(tmp_path)
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(tmp_path / PACKAGE, target)
    print(f"regenerated {target.relative_to(ROOT)}/ from {len(_proto_files())} protos")
    return 0


if __name__ == "__main__":
    sys.exit(main())
