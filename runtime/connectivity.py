"""Structural connectivity: weights, tract lengths, and the integer delays TVB derives.

Conventions are TVB's: `weights[i, j]` is the connection from region j to region i (rows are
targets), delays are `round(tract_length / speed / dt)` steps.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mfgen.errors import MfgenError

TVB_SPEED = 3.0  # mm/ms: TVB 2.10's Connectivity.speed default (tvb/datatypes/connectivity.py)
# Networks up to this many stored values keep what is derived from them (the CSR per dt, the
# digests, the simulations' layouts) with a copy of the values it came from; larger ones
# recompute (no second copy). At most DERIVED_CACHE_MAX_KEYS values, the oldest dropped first:
# a loop over many dt values must not grow it without bound (a layout of a network at the size
# limit holds up to ~60 MB).
DERIVED_CACHE_MAX_VALUES = 1_000_000
DERIVED_CACHE_MAX_KEYS = 8


def row_pointers(rows: np.ndarray, n_rows: int) -> np.ndarray:
    """A CSR's row pointers (n_rows + 1) from each entry's row, entries sorted by row."""
    row_ptr = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n_rows), out=row_ptr[1:])
    return row_ptr


@dataclass
class Connectivity:
    weights: np.ndarray  # (n, n), dense; zeros are absent connections
    tract_lengths: np.ndarray  # (n, n) in mm
    speed: float = TVB_SPEED  # mm/ms
    region_labels: list[str] = field(default_factory=list)
    centres: np.ndarray | None = None
    source: str = ""

    def __post_init__(self) -> None:
        import scipy.sparse  # imported here: it costs 0.2 s, and most users never need it

        if scipy.sparse.issparse(self.weights):
            # Large networks: keep CSR; tract lengths are read at the non-zero weights only.
            self.weights = scipy.sparse.csr_matrix(self.weights, dtype=np.float64)
            self.weights.eliminate_zeros()
            self.weights.sort_indices()
            if scipy.sparse.issparse(self.tract_lengths):
                self.tract_lengths = scipy.sparse.csr_matrix(self.tract_lengths,
                                                             dtype=np.float64)
            else:
                self.tract_lengths = np.asarray(self.tract_lengths, dtype=np.float64)
            values = [self.weights.data]
        else:
            self.weights = np.ascontiguousarray(self.weights, dtype=np.float64)
            self.tract_lengths = np.ascontiguousarray(self.tract_lengths, dtype=np.float64)
            values = [self.weights, self.tract_lengths]
        n = self.weights.shape[0]
        if self.weights.shape != (n, n) or self.tract_lengths.shape != (n, n):
            raise ValueError(f"weights and tract_lengths must both be square (n, n); got "
                             f"{self.weights.shape} and {self.tract_lengths.shape}")
        rows, cols = self._nonzero()
        lengths = self._lengths_at(rows, cols)
        if not (all(np.isfinite(v).all() for v in values) and np.isfinite(lengths).all()):
            raise ValueError("weights and tract_lengths must be finite")
        if (lengths < 0).any():
            raise ValueError("tract_lengths must be non-negative")
        if not self.speed > 0:
            raise ValueError(f"speed must be positive, got {self.speed}")
        if not self.region_labels:
            self.region_labels = [f"r{i}" for i in range(n)]

    def _nonzero(self) -> tuple[np.ndarray, np.ndarray]:
        """(targets, sources) of the non-zero weights, row by row (TVB's order)."""
        import scipy.sparse

        if scipy.sparse.issparse(self.weights):
            coo = self.weights.tocoo()
            return coo.row.astype(np.int64), coo.col.astype(np.int64)
        return np.divmod(np.flatnonzero(self.weights), self.n_regions)  # 2x np.nonzero's speed

    def _lengths_at(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        import scipy.sparse

        if rows.size == 0:
            return np.zeros(0)
        if scipy.sparse.issparse(self.tract_lengths):
            return np.asarray(self.tract_lengths[rows, cols]).reshape(-1)
        return self.tract_lengths[rows, cols]

    def digests(self) -> dict[str, str]:
        """SHA-256 of the weights and of the tract lengths, for provenance: of a dense
        matrix's float64 values, of a sparse one's canonical CSR (shape, row pointers,
        columns, values), never its n^2 dense form."""
        return dict(self._derived(("digests",), lambda: {
            "weights_sha256": _matrix_digest(self.weights),
            "tract_lengths_sha256": _matrix_digest(self.tract_lengths)}))

    def _derived(self, key: tuple, compute: Any) -> Any:
        """compute(), kept for the next call with `key` while the network is unchanged: every
        Simulation on a network asks for its digests and layout (~0.2 ms). One copy of the values
        they come from is compared at each call, so an edit in place is seen; large networks
        recompute. A kept value's arrays are read-only."""
        import scipy.sparse

        sources = [self.speed]
        for matrix in (self.weights, self.tract_lengths):
            sources += [matrix.data, matrix.indices, matrix.indptr, matrix.shape] \
                if scipy.sparse.issparse(matrix) else [matrix]
        if sum(a.size for a in sources if isinstance(a, np.ndarray)) > \
                DERIVED_CACHE_MAX_VALUES:
            return compute()
        kept = self.__dict__.get("_derived_values")
        if kept is None or len(kept[0]) != len(sources) or not all(
                np.array_equal(a, b) if isinstance(a, np.ndarray) else a == b
                for a, b in zip(sources, kept[0])):
            kept = ([a.copy() if isinstance(a, np.ndarray) else a for a in sources], {})
            self.__dict__["_derived_values"] = kept
        if key not in kept[1]:
            value = compute()
            if len(kept[1]) >= DERIVED_CACHE_MAX_KEYS:
                del kept[1][next(iter(kept[1]))]
            for array in value if isinstance(value, tuple) else ():
                array.flags.writeable = False
            kept[1][key] = value
        return kept[1][key]

    def __getstate__(self) -> dict[str, Any]:
        # what _derived keeps is rebuilt where it is needed, not sent (e.g. to Dask workers)
        return {k: v for k, v in self.__dict__.items() if k != "_derived_values"}

    @classmethod
    def empty(cls, n_regions: int) -> Connectivity:
        """n unconnected nodes (no memory of size n^2)."""
        import scipy.sparse

        return cls(scipy.sparse.csr_matrix((n_regions, n_regions)),
                   scipy.sparse.csr_matrix((n_regions, n_regions)), source="none")

    @property
    def n_regions(self) -> int:
        return self.weights.shape[0]

    def delays(self, dt: float) -> np.ndarray:
        """Integer delays in steps, as TVB computes them (numpy.rint); dense (n, n)."""
        import scipy.sparse

        lengths = self.tract_lengths
        if scipy.sparse.issparse(lengths):
            lengths = lengths.toarray()
        return np.rint(lengths / self.speed / dt).astype(np.int64)

    def sparse(self, dt: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """CSR over non-zero weights: row_ptr, source columns, weights, delays (steps);
        read-only arrays."""
        return self._derived(("sparse", float(dt)), lambda: self._csr(dt))

    def _csr(self, dt: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        import scipy.sparse

        rows, cols = self._nonzero()
        row_ptr = row_pointers(rows, self.n_regions)
        if scipy.sparse.issparse(self.weights):
            weights = self.weights.tocoo().data
        else:
            weights = self.weights[rows, cols]
        delays = np.rint(self._lengths_at(rows, cols) / self.speed / dt)
        if delays.size and delays.max() > np.iinfo(np.int32).max:
            raise ValueError(f"a delay of {delays.max():.3g} steps does not fit the kernel's "
                             "32-bit delays; check the tract lengths (mm), speed (mm/ms), dt")
        return (row_ptr, cols.astype(np.int32), np.array(weights, dtype=np.float64),  # copies
                delays.astype(np.int32))

    @classmethod
    def from_zip(cls, path: str | Path, speed: float = TVB_SPEED) -> Connectivity:
        """Read TVB's zip layout: weights.txt, tract_lengths.txt, optional centres.txt."""
        with zipfile.ZipFile(path) as archive:
            names = {Path(n).name: n for n in archive.namelist()}

            def read(name: str) -> bytes:
                if name not in names:
                    raise MfgenError(f"{path}: no {name} in the connectivity archive "
                                     f"(found {', '.join(sorted(names))})")
                return archive.read(names[name])

            weights = np.loadtxt(io.BytesIO(read("weights.txt")))
            lengths = np.loadtxt(io.BytesIO(read("tract_lengths.txt")))
            labels: list[str] = []
            centres = None
            if "centres.txt" in names:
                rows = [line.split() for line in read("centres.txt").decode().splitlines()
                        if line.strip()]
                labels = [r[0] for r in rows]
                centres = np.array([[float(v) for v in r[1:4]] for r in rows])
        return cls(weights, lengths, speed, labels, centres, source=str(path))

    @classmethod
    def tvb_default(cls, speed: float = TVB_SPEED) -> Connectivity:
        """TVB's bundled 76-region connectome (needs the tvb-data package)."""
        try:
            import tvb_data
        except ImportError:
            raise MfgenError("the 76-region default connectome comes with the tvb-data "
                             "package: pip install tvb-data") from None
        path = Path(tvb_data.__file__).parent / "connectivity" / "connectivity_76.zip"
        return cls.from_zip(path, speed)

    @classmethod
    def synthetic(cls, n_regions: int = 68, density: float = 0.25, seed: int = 42,
                  speed: float = TVB_SPEED) -> Connectivity:
        """A reproducible toy connectome: regions on two hemispheres of an ellipsoid,
        distance-dependent connection probability, log-normal weights scaled to max 1 and
        Euclidean tract lengths (mm). Shipped so demos need no download."""
        rng = np.random.default_rng(seed)
        half = n_regions // 2
        angles = rng.uniform(0, np.pi, (n_regions, 2))
        centres = np.column_stack([70 * np.sin(angles[:, 0]) * np.cos(angles[:, 1]),
                                   60 * np.sin(angles[:, 0]) * np.sin(angles[:, 1]),
                                   50 * np.cos(angles[:, 0])])
        centres[half:, 0] *= -1  # right hemisphere mirrored
        distance = np.linalg.norm(centres[:, None] - centres[None], axis=-1)
        probability = np.exp(-distance / (distance.mean() * density * 2))
        mask = rng.random((n_regions, n_regions)) < probability
        mask = np.triu(mask, 1)
        mask = mask | mask.T
        weights = np.where(mask, rng.lognormal(0.0, 1.0, mask.shape), 0.0)
        weights = (weights + weights.T) / 2
        if weights.max() > 0:
            weights /= weights.max()
        labels = [f"{'L' if i < half else 'R'}{i % half:02d}" for i in range(n_regions)]
        return cls(weights, distance, speed, labels, centres, source=f"synthetic(seed={seed})")


def _matrix_digest(matrix: object) -> str:
    import scipy.sparse

    digest = hashlib.sha256()
    if scipy.sparse.issparse(matrix):
        csr = scipy.sparse.csr_matrix(matrix, dtype=np.float64, copy=True)   # not the caller's
        csr.sum_duplicates()   # canonical: sorted columns, one entry per position, no zeros
        csr.eliminate_zeros()
        digest.update(b"csr" + np.asarray(csr.shape, np.int64).tobytes())
        for part in (csr.indptr.astype(np.int64), csr.indices.astype(np.int64), csr.data):
            digest.update(np.ascontiguousarray(part).tobytes())
    else:
        digest.update(np.ascontiguousarray(matrix, dtype=np.float64).tobytes())
    return digest.hexdigest()
