"""Record and replay LLM HTTP traffic with vcrpy.

Recording writes ``<cassettes>/<scenario>-<provider>.yaml`` with its metadata (how, when, which
model) and with keys scrubbed: auth headers and key query parameters are dropped, and any secret
value left in a body is replaced. Replay matches on method, path and body (not host), serves from
the file and blocks the network: a request with no recorded answer raises.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from llm_sched.errors import UserError

METADATA_KEY = "llm_sched"
SECRET_HEADERS = ("authorization", "key", "x-api-key", "api-key", "cookie", "set-cookie")
SECRET_QUERY_PARAMETERS = ("api_key", "key", "token")


def cassette_path(cassettes_dir: Path, scenario: str, provider: str) -> Path:
    return cassettes_dir / f"{scenario}-{provider}.yaml"


def _vcr(record_mode: str, secrets: Iterable[str]) -> Any:
    import vcr

    return vcr.VCR(
        record_mode=record_mode,
        match_on=("method", "path", "body"),
        filter_headers=[(h, None) for h in SECRET_HEADERS],
        filter_query_parameters=[(p, None) for p in SECRET_QUERY_PARAMETERS],
        filter_sensitive_data=[("<SECRET>", s) for s in secrets if s],
        decode_compressed_response=True,
        record_on_exception=False,
    )


@contextmanager
def recording(path: Path, metadata: dict[str, Any], secrets: Iterable[str] = ()) -> Iterator[None]:
    """Record every HTTP request made inside the block to ``path`` (replacing it only on success)."""
    partial = path.with_name(path.name + ".recording")
    partial.unlink(missing_ok=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    stamp = {"recorded_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), **metadata}
    with _vcr("all", secrets).use_cassette(str(partial), serializer="yaml") as cassette:
        cassette.get_metadata(METADATA_KEY, stamp)
        yield
    if partial.exists():
        os.replace(partial, path)


@contextmanager
def replaying(path: Path) -> Iterator[dict[str, Any]]:
    """Serve HTTP inside the block from ``path``; yields the cassette's metadata."""
    if not path.is_file():
        raise UserError(f"no cassette at {path}: record one with --record against a real endpoint")
    with _vcr("none", ()).use_cassette(str(path), serializer="yaml") as cassette:
        yield read_metadata_from(cassette, path)


def read_metadata_from(cassette: Any, path: Path) -> dict[str, Any]:
    import vcr.errors

    try:
        return dict(cassette.get_metadata(METADATA_KEY, None))
    except (vcr.errors.MissingMetadataError, TypeError):
        raise UserError(f"{path}: not an llm-sched cassette (no '{METADATA_KEY}' metadata)") from None


def read_metadata(path: Path) -> dict[str, Any]:
    """The metadata of the cassette at ``path``, without patching any HTTP library."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise UserError(f"{path}: cannot read the cassette: {exc}") from None
    metadata = (data or {}).get("metadata", {}).get(METADATA_KEY) if isinstance(data, dict) else None
    if not isinstance(metadata, dict):
        raise UserError(f"{path}: not an llm-sched cassette (no '{METADATA_KEY}' metadata)")
    return metadata
