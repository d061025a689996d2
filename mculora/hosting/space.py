"""A Hugging Face Space for the demo, assembled from this repository and checked before it is pushed.

    python -m mculora.hosting.space [--out build/space]       # or: make space
    python -m mculora.hosting.space --check FOLDER             # validate an existing folder only

The folder is self-contained: app.py, the mculora package, the pinned requirements, packages.txt, the example media,
the default checkpoint and the networks of the other methods' checkpoints beside it, with a .gitattributes that
stores binaries with LFS. It is pushed as a fresh upload, never with this repository's history, because the Hub
rejects a large binary that any commit holds as a plain git blob. The checks are the ones a Space build would fail
on later, with less telling messages: the README's front matter, the gradio pin against ``sdk_version``, Python and
torch against ZeroGPU's lists, pins, apt package names, and every large or binary file covered by an LFS pattern.
"""

from __future__ import annotations

import argparse
import fnmatch
import re
import shutil
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
# What ZeroGPU runs (Hugging Face's ZeroGPU documentation, 2026-12). A front matter "3.12" selects 3.12.12.
ZERO_GPU_PYTHON = ("3.10", "3.10.13", "3.12", "3.12.12")
ZERO_GPU_TORCH = ("2.8.0", "2.9.1", "2.10.0", "2.11.0")
MAX_PLAIN_BYTES = 10 * 1000 * 1000  # the Hub's limit for a file outside LFS/Xet
COLORS = ("red", "yellow", "green", "blue", "indigo", "purple", "pink", "gray")
REQUIRED_KEYS = ("title", "sdk", "sdk_version", "python_version", "app_file")
LFS_PATTERNS = ("*.safetensors", "*.png", "*.jpg", "*.jpeg", "*.wav", "*.mp4")
# (source, destination) relative to the repository and the Space; directories are copied whole.
CONTENTS = (
    ("README.md", "README.md"),
    ("app.py", "app.py"),
    ("requirements.txt", "requirements.txt"),
    ("packages.txt", "packages.txt"),
    ("mculora", "mculora"),
    ("assets/examples", "assets/examples"),
    ("checkpoints/default", "checkpoints/default"),
)
# The demo serves the top-level checkpoint only; nested benchmark checkpoints and caches stay behind.
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", ".*", "ravdess_au")
# Other methods' checkpoints beside the default (`mculora.checkpoint.sibling_checkpoints`, as the app finds them):
# their networks only, since the default checkpoint's encoder weights serve every method.
PEER_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", ".*", "ravdess_au", "*_net.safetensors")
PIN = re.compile(r"(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[A-Za-z0-9.+!-]+)")
APT_PACKAGE = re.compile(r"[a-z0-9][a-z0-9+.-]+")


class SpaceError(ValueError):
    """A Space folder the Hub would refuse or fail to build, with every reason."""


def assemble(out: Path, root: Path = ROOT) -> Path:
    """Copy the Space's files from ``root`` into ``out`` (replacing it) and write its .gitattributes."""
    if out.exists():
        shutil.rmtree(out)
    for source, destination in CONTENTS:
        path = root / source
        if path.is_dir():
            shutil.copytree(path, out / destination, ignore=IGNORED)
        else:
            (out / destination).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, out / destination)
    from mculora.checkpoint import sibling_checkpoints

    for peer in sibling_checkpoints(root / "checkpoints" / "default"):
        shutil.copytree(peer, out / "checkpoints" / peer.name, ignore=PEER_IGNORED)
    lines = [f"{pattern} filter=lfs diff=lfs merge=lfs -text" for pattern in LFS_PATTERNS]
    (out / ".gitattributes").write_text("\n".join(lines) + "\n")
    return out


def front_matter(readme: Path) -> dict:
    text = readme.read_text()
    if not text.startswith("---\n") or "\n---\n" not in text[4:]:
        raise SpaceError(f"{readme.name} must start with a YAML front matter block between '---' lines")
    try:
        data = yaml.safe_load(text[4 : text.index("\n---\n", 4)])
    except yaml.YAMLError as error:
        raise SpaceError(f"{readme.name}: the front matter is not valid YAML ({error})") from None
    if not isinstance(data, dict):
        raise SpaceError(f"{readme.name}: the front matter must be a mapping of keys to values")
    return data


def pins(requirements: Path) -> tuple[dict[str, str], list[str]]:
    """``name -> version`` of every requirement line, and a problem for each line that is not an exact pin."""
    found, problems = {}, []
    for number, raw in enumerate(requirements.read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        match = PIN.fullmatch(line)
        if match is None:
            problems.append(f"requirements.txt line {number}: {line!r} is not an exact pin (name==version)")
        else:
            found[match["name"].lower().replace("_", "-")] = match["version"]
    return found, problems


def lfs_patterns(folder: Path) -> list[str]:
    attributes = folder / ".gitattributes"
    if not attributes.is_file():
        return []
    return [line.split()[0] for line in attributes.read_text().splitlines() if "filter=lfs" in line.split()[1:]]


def lfs_tracked(relative: str, patterns: list[str]) -> bool:
    """git's rule: a pattern without a slash matches the file name at any depth, one with a slash the whole path."""
    name = relative.rsplit("/", 1)[-1]
    return any(fnmatch.fnmatch(relative if "/" in p else name, p.lstrip("/")) for p in patterns)


def is_binary(path: Path) -> bool:
    with path.open("rb") as handle:
        return b"\0" in handle.read(8000)


def check_front_matter(meta: dict, folder: Path, pinned: dict[str, str]) -> list[str]:
    problems = [f"README.md front matter: '{key}' is missing" for key in REQUIRED_KEYS if key not in meta]
    if meta.get("sdk", "gradio") != "gradio":
        problems.append(f"README.md front matter: sdk is {meta['sdk']!r}; this app needs 'gradio'")
    if "sdk_version" in meta and str(meta["sdk_version"]) != pinned.get("gradio"):
        problems.append(
            f"README.md front matter: sdk_version {meta['sdk_version']} differs from the gradio pin "
            f"{pinned.get('gradio', '(none)')} in requirements.txt; the Space would run another gradio than tested"
        )
    if "python_version" in meta and str(meta["python_version"]) not in ZERO_GPU_PYTHON:
        problems.append(
            f"README.md front matter: python_version {meta['python_version']!r} is not one ZeroGPU runs "
            f'({", ".join(ZERO_GPU_PYTHON)}); quote it ("3.12") so that YAML keeps it a string'
        )
    if "app_file" in meta and not (folder / str(meta["app_file"])).is_file():
        problems.append(f"README.md front matter: app_file {meta['app_file']!r} is not in the folder")
    for key in ("colorFrom", "colorTo"):
        if key in meta and meta[key] not in COLORS:
            problems.append(f"README.md front matter: {key} {meta[key]!r} is not one of {', '.join(COLORS)}")
    if len(str(meta.get("short_description", ""))) > 60:
        problems.append("README.md front matter: short_description is longer than the Hub's 60 characters")
    if "tags" in meta and not (isinstance(meta["tags"], list) and all(isinstance(t, str) for t in meta["tags"])):
        problems.append("README.md front matter: tags must be a list of strings")
    return problems


def check_requirements(pinned: dict[str, str]) -> list[str]:
    problems = []
    torch, torchaudio = pinned.get("torch"), pinned.get("torchaudio")
    if torch not in ZERO_GPU_TORCH:
        listed = ", ".join(ZERO_GPU_TORCH)
        problems.append(f"requirements.txt: torch {torch or '(not pinned)'} is not on ZeroGPU's list ({listed})")
    if torch and torchaudio and torchaudio.rsplit(".", 1)[0] != torch.rsplit(".", 1)[0]:
        problems.append(f"requirements.txt: torchaudio {torchaudio} is not the partner release of torch {torch}")
    return problems


def check_files(folder: Path) -> list[str]:
    problems, patterns = [], lfs_patterns(folder)
    for path in sorted(p for p in folder.rglob("*") if ".git" not in p.relative_to(folder).parts[:1]):
        relative = path.relative_to(folder).as_posix()
        if path.is_symlink():
            problems.append(f"{relative}: a symbolic link; the Hub stores files only")
        elif path.is_file() and not lfs_tracked(relative, patterns):
            if path.stat().st_size > MAX_PLAIN_BYTES:
                size = path.stat().st_size / 1e6
                problems.append(f"{relative}: {size:.1f} MB, over the Hub's 10 MB outside LFS (see .gitattributes)")
            elif is_binary(path):
                problems.append(f"{relative}: a binary file outside LFS, which the Hub rejects (see .gitattributes)")
    return problems


def check_checkpoint(directory: Path) -> list[str]:
    """The checkpoint the app serves must load: a clone without its LFS objects would ship pointer files."""
    from mculora.checkpoint import CheckpointError, load_checkpoint

    try:
        load_checkpoint(directory)
    except CheckpointError as error:
        return [f"the app's checkpoint does not load: {error}"]
    return []


def validate(folder: Path) -> None:
    """Raise `SpaceError` listing every problem found in the Space folder."""
    for required in ("README.md", "requirements.txt"):
        if not (folder / required).is_file():
            raise SpaceError(f"{folder}: no {required}")
    pinned, problems = pins(folder / "requirements.txt")
    problems += check_front_matter(front_matter(folder / "README.md"), folder, pinned)
    problems += check_requirements(pinned)
    packages = folder / "packages.txt"
    if packages.is_file():
        for line in filter(None, (raw.strip() for raw in packages.read_text().splitlines())):
            if not APT_PACKAGE.fullmatch(line):
                problems.append(f"packages.txt: {line!r} is not a Debian package name (one per line)")
    problems += check_files(folder)
    problems += check_checkpoint(folder / "checkpoints" / "default")
    if problems:
        raise SpaceError(f"{folder} is not a valid Space:\n" + "\n".join(f"  - {p}" for p in problems))


def listing(folder: Path) -> str:
    files = sorted(p for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    patterns = lfs_patterns(folder)
    lines = []
    for path in files:
        relative = path.relative_to(folder).as_posix()
        if not relative.startswith("mculora/"):  # the package is listed as one line below
            lfs = "  (LFS)" if lfs_tracked(relative, patterns) else ""
            lines.append(f"  {path.stat().st_size / 1e6:9.3f} MB  {relative}{lfs}")
    package = [p for p in files if p.relative_to(folder).parts[0] == "mculora"]
    lines.append(f"  {sum(p.stat().st_size for p in package) / 1e6:9.3f} MB  mculora/ ({len(package)} files)")
    total = sum(p.stat().st_size for p in files) / 1e6
    return "\n".join(lines) + f"\n  {total:9.3f} MB  in {len(files)} files"


PUBLISH = """\
Publish it to a Space of yours (replace OWNER/NAME). With the Hub CLI, which stores large files with Xet/LFS itself:
  hf auth login
  hf repos create OWNER/NAME --repo-type space --space-sdk gradio --exist-ok
  hf upload OWNER/NAME {folder} . --repo-type space
or with git (git-lfs installed), as a fresh history in which the weights are LFS objects from the first commit:
  cd {folder} && git init -b main && git lfs install --local && git add . && git commit -m "mculora demo"
  git remote add space https://huggingface.co/spaces/OWNER/NAME && git push --force space main
Then pick the hardware in the Space's settings: cpu-basic, a GPU, or ZeroGPU (Python and torch are on its lists)."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mculora space", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "space", help="the folder to (re)create")
    parser.add_argument("--check", type=Path, metavar="FOLDER", help="only validate an existing Space folder")
    args = parser.parse_args(argv)
    folder = args.check or assemble(args.out)
    try:
        validate(folder)
    except SpaceError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"Space folder {folder} passes the checks:\n{listing(folder)}\n")
    print(PUBLISH.format(folder=folder))
    return 0


if __name__ == "__main__":
    sys.exit(main())
