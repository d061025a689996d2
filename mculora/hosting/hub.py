"""Checkpoints on the Hugging Face Hub: load one by name, publish a trained one with a Hub model card.

    python -m mculora.hosting.hub pull owner/name[@revision]      # download (cached) and print the local directory
    python -m mculora.hosting.hub push CHECKPOINT owner/name --license cc-by-nc-sa-4.0 [--dataset ID ...] [--private]

`Predictor.from_pretrained` takes a local directory or ``owner/name[@revision]``; a name goes through `resolve`.
Pin a commit hash (``owner/name@<40 hex digits>``) for a reproducible download: once cached it is used without
asking the Hub again. Everything here is opt-in: the default profile loads the shipped checkpoint and never
touches the network. When the Hub cannot be reached, the answer comes at once (`HubError`) instead of after the
client's retries.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlparse

from mculora import __version__
from mculora.checkpoint import CONFIG_FILE, WEIGHTS_FILE, CheckpointConfig, CheckpointError
from mculora.modalities import COMBINATIONS

DEFAULT_ENDPOINT = "https://huggingface.co"
CARD_FILE, METRICS_FILE = "README.md", "metrics.json"
# What a checkpoint directory holds; anything else in a model repo (training logs, other formats) is not fetched.
CHECKPOINT_PATTERNS = ["*.json", "*.safetensors", "*.md", "*.png"]
TAGS = ["mculora", "emotion-recognition", "multimodal", "missing-modalities", "lora"]
# owner/name with the Hub's characters, then an optional @branch, @tag or @commit.
REFERENCE = re.compile(r"(?P<repo>[A-Za-z0-9][\w.-]*/[\w.-]+)(?:@(?P<revision>[\w./-]+))?")


class HubError(CheckpointError):
    """A Hub checkpoint that cannot be fetched or published, with the reason and what to do."""


def endpoint_url(endpoint: str | None = None) -> str:
    return (endpoint or os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def hub_reachable(endpoint: str | None = None, timeout: float = 5.0) -> bool:
    """Whether the Hub answers at all. Checked before a download so that an offline machine gets its answer at once
    instead of after the hub client's retries with back-off (about 45 s per file)."""
    url = urlparse(endpoint_url(endpoint))
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname, port), timeout=timeout).close()
    except OSError:
        return False
    return True


def parse_reference(reference: str) -> tuple[str, str | None]:
    """``owner/name[@revision]`` -> (repo id, revision or None for the default branch)."""
    match = REFERENCE.fullmatch(reference.strip())
    if match is None:
        raise HubError(f"{reference!r} is neither a checkpoint directory nor a Hub name like 'owner/name@revision'")
    return match["repo"], match["revision"]


def resolve(path_or_reference: str | Path, endpoint: str | None = None) -> Path:
    """A local checkpoint directory as is (a `Path` always is one); otherwise a string ``owner/name[@revision]``,
    downloaded from the Hub or found in the cache."""
    local = Path(path_or_reference)
    if local.exists() or isinstance(path_or_reference, Path) or not REFERENCE.fullmatch(str(path_or_reference)):
        return local
    return download(str(path_or_reference), endpoint=endpoint)


def download(reference: str, cache_dir: str | Path | None = None, endpoint: str | None = None) -> Path:
    """Download ``owner/name[@revision]`` into the Hugging Face cache (or find it there) and return its directory."""
    return checked(snapshot(reference, CHECKPOINT_PATTERNS, "checkpoint", cache_dir, endpoint), reference)


def snapshot(
    reference: str,
    patterns: list[str],
    what: str,
    cache_dir: str | Path | None = None,
    endpoint: str | None = None,
) -> Path:
    """The files of ``owner/name[@revision]`` that match ``patterns``, downloaded into the Hugging Face cache or
    found there; `HubError` naming ``what`` (e.g. "checkpoint") and what to do when that is impossible."""
    import huggingface_hub
    from huggingface_hub import constants
    from huggingface_hub.errors import (
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    repo_id, revision = parse_reference(reference)
    url = endpoint_url(endpoint)
    request = dict(
        repo_id=repo_id,
        revision=revision,
        cache_dir=cache_dir,
        allow_patterns=patterns,
        endpoint=url,
        library_name="mculora",
        library_version=__version__,
    )
    offline_mode = constants.HF_HUB_OFFLINE
    if not offline_mode and hub_reachable(url):
        try:
            return Path(huggingface_hub.snapshot_download(**request))
        except RepositoryNotFoundError:
            raise HubError(
                f"{repo_id} was not found on {url}. Check the name; for a private repository log in first "
                "(`hf auth login` or HF_TOKEN)."
            ) from None
        except RevisionNotFoundError:
            raise HubError(f"{repo_id} has no revision {revision!r} on {url}") from None
        except (HfHubHTTPError, OSError) as error:
            raise HubError(f"downloading {reference} from {url} failed: {error}") from None
    try:
        return Path(huggingface_hub.snapshot_download(**request, local_files_only=True))
    except LocalEntryNotFoundError:
        why = "HF_HUB_OFFLINE is set" if offline_mode else f"{url} cannot be reached from this machine"
        raise HubError(
            f"cannot load {what} {reference!r}: {why} and no copy is cached. Connect this machine once (the "
            f"download is cached), or pass a local {what} directory."
        ) from None


def checked(directory: Path, reference: str) -> Path:
    if not (directory / CONFIG_FILE).is_file() or not (directory / WEIGHTS_FILE).is_file():
        raise HubError(f"{reference} is not an mculora checkpoint: it has no {CONFIG_FILE} and {WEIGHTS_FILE}")
    return directory


# -- publishing --------------------------------------------------------------------------------------------------


def model_card(directory: Path, config: CheckpointConfig, repo_id: str, license: str, datasets: list[str]) -> str:
    """The checkpoint's README.md with Hub metadata on top: licence, tags, datasets, and a ``model-index`` with every
    per-combination result in its metrics.json. A card body the checkpoint already has is kept."""
    from huggingface_hub import ModelCardData

    metrics_path = directory / METRICS_FILE
    metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() else {}
    data = ModelCardData(
        license=license,
        library_name="mculora",
        tags=TAGS,
        datasets=datasets,
        model_name=repo_id.split("/")[-1],
        eval_results=eval_results(metrics, datasets[0]) or None,
    )
    body_path = directory / CARD_FILE
    body = strip_front_matter(body_path.read_text()) if body_path.is_file() else default_body(config, repo_id)
    return f"---\n{data.to_yaml()}\n---\n\n{body.lstrip()}"


def eval_results(metrics: dict, dataset: str) -> list:
    """The Hub's evaluation results: one per evaluation set in metrics.json, with each of its numbers per modality
    combination (``accuracy`` named "accuracy (at)", configured "at", ...). An evaluation set is a top-level section
    whose keys are combination names, e.g. ``paired_test: {"atv": {"accuracy": ...}, "at": {...}}``."""
    from huggingface_hub import EvalResult

    results = []
    for section, table in metrics.items():
        if not isinstance(table, dict) or not table or not set(table) <= set(COMBINATIONS):
            continue
        for combination, values in table.items():
            for metric, value in values.items() if isinstance(values, dict) else ():
                if metric != "n" and isinstance(value, int | float):  # n: the sample count, not a result
                    results.append(
                        EvalResult(
                            task_type="emotion-recognition",
                            task_name="Emotion recognition with missing modalities",
                            dataset_type=dataset,
                            dataset_name=section,
                            dataset_config=section,
                            dataset_split="test",
                            metric_type=metric,
                            metric_name=f"{metric} ({combination})",
                            metric_config=combination,
                            metric_value=round(float(value), 4),
                        )
                    )
    return results


def strip_front_matter(text: str) -> str:
    if text.startswith("---\n"):
        end = text.find("\n---\n", 4)
        if end != -1:
            return text[end + len("\n---\n") :]
    return text


def default_body(config: CheckpointConfig, repo_id: str) -> str:
    return (
        f"# {repo_id}\n\nAn mculora (MCULoRA) checkpoint ({config.task}, labels: "
        f"{', '.join(config.label_names)}; encoder profile '{config.encoders['profile']}').\n\n"
        f'```python\nfrom mculora import Predictor\n\npredictor = Predictor.from_pretrained("{repo_id}")\n```\n'
    )


def push(
    checkpoint: str | Path,
    repo_id: str,
    license: str,
    datasets: list[str] | None = None,
    private: bool = False,
    revision: str | None = None,
    token: str | None = None,
    endpoint: str | None = None,
) -> str:
    """Upload a checkpoint directory to the model repository ``repo_id`` (created if needed) with a Hub model card.
    Returns the URL of the commit. The checkpoint is validated first: a broken one is never published."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    from mculora.checkpoint import load_checkpoint

    directory = Path(checkpoint)
    _, config = load_checkpoint(directory)  # raises CheckpointError with the reason
    parse_reference(repo_id)
    url = endpoint_url(endpoint)
    if not hub_reachable(url):
        raise HubError(f"cannot publish to {repo_id}: {url} cannot be reached from this machine")
    datasets = datasets or [config.dataset or "custom"]
    api = HfApi(endpoint=url, token=token, library_name="mculora", library_version=__version__)
    with tempfile.TemporaryDirectory() as staging:
        shutil.copytree(directory, staging, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".*", "__pycache__"))
        Path(staging, CARD_FILE).write_text(model_card(directory, config, repo_id, license, datasets))
        try:
            api.create_repo(repo_id, private=private, exist_ok=True)
            commit = api.upload_folder(
                repo_id=repo_id,
                folder_path=staging,
                revision=revision,
                commit_message=f"Upload mculora checkpoint ({config.method}, {config.dataset or 'custom data'})",
            )
        except (HfHubHTTPError, OSError) as error:
            raise HubError(f"publishing to {repo_id} on {url} failed: {error}") from None
    return commit.commit_url


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mculora.hosting.hub", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    pull = commands.add_parser("pull", help="download a checkpoint (or find it in the cache); prints its directory")
    pull.add_argument("reference", help="owner/name or owner/name@revision")
    upload = commands.add_parser("push", help="publish a checkpoint directory with a Hub model card")
    upload.add_argument("checkpoint", type=Path)
    upload.add_argument("repo_id", help="owner/name of the model repository (created if it does not exist)")
    upload.add_argument("--license", required=True, help="Hub licence id of the weights, e.g. cc-by-nc-sa-4.0, mit")
    upload.add_argument("--dataset", action="append", help="Hub dataset id it was trained on (repeatable)")
    upload.add_argument("--private", action="store_true")
    upload.add_argument("--revision", help="branch to commit to (default: main)")
    for command in (pull, upload):
        command.add_argument("--endpoint", help=f"Hub URL (default: HF_ENDPOINT or {DEFAULT_ENDPOINT})")
    args = parser.parse_args(argv)
    try:
        if args.command == "pull":
            print(download(args.reference, endpoint=args.endpoint))
        else:
            options = dict(datasets=args.dataset, private=args.private, revision=args.revision, endpoint=args.endpoint)
            print(push(args.checkpoint, args.repo_id, args.license, **options))
    except CheckpointError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
