"""Checkpoints and models from the Hugging Face Hub, at run time: resolve ``owner/name[@revision]`` and download it
into the Hugging Face cache (or find it there).

`Predictor.from_pretrained` takes a local directory or ``owner/name[@revision]``; a name goes through `resolve`.
Pin a commit hash (``owner/name@<40 hex digits>``) for a reproducible download: once cached it is used without
asking the Hub again. Everything here is opt-in: the default profile loads the shipped checkpoint and never
touches the network. When the Hub cannot be reached, the answer comes at once (`HubError`) instead of after the
client's retries. Publishing is `mculora.hosting.hub`'s job.
"""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path
from urllib.parse import urlparse

from mculora import __version__
from mculora.checkpoint import CONFIG_FILE, WEIGHTS_FILE, CheckpointError

DEFAULT_ENDPOINT = "https://huggingface.co"
# What a checkpoint directory holds; anything else in a model repo (training logs, other formats) is not fetched.
CHECKPOINT_PATTERNS = ["*.json", "*.safetensors", "*.md", "*.png"]
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
