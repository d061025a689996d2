"""Publishing checkpoints on the Hugging Face Hub with a Hub model card, and the Hub command line.

    python -m mculora.hosting.hub pull owner/name[@revision]      # download (cached) and print the local directory
    python -m mculora.hosting.hub push CHECKPOINT owner/name --license cc-by-nc-sa-4.0 [--dataset ID ...] [--private]

Downloading, which serving uses at run time, is `mculora.hub_download`.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

from mculora import __version__
from mculora.checkpoint import CheckpointConfig, CheckpointError, load_checkpoint, strip_front_matter
from mculora.hub_download import DEFAULT_ENDPOINT, HubError, download, endpoint_url, hub_reachable, parse_reference
from mculora.modalities import COMBINATIONS

CARD_FILE, METRICS_FILE = "README.md", "metrics.json"
TAGS = ["mculora", "emotion-recognition", "multimodal", "missing-modalities", "lora"]


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


def default_body(config: CheckpointConfig, repo_id: str) -> str:
    return (
        f"# {repo_id}\n\nAn mculora (MCULoRA) checkpoint ({config.task}, labels: "
        f"{', '.join(config.label_names)}; encoder profile '{config.encoders['profile']}').\n\n"
        f'```python\nfrom mculora.serving import Predictor\n\npredictor = Predictor.from_pretrained("{repo_id}")\n```\n'
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
    parser = argparse.ArgumentParser(prog="mculora hub", description=__doc__.splitlines()[0])
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
