#!/usr/bin/env python3
"""Check the built Lambda package against the provided.al2023 runtime.

Reads the template that `sam build` wrote (default infra/.aws-sam/build/template.yaml), finds the
function's code folder and its layers' content, and checks every ELF file in them:

  * built for the function's architecture (x86_64 or arm64);
  * needs no symbol version newer than Amazon Linux 2023 provides: GLIBC_2.34 (glibc 2.34), and
    for C++ code GLIBCXX_3.4.29 / CXXABI_1.3.13 (libstdc++ of GCC 11) and GCC_11.0 (libgcc_s);
  * every shared library it needs (DT_NEEDED) is shipped in the package or is in the
    provided.al2023 image (al2023-provided-libs.json, from AWS's published package list);
  * ORT_DYLIB_PATH names a file that the package puts there (/opt/... for a layer);
  * the function and its layers stay under Lambda's 250 MB unzipped limit. It zips them as
    `sam deploy` does and prints the sizes.

Exit status 0 when all hold, 1 with the reasons otherwise. --json writes the findings.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import zipfile
from pathlib import Path

from elftools.elf.dynamic import DynamicSection
from elftools.elf.elffile import ELFFile
from elftools.elf.gnuversions import GNUVerNeedSection

HERE = Path(__file__).resolve().parent
PROVIDED_LIBS = HERE / "al2023-provided-libs.json"

# Lambda: 250 MB for the function and all its layers, unzipped (262,144,000 bytes).
UNZIPPED_LIMIT = 262_144_000
MACHINES = {"x86_64": "EM_X86_64", "arm64": "EM_AARCH64"}


def version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split("."))


def parse_symbol_version(name: str) -> tuple[str, tuple[int, ...]] | None:
    """'GLIBC_2.28' -> ('GLIBC', (2, 28)); None for names without a numeric version."""
    prefix, _, version = name.rpartition("_")
    if not prefix or not version or not all(p.isdigit() for p in version.split(".")):
        return None
    return prefix, version_tuple(version)


def inspect_elf(path: Path) -> dict | None:
    with path.open("rb") as f:
        if f.read(4) != b"\x7fELF":
            return None
        f.seek(0)
        elf = ELFFile(f)
        needed, soname = [], None
        versions: dict[str, set[str]] = {}
        for section in elf.iter_sections():
            if isinstance(section, DynamicSection):
                for tag in section.iter_tags():
                    if tag.entry.d_tag == "DT_NEEDED":
                        needed.append(tag.needed)
                    elif tag.entry.d_tag == "DT_SONAME":
                        soname = tag.soname
            elif isinstance(section, GNUVerNeedSection):
                for verneed, auxiliaries in section.iter_versions():
                    versions.setdefault(verneed.name, set()).update(
                        a.name for a in auxiliaries
                    )
        return {
            "path": str(path),
            "machine": elf["e_machine"],
            "soname": soname,
            "needed": needed,
            "version_needs": {lib: sorted(v) for lib, v in versions.items()},
        }


def max_versions(elves: list[dict]) -> dict[str, str]:
    """Highest version needed per prefix (GLIBC, GLIBCXX, CXXABI, GCC) over all files."""
    best: dict[str, tuple[tuple[int, ...], str]] = {}
    for elf in elves:
        for names in elf["version_needs"].values():
            for name in names:
                parsed = parse_symbol_version(name)
                if parsed is None:
                    continue
                prefix, version = parsed
                if prefix not in best or version > best[prefix][0]:
                    best[prefix] = (version, name)
    return {prefix: name for prefix, (_, name) in sorted(best.items())}


def load_yaml(path: Path) -> dict:
    from samtranslator.yaml_helper import yaml_parse

    return yaml_parse(path.read_text())


def zip_size(folder: Path) -> tuple[int, int]:
    """(zipped bytes, unzipped bytes) of a folder, zipped with deflate as sam does."""
    unzipped = 0
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / "package.zip"
        with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zf:
            for root, _, files in os.walk(folder):
                for name in sorted(files):
                    full = Path(root) / name
                    zf.write(full, full.relative_to(folder))
                    unzipped += full.stat().st_size
        return target.stat().st_size, unzipped


def check(build_dir: Path, arch: str | None) -> dict:
    template_path = build_dir / "template.yaml"
    if not template_path.is_file():
        raise SystemExit(f"no built template at {template_path}: run `sam build` first")
    template = load_yaml(template_path)
    resources = template["Resources"]
    functions = {
        k: v for k, v in resources.items() if v["Type"] == "AWS::Serverless::Function"
    }
    layers = {
        k: v
        for k, v in resources.items()
        if v["Type"] == "AWS::Serverless::LayerVersion"
    }
    if len(functions) != 1:
        raise SystemExit(
            f"expected one function in {template_path}, found {sorted(functions)}"
        )
    ((fn_id, fn),) = functions.items()
    props = fn["Properties"]
    code_dir = (build_dir / props["CodeUri"]).resolve()
    template_arch = props.get("Architectures", ["x86_64"])[0]
    if isinstance(template_arch, dict):  # !Ref Architecture: the parameter's default
        template_arch = template["Parameters"][template_arch["Ref"]]["Default"]
    arch = arch or template_arch

    layer_dirs = {}
    for layer_id, layer in layers.items():
        layer_dirs[layer_id] = (build_dir / layer["Properties"]["ContentUri"]).resolve()

    provided = json.loads(PROVIDED_LIBS.read_text())
    provided_sonames = {
        so for pkg in provided["packages"].values() for so in pkg["sonames"]
    }
    limits = provided["symbol_version_limits"]

    problems: list[str] = []
    elves: list[dict] = []
    shipped: dict[str, str] = {}
    roots = {"function": code_dir, **{f"layer {k}": v for k, v in layer_dirs.items()}}
    for label, root in roots.items():
        if not root.is_dir():
            problems.append(f"{label}: folder {root} is missing")
            continue
        for path in sorted(
            p for p in root.rglob("*") if p.is_file() and not p.is_symlink()
        ):
            info = inspect_elf(path)
            if info is None:
                continue
            info["in"] = label
            info["relative"] = str(path.relative_to(root))
            elves.append(info)
            shipped[path.name] = label
            if info["soname"]:
                shipped[info["soname"]] = label

    if not any(e["in"] == "function" and e["relative"] == "bootstrap" for e in elves):
        problems.append(f"function: no ELF `bootstrap` in {code_dir}")

    for elf in elves:
        name = f"{elf['in']}: {elf['relative']}"
        if elf["machine"] != MACHINES[arch]:
            problems.append(f"{name} is {elf['machine']}, the function is {arch}")
        for lib in elf["needed"]:
            if lib not in shipped and lib not in provided_sonames:
                problems.append(
                    f"{name} needs {lib}, which is neither in the package nor in provided.al2023"
                )
        for names in elf["version_needs"].values():
            for version_name in names:
                parsed = parse_symbol_version(version_name)
                if (
                    parsed
                    and parsed[0] in limits
                    and parsed[1] > version_tuple(limits[parsed[0]])
                ):
                    problems.append(
                        f"{name} needs {version_name}; Amazon Linux 2023 has "
                        f"{parsed[0]}_{limits[parsed[0]]} at most"
                    )

    env = props.get("Environment", {}).get("Variables", {})
    ort_path = env.get("ORT_DYLIB_PATH")
    ort_found = None
    if not ort_path:
        problems.append("ORT_DYLIB_PATH is not set on the function")
    else:
        if ort_path.startswith("/opt/"):
            candidates = [d / ort_path[len("/opt/") :] for d in layer_dirs.values()]
        else:
            candidates = [code_dir / ort_path.replace("/var/task/", "", 1)]
        ort_found = next((c for c in candidates if c.is_file()), None)
        if ort_found is None:
            problems.append(
                f"ORT_DYLIB_PATH={ort_path} is not in the function or its layers"
            )

    needed_all = sorted({lib for e in elves for lib in e["needed"]})
    from_image = [lib for lib in needed_all if lib not in shipped]
    sizes = {}
    total_unzipped = 0
    for label, root in roots.items():
        if root.is_dir():
            zipped, unzipped = zip_size(root)
            sizes[label] = {"zipped": zipped, "unzipped": unzipped}
            total_unzipped += unzipped
    if total_unzipped > UNZIPPED_LIMIT:
        problems.append(
            f"function + layers unzipped {total_unzipped} B > {UNZIPPED_LIMIT} B"
        )

    return {
        "function": fn_id,
        "architecture": arch,
        "files": elves,
        "max_versions": max_versions(elves),
        "needed": needed_all,
        "needed_from_image": from_image,
        "shipped": sorted(shipped),
        "ort_dylib_path": ort_path,
        "ort_dylib_file": str(ort_found) if ort_found else None,
        "sizes": sizes,
        "total_unzipped": total_unzipped,
        "unzipped_limit": UNZIPPED_LIMIT,
        "problems": problems,
    }


def mb(n: int) -> str:
    return f"{n / 1_000_000:.1f} MB"


def report(result: dict) -> None:
    print(f"Package check for {result['function']} ({result['architecture']})")
    for elf in result["files"]:
        print(
            f"  {elf['in']}: {elf['relative']} [{elf['machine']}] needs {', '.join(elf['needed'])}"
        )
    print(
        "  highest symbol versions needed: "
        + ", ".join(result["max_versions"].values())
    )
    print(
        "  libraries from the provided.al2023 image: "
        + ", ".join(result["needed_from_image"])
    )
    print(f"  ORT_DYLIB_PATH={result['ort_dylib_path']} -> {result['ort_dylib_file']}")
    for label, size in result["sizes"].items():
        print(f"  {label}: zip {mb(size['zipped'])}, unzipped {mb(size['unzipped'])}")
    print(
        f"  function + layers unzipped: {mb(result['total_unzipped'])} "
        f"(Lambda limit {mb(result['unzipped_limit'])})"
    )
    if result["problems"]:
        print("FAILED:")
        for problem in result["problems"]:
            print(f"  - {problem}")
    else:
        print("OK")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--build-dir", type=Path, default=HERE / ".aws-sam" / "build")
    parser.add_argument(
        "--arch", choices=sorted(MACHINES), help="default: the template's"
    )
    parser.add_argument("--json", type=Path, help="write the findings here")
    args = parser.parse_args()
    result = check(args.build_dir.resolve(), args.arch)
    report(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 1 if result["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
