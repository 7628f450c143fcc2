"""Prefect tasks: each body is one call into ``xgeo`` (no science here).

Stages of one scene: ``plan_scene`` (tile to Zarr) -> ``match_batch`` per tile batch (runs on
the dask cluster as a plain function, cached per batch) -> ``fuse_scene`` -> ``write_scene``
(COG) -> ``report_scene`` (JSON + GeoPackage + PNG) -> ``catalog_scene`` (STAC item).

Caching has two levels:

* **scene** (:func:`scene_cache_key`): sha256 of both inputs' identity (resolved path, size,
  mtime), the config hash and the weights version. The STAC item stores it as
  ``xgeo:cache_key``; :func:`outputs_done` skips a scene whose item, COG and report exist with a
  matching key, so a rerun does no work and rewrites nothing (outputs stay byte-identical).
* **tile batch** (:func:`batch_cache_key`): the scene key + plan hash + tile keys, used as the
  Prefect ``cache_key_fn`` of ``match_batch`` with results persisted in the night's work dir, so
  a night interrupted after some batches skips the finished ones.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from flows._prefect import retry_on_io

__all__ = [
    "OutputPaths",
    "file_identity",
    "scene_cache_key",
    "batch_cache_key",
    "outputs_done",
    "split_batches",
    "plan_scene",
    "match_batch",
    "fuse_scene",
    "write_scene",
    "report_scene",
    "catalog_scene",
]

IO_RETRIES = 2
IO_RETRY_DELAYS = [2, 10]


@dataclass(frozen=True)
class OutputPaths:
    """Where one scene's outputs go."""

    cog: Path
    report: Path
    item: Path

    @classmethod
    def in_dir(cls, folder: str | Path, stem: str) -> OutputPaths:
        folder = Path(folder)
        return cls(folder / f"{stem}.tif", folder / f"{stem}_report.json",
                   folder / f"{stem}.stac.json")

    @classmethod
    def for_cog(cls, cog: str | Path, report: str | Path | None = None) -> OutputPaths:
        cog = Path(cog)
        rep = Path(report) if report else cog.with_name(f"{cog.stem}_report.json")
        return cls(cog, rep, cog.with_name(f"{cog.stem}.stac.json"))


# --------------------------------------------------------------------------- cache keys


def file_identity(path: str | Path) -> dict[str, Any]:
    """Identity of an input file for cache keys: resolved path, size and mtime (ns).

    Raises:
        MissingFileError: the file does not exist.
    """
    from xgeo.errors import MissingFileError

    p = Path(path).resolve()
    if not p.exists():
        raise MissingFileError("input scene not found", p, "check the job catalog's asset href")
    st = p.stat()
    return {"path": str(p), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def scene_cache_key(ref: str | Path, mov: str | Path, cfg: Any) -> str:
    """sha256 of (both inputs' identity, config hash, weights version)."""
    from xgeo.pipeline import weights_version

    payload = {"ref": file_identity(ref), "mov": file_identity(mov), "config": cfg.sha256,
               "weights": weights_version(cfg.matcher)}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def batch_cache_key(scene_key: str, plan_sha256: str, tile_keys: Sequence[str]) -> str:
    """sha256 of (scene key, plan hash, tile keys of the batch)."""
    text = json.dumps([scene_key, plan_sha256, list(tile_keys)])
    return hashlib.sha256(text.encode()).hexdigest()


def outputs_done(paths: OutputPaths, key: str) -> bool:
    """True when the COG, report and a valid STAC item with ``xgeo:cache_key == key`` exist."""
    if not (paths.cog.exists() and paths.report.exists() and paths.item.exists()):
        return False
    try:
        item = json.loads(paths.item.read_text())
    except (OSError, ValueError):
        return False
    if item.get("properties", {}).get("xgeo:cache_key") != key:
        return False
    try:
        from xgeo.catalog import validate_output_item

        validate_output_item(paths.item, paths.cog)
    except Exception:  # noqa: BLE001 - an invalid item means: redo the scene
        return False
    return True


def split_batches(tiles: Sequence[Any], batch_size: int) -> list[list[Any]]:
    """Tiles in consecutive batches of ``batch_size`` (last one shorter)."""
    n = max(1, int(batch_size))
    return [list(tiles[i:i + n]) for i in range(0, len(tiles), n)]


# --------------------------------------------------------------------------- tasks


def _cfg(cfg: Mapping[str, Any]) -> Any:
    from xgeo.pipeline import RegisterConfig

    return RegisterConfig.from_dict(dict(cfg))


@task(name="plan-and-tile", cache_policy=NO_CACHE, retries=IO_RETRIES,
      retry_delay_seconds=IO_RETRY_DELAYS, retry_condition_fn=retry_on_io)
def plan_scene(ref: str, mov: str, workdir: str, cfg: Mapping[str, Any]) -> Any:
    """Open both scenes, put mov on the ref grid and tile both into the Zarr store."""
    from xgeo.pipeline import plan_pair

    return plan_pair(ref, mov, workdir, _cfg(cfg))


def _batch_key_fn(context: Any, parameters: Mapping[str, Any]) -> str:
    return "xgeo-batch-" + str(parameters["cache_key"])


@task(name="match-batch", cache_key_fn=_batch_key_fn, persist_result=True,
      result_serializer="json", retries=IO_RETRIES, retry_delay_seconds=IO_RETRY_DELAYS,
      retry_condition_fn=retry_on_io)
def match_batch(
    plan_json: str, tile_jsons: list[str], cfg: Mapping[str, Any], address: str, cache_key: str
) -> list[dict[str, Any]]:
    """Match one tile batch on the dask cluster at ``address``; returns TileResult dicts."""
    from flows.runners import active_handle, submit_batches

    handle = active_handle(address)
    (out,) = submit_batches(handle, [(f"xgeo-match-{cache_key[:20]}", plan_json, tile_jsons,
                                      dict(cfg))])
    return out


@task(name="fuse", cache_policy=NO_CACHE)
def fuse_scene(plan: Any, results: list[dict[str, Any]], cfg: Mapping[str, Any]) -> Any:
    """Fuse all tiles' correspondences into one ``mov_to_ref`` model with QA."""
    from xgeo.pipeline import TileResult, fuse_tiles

    return fuse_tiles(plan, [TileResult.from_dict(r) for r in results], _cfg(cfg))


@task(name="warp-and-write", cache_policy=NO_CACHE, retries=IO_RETRIES,
      retry_delay_seconds=IO_RETRY_DELAYS, retry_condition_fn=retry_on_io)
def write_scene(plan: Any, fit: Any, out_path: str, cfg: Mapping[str, Any]) -> str:
    """Warp (or rewrite the geotransform) and write the validated COG atomically."""
    from xgeo.pipeline import write_output

    return str(write_output(plan, fit, out_path, _cfg(cfg)))


@task(name="report", cache_policy=NO_CACHE, retries=IO_RETRIES,
      retry_delay_seconds=IO_RETRY_DELAYS, retry_condition_fn=retry_on_io)
def report_scene(plan: Any, fit: Any, results: list[dict[str, Any]], cfg: Mapping[str, Any],
                 out_path: str, report_path: str, seconds: float) -> dict[str, Any]:
    """Write the JSON report, tie points GeoPackage and PNG figure."""
    from xgeo.pipeline import TileResult, finish_report

    return finish_report(plan, fit, [TileResult.from_dict(r) for r in results], _cfg(cfg),
                         out_path, report_path, seconds)


@task(name="stac-item", cache_policy=NO_CACHE, retries=IO_RETRIES,
      retry_delay_seconds=IO_RETRY_DELAYS, retry_condition_fn=retry_on_io)
def catalog_scene(job: Any, paths: OutputPaths, report: Mapping[str, Any], cache_key: str) -> str:
    """Write and validate the output STAC item; it is written last and marks the scene done."""
    from xgeo.catalog import make_output_item, validate_output_item, write_output_item

    item = make_output_item(job, paths.cog, paths.report, report,
                            properties={"xgeo:cache_key": cache_key})
    write_output_item(item, paths.item)
    validate_output_item(paths.item, paths.cog)
    return str(paths.item)
