"""STAC catalogs: the job catalog a night reads, and the STAC items each output gets.

Job catalog layout (written by :func:`write_job_catalog`, read by :func:`read_jobs`)::

    catalog.json                 root catalog (pystac, self-contained, relative hrefs)
      scenes/<id>/<id>.json      one Item per input scene: asset ``data`` (the raster),
                                 ``xgeo:modality``, footprint geometry (the AOI), optional
                                 ``xgeo:synth`` recipe that regenerates a missing generated scene
      jobs/<id>/<id>.json        one Item per co-registration job: ``xgeo:reference`` and
                                 ``xgeo:moving`` scene ids (+ links of the same rel to the scene
                                 items), ``xgeo:settings`` (RegisterConfig overrides), AOI geometry

Output items (:func:`make_output_item`) carry projection v2 (``proj:code``, shape, transform,
bbox), raster extension bands, ``derived_from`` links to both input scene items, and the QA report
as an asset and a ``describedby`` link. :func:`validate_output_item` checks them offline: the STAC
core schema that pystac ships, plus structural checks of the two extensions against the COG.

This module never imports Prefect, dask or ``flows/``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xgeo.errors import InputError, MissingFileError
from xgeo.types import MODALITIES

__all__ = [
    "CatalogError",
    "SceneSpec",
    "Job",
    "write_job_catalog",
    "read_jobs",
    "make_output_item",
    "write_output_item",
    "validate_output_item",
    "OUTPUT_EXTENSIONS",
]

PROJ_SCHEMA = "https://stac-extensions.github.io/projection/v2.0.0/schema.json"
RASTER_SCHEMA = "https://stac-extensions.github.io/raster/v1.1.0/schema.json"
OUTPUT_EXTENSIONS: tuple[str, ...] = (PROJ_SCHEMA, RASTER_SCHEMA)
_FIXED_DATETIME = dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc)
_CODE_RE = re.compile(r"^[A-Za-z0-9_.-]+:[A-Za-z0-9_.-]+$")


class CatalogError(InputError):
    """A job catalog or an output STAC item is malformed or points at missing files."""


@dataclass(frozen=True)
class SceneSpec:
    """One input scene to declare in a job catalog.

    Attributes:
        id: STAC item id (unique in the catalog).
        href: path of the raster (absolute, or relative to the catalog root).
        modality: one of :data:`xgeo.types.MODALITIES`, or None to infer it from the file.
        datetime: acquisition time (UTC); None writes a fixed placeholder date.
        synth: recipe (``seed``, ``shape``, ``ref_modality``, ``mov_modality``, ``role``, ``kwargs``)
            that regenerates this scene with :func:`xgeo.synth.write_scene_pair` when it is missing.
    """

    id: str
    href: str
    modality: str | None = None
    datetime: dt.datetime | None = None
    synth: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Job:
    """One co-registration job read from a catalog: moving scene onto reference scene.

    Attributes:
        id: job id (used for output names).
        ref: absolute path of the reference raster.
        mov: absolute path of the moving raster.
        ref_modality: modality tag of the reference, or None (inferred downstream).
        mov_modality: modality tag of the moving scene, or None.
        settings: :class:`xgeo.pipeline.RegisterConfig` overrides for this job.
        aoi: ``(west, south, east, north)`` in EPSG:4326, or None.
        ref_item: absolute href of the reference scene item (for output ``derived_from`` links).
        mov_item: absolute href of the moving scene item.
        datetime: the moving scene's acquisition time (used for the output item).
    """

    id: str
    ref: Path
    mov: Path
    ref_modality: str | None = None
    mov_modality: str | None = None
    settings: Mapping[str, Any] = field(default_factory=dict)
    aoi: tuple[float, float, float, float] | None = None
    ref_item: str | None = None
    mov_item: str | None = None
    datetime: dt.datetime | None = None

    def config_overrides(self) -> dict[str, Any]:
        """The job's RegisterConfig overrides, with modalities from the scene items filled in."""
        d = dict(self.settings)
        if self.ref_modality and "ref_modality" not in d:
            d["ref_modality"] = self.ref_modality
        if self.mov_modality and "mov_modality" not in d:
            d["mov_modality"] = self.mov_modality
        return d

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "ref": str(self.ref), "mov": str(self.mov),
            "ref_modality": self.ref_modality, "mov_modality": self.mov_modality,
            "settings": dict(self.settings), "aoi": list(self.aoi) if self.aoi else None,
            "ref_item": self.ref_item, "mov_item": self.mov_item,
            "datetime": self.datetime.isoformat() if self.datetime else None,
        }


# --------------------------------------------------------------------------- job catalogs


def _footprint(path: Path) -> tuple[dict[str, Any] | None, list[float] | None, str | None]:
    """(geometry in EPSG:4326, bbox, proj:code) of a raster, or Nones when unreadable."""
    try:
        import rasterio
        from rasterio.warp import transform_bounds
    except ImportError:  # pragma: no cover - rasterio is a core dependency
        return None, None, None
    try:
        with rasterio.open(path) as ds:
            if ds.crs is None:
                return None, None, None
            w, s, e, n = transform_bounds(ds.crs, "EPSG:4326", *ds.bounds, densify_pts=21)
            code = _proj_code(ds.crs)
    except Exception:  # noqa: BLE001 - a catalog may declare a scene that is broken; the night reports it
        return None, None, None
    geom = {"type": "Polygon",
            "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]}
    return geom, [w, s, e, n], code


def _proj_code(crs: Any) -> str | None:
    epsg = crs.to_epsg()
    if epsg:
        return f"EPSG:{epsg}"
    auth = crs.to_authority() if hasattr(crs, "to_authority") else None
    return f"{auth[0]}:{auth[1]}" if auth else None


def _check_modality(m: str | None, where: str) -> None:
    if m is not None and m not in MODALITIES:
        raise CatalogError(f"unknown modality {m!r}", where, f"use one of {MODALITIES}")


def write_job_catalog(
    dest: str | Path,
    scenes: Sequence[SceneSpec],
    jobs: Sequence[tuple[str, str, str, Mapping[str, Any]]],
    *,
    catalog_id: str = "xgeo-jobs",
    description: str = "xgeo co-registration jobs",
) -> Path:
    """Write a self-contained job catalog.

    Args:
        dest: folder of the catalog (created); ``catalog.json`` is written there.
        scenes: the input scenes.
        jobs: ``(job_id, ref_scene_id, mov_scene_id, settings)`` per job.
        catalog_id: id of the root catalog.
        description: its description.

    Returns:
        path of ``catalog.json``.
    """
    import pystac

    dest = Path(dest).resolve()
    dest.mkdir(parents=True, exist_ok=True)
    root = pystac.Catalog(id=catalog_id, description=description)
    scenes_cat = pystac.Catalog(id="scenes", description="input scenes")
    jobs_cat = pystac.Catalog(id="jobs", description="co-registration jobs")
    root.add_child(scenes_cat)
    root.add_child(jobs_cat)
    by_id: dict[str, pystac.Item] = {}
    footprints: dict[str, tuple[Any, Any]] = {}
    for sc in scenes:
        _check_modality(sc.modality, sc.id)
        path = Path(sc.href) if os.path.isabs(sc.href) else dest / sc.href
        geom, bbox, code = _footprint(path)
        footprints[sc.id] = (geom, bbox)
        props: dict[str, Any] = {"xgeo:role": "scene"}
        if sc.modality:
            props["xgeo:modality"] = sc.modality
        if sc.synth:
            props["xgeo:synth"] = dict(sc.synth)
        item = pystac.Item(id=sc.id, geometry=geom, bbox=bbox,
                           datetime=sc.datetime or _FIXED_DATETIME, properties=props)
        if code:
            from pystac.extensions.projection import ProjectionExtension

            ProjectionExtension.ext(item, add_if_missing=True).apply(code=code)
        item.add_asset("data", pystac.Asset(
            href=os.path.relpath(path, dest / "scenes" / sc.id), media_type=pystac.MediaType.GEOTIFF,
            roles=["data"], title=path.name))
        scenes_cat.add_item(item)
        by_id[sc.id] = item
    for job_id, ref_id, mov_id, settings in jobs:
        for sid in (ref_id, mov_id):
            if sid not in by_id:
                raise CatalogError(f"job {job_id} names unknown scene {sid!r}", dest,
                                   "declare the scene in `scenes` first")
        geom, bbox = footprints[ref_id]
        item = pystac.Item(
            id=job_id, geometry=geom, bbox=bbox,
            datetime=by_id[mov_id].datetime or _FIXED_DATETIME,
            properties={"xgeo:role": "job", "xgeo:reference": ref_id, "xgeo:moving": mov_id,
                        "xgeo:settings": dict(settings)},
        )
        item.add_link(pystac.Link("xgeo:reference", by_id[ref_id], media_type="application/json"))
        item.add_link(pystac.Link("xgeo:moving", by_id[mov_id], media_type="application/json"))
        jobs_cat.add_item(item)
    root.normalize_hrefs(str(dest))
    root.save(catalog_type=pystac.CatalogType.SELF_CONTAINED)
    return dest / "catalog.json"


def _materialise(item: Any, data_path: Path) -> None:
    """Regenerate a missing generated scene from its ``xgeo:synth`` recipe."""
    recipe = item.properties.get("xgeo:synth")
    if data_path.exists() or not recipe:
        return
    from xgeo.synth import write_scene_pair

    write_scene_pair(
        data_path.parent, int(recipe["seed"]), shape=tuple(recipe["shape"]),
        ref_modality=recipe.get("ref_modality", "optical"),
        mov_modality=recipe.get("mov_modality", "sar"), **dict(recipe.get("kwargs", {})),
    )
    if not data_path.exists():
        raise CatalogError("generated scene was not written where the catalog expects it",
                           data_path, "rebuild the catalog with catalogs/build.py")


def read_jobs(catalog: str | Path, *, materialise: bool = True) -> list[Job]:
    """Read every job of a job catalog, resolving scene items to raster paths.

    Args:
        catalog: ``catalog.json`` of a job catalog (or its folder).
        materialise: regenerate missing generated scenes from their ``xgeo:synth`` recipe.

    Returns:
        the jobs, sorted by id. Scene files are not opened here (a corrupt scene fails its own job
        later, not the catalog read); only a missing file with no recipe is left for the job to
        report.

    Raises:
        CatalogError: the catalog is missing, not STAC, or a job names an unknown scene.
    """
    import pystac

    path = Path(catalog)
    if path.is_dir():
        path = path / "catalog.json"
    if not path.exists():
        raise MissingFileError("job catalog not found", path,
                               "build one with `python catalogs/build.py`")
    try:
        root = pystac.Catalog.from_file(str(path.resolve()))
    except Exception as exc:  # noqa: BLE001 - re-raised typed with the file named
        raise CatalogError(f"not a STAC catalog ({exc})", path) from exc
    scenes: dict[str, tuple[Any, Path]] = {}
    job_items = []
    for item in root.get_items(recursive=True):
        role = item.properties.get("xgeo:role")
        if role == "scene":
            asset = item.assets.get("data")
            if asset is None:
                raise CatalogError(f"scene item {item.id} has no 'data' asset", path)
            data = Path(asset.get_absolute_href() or asset.href)
            scenes[item.id] = (item, data)
        elif role == "job":
            job_items.append(item)
    jobs = []
    for item in job_items:
        p = item.properties
        ids = (p.get("xgeo:reference"), p.get("xgeo:moving"))
        for sid in ids:
            if sid not in scenes:
                raise CatalogError(f"job {item.id} names unknown scene {sid!r}", path,
                                   "every job's xgeo:reference/xgeo:moving must be a scene item id")
        (ref_item, ref_path), (mov_item, mov_path) = scenes[ids[0]], scenes[ids[1]]
        if materialise:
            _materialise(ref_item, ref_path)
            _materialise(mov_item, mov_path)
        settings = p.get("xgeo:settings") or {}
        if not isinstance(settings, dict):
            raise CatalogError(f"job {item.id}: xgeo:settings must be an object", path)
        jobs.append(Job(
            id=item.id, ref=ref_path, mov=mov_path,
            ref_modality=ref_item.properties.get("xgeo:modality"),
            mov_modality=mov_item.properties.get("xgeo:modality"),
            settings=settings, aoi=tuple(item.bbox) if item.bbox else None,  # type: ignore[arg-type]
            ref_item=ref_item.get_self_href(), mov_item=mov_item.get_self_href(),
            datetime=mov_item.datetime,
        ))
    return sorted(jobs, key=lambda j: j.id)


# --------------------------------------------------------------------------- output items


_DTYPES = {"uint8", "uint16", "uint32", "uint64", "int8", "int16", "int32", "int64",
           "float16", "float32", "float64", "cint16", "cint32", "cfloat32", "cfloat64"}


def make_output_item(
    job: Job,
    cog: str | Path,
    report_path: str | Path,
    report: Mapping[str, Any] | None = None,
    *,
    properties: Mapping[str, Any] | None = None,
) -> Any:
    """Build the STAC item of one registered output COG.

    Args:
        job: the job that produced it (inputs become ``derived_from`` links).
        cog: the output COG.
        report_path: the QA report JSON (asset ``qa_report`` + ``describedby`` link); a
            ``.gpkg`` (tie points) and ``.png`` (figure) next to it are added when present.
        report: the report dict (its model type, QA and config hash go into properties).
        properties: extra properties (e.g. ``xgeo:cache_key``).

    Returns:
        a ``pystac.Item`` with projection v2 and raster extensions; hrefs are absolute until
        :func:`write_output_item` saves it.
    """
    import pystac
    import rasterio
    from pystac.extensions.projection import ProjectionExtension
    from pystac.extensions.raster import DataType, RasterBand, RasterExtension
    from rasterio.warp import transform_bounds

    cog, report_path = Path(cog).resolve(), Path(report_path).resolve()
    if not cog.exists():
        raise MissingFileError("output COG not found", cog)
    with rasterio.open(cog) as ds:
        if ds.crs is None:
            raise CatalogError("output has no CRS", cog)
        w, s, e, n = transform_bounds(ds.crs, "EPSG:4326", *ds.bounds, densify_pts=21)
        code = _proj_code(ds.crs)
        shape = [ds.height, ds.width]
        transform = list(ds.transform)[:6]
        bounds = list(ds.bounds)
        dtypes, nodatas, res = ds.dtypes, ds.nodatavals, float(abs(ds.transform.a))
        descriptions = ds.descriptions
    geom = {"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]}
    rep = dict(report or {})
    props: dict[str, Any] = {"xgeo:role": "output", "xgeo:job": job.id}
    for key in ("status", "model", "n_tiepoints", "n_inliers", "rmse_px", "ce90_px",
                "config_sha256", "weights_version", "mov_to_ref_pixel"):
        if key in rep and rep[key] is not None:
            val = rep[key]
            props[f"xgeo:{key}"] = val.get("kind", val) if isinstance(val, dict) and key == "model" else val
    props.update(dict(properties or {}))
    item = pystac.Item(id=job.id, geometry=geom, bbox=[w, s, e, n],
                       datetime=job.datetime or _FIXED_DATETIME, properties=props)
    proj = ProjectionExtension.ext(item, add_if_missing=True)
    if code:
        proj.apply(code=code, shape=shape, transform=transform, bbox=bounds)
    else:
        with rasterio.open(cog) as ds:
            proj.apply(wkt2=ds.crs.to_wkt(), shape=shape, transform=transform, bbox=bounds)
    asset = pystac.Asset(href=str(cog), media_type=pystac.MediaType.COG, roles=["data"],
                         title="co-registered moving scene on the reference grid")
    item.add_asset("data", asset)
    bands = []
    for i, dtype in enumerate(dtypes):
        nd = nodatas[i]
        bands.append(RasterBand.create(
            nodata=None if nd is None else ("nan" if nd != nd else float(nd)),  # noqa: PLR0124
            data_type=DataType(dtype) if dtype in _DTYPES else None,
            spatial_resolution=res,
        ))
        if descriptions and descriptions[i]:
            bands[-1].properties["name"] = descriptions[i]
    RasterExtension.ext(asset, add_if_missing=True).apply(bands=bands)
    if report_path.exists():
        item.add_asset("qa_report", pystac.Asset(
            href=str(report_path), media_type=pystac.MediaType.JSON, roles=["metadata", "qa"],
            title="QA report"))
        item.add_link(pystac.Link("describedby", str(report_path),
                                  media_type="application/json", title="QA report"))
    for suffix, key, media, title in ((".gpkg", "tiepoints", "application/geopackage+sqlite3",
                                       "tie points"), (".png", "figure", pystac.MediaType.PNG,
                                                       "QA figure")):
        p = report_path.with_suffix(suffix)
        if p.exists():
            item.add_asset(key, pystac.Asset(href=str(p), media_type=media, roles=["metadata"],
                                             title=title))
    for role, src, raster in (("reference", job.ref_item, job.ref),
                              ("moving", job.mov_item, job.mov)):
        href = src or str(Path(raster).resolve())
        media = "application/json" if src else pystac.MediaType.GEOTIFF
        item.add_link(pystac.Link("derived_from", href, media_type=media, title=role))
    return item


def write_output_item(item: Any, path: str | Path) -> Path:
    """Save an output item at ``path`` with hrefs relative to it (deterministic JSON)."""
    path = Path(path).resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    item.set_self_href(str(path))
    item.make_asset_hrefs_relative()
    d = item.to_dict(include_self_link=False, transform_hrefs=True)
    for link in d.get("links", []):  # relative inside the output folder, absolute outside it
        href = link.get("href", "")
        if os.path.isabs(href) and Path(href).resolve().is_relative_to(path.parent):
            link["href"] = os.path.relpath(href, path.parent)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(d, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)
    return path


def validate_output_item(path: str | Path, cog: str | Path | None = None) -> Any:
    """Validate an output item offline and return it as a ``pystac.Item``.

    Checks: the STAC core item schema (pystac's bundled JSON schema), projection v2 fields
    (``proj:code`` matches the COG's CRS, ``proj:shape`` and ``proj:transform`` match the COG),
    raster extension bands (one per COG band, valid ``data_type``), that every asset and link
    target exists, that the QA report is linked, and ``derived_from`` links to two inputs.

    Raises:
        CatalogError: listing every problem found.
    """
    import pystac
    import rasterio
    from pystac.validation import validate_dict

    path = Path(path).resolve()
    if not path.exists():
        raise MissingFileError("output STAC item not found", path)
    d = json.loads(path.read_text())
    problems: list[str] = []
    try:
        validate_dict(d, stac_object_type=pystac.STACObjectType.ITEM, extensions=[],
                      href=str(path))
    except Exception as exc:  # noqa: BLE001 - collected into one typed error
        problems.append(f"core schema: {str(exc).splitlines()[0]}")
    for ext in OUTPUT_EXTENSIONS:
        if ext not in d.get("stac_extensions", []):
            problems.append(f"missing extension {ext}")
    item = pystac.Item.from_dict(d, href=str(path))
    props = d.get("properties", {})
    data = item.assets.get("data")
    if data is None:
        problems.append("no 'data' asset")
        raise CatalogError("; ".join(problems), path)
    cog_path = Path(cog) if cog else Path(data.get_absolute_href() or data.href)
    if not cog_path.exists():
        problems.append(f"data asset {cog_path} does not exist")
    else:
        with rasterio.open(cog_path) as ds:
            code = props.get("proj:code")
            if code is None or not _CODE_RE.match(str(code)):
                problems.append(f"proj:code {code!r} is not AUTHORITY:CODE")
            elif ds.crs is not None and _proj_code(ds.crs) != code:
                problems.append(f"proj:code {code} != COG CRS {_proj_code(ds.crs)}")
            if props.get("proj:shape") != [ds.height, ds.width]:
                problems.append(f"proj:shape {props.get('proj:shape')} != {[ds.height, ds.width]}")
            tr = props.get("proj:transform")
            if not isinstance(tr, list) or len(tr) < 6 or any(
                abs(a - b) > 1e-6 for a, b in zip(tr[:6], list(ds.transform)[:6], strict=True)
            ):
                problems.append("proj:transform does not match the COG")
            bands = d["assets"]["data"].get("raster:bands")
            if not isinstance(bands, list) or len(bands) != ds.count:
                problems.append(f"raster:bands must list {ds.count} band(s)")
            else:
                for b in bands:
                    if b.get("data_type") not in _DTYPES:
                        problems.append(f"raster:bands data_type {b.get('data_type')!r} invalid")
    for key, asset in item.assets.items():
        href = asset.get_absolute_href()
        if href and not Path(href).exists():
            problems.append(f"asset {key} -> {href} does not exist")
    derived = [lk for lk in item.links if lk.rel == "derived_from"]
    if len(derived) < 2:
        problems.append("expected derived_from links to the reference and moving inputs")
    described = [lk for lk in item.links if lk.rel == "describedby"]
    if not described:
        problems.append("no describedby link to the QA report")
    for lk in derived + described:
        href = lk.get_absolute_href()
        if href and not Path(href).exists():
            problems.append(f"link {lk.rel} -> {href} does not exist")
    if problems:
        raise CatalogError("invalid output item: " + "; ".join(problems), path,
                           "re-run the night; outputs are rewritten when their item is invalid")
    return item
