"""Near-duplicate detection with MinHash LSH (datasketch), for instructions and for outputs.

datasketch is imported on first use, not with this module: it loads scipy (~0.7 s), and a resumed build sends its
first requests before it needs a MinHash."""

from __future__ import annotations

import base64
import functools
import hashlib
import re
import zlib
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..store import RecordCache

if TYPE_CHECKING:
    from datasketch import LeanMinHash, MinHash

_TOKEN = re.compile(r"[\u4e00-\u9fff\u3400-\u4dbf]|[A-Za-z0-9]+")
NUM_PERM = 128
SCHEME = "affine32"  # datasketch's default since 2.0: 32-bit hash values, stored as such
# Shingles are hashed with CRC-32, not datasketch's default SHA-1: a quarter of the cost of a sample's judging, and
# affine32 mixes every input hash (murmur3's finalizer) before its permutations.
SHINGLE_HASH = "crc32"


# Near-duplicates share long stretches, so the opening tokens of a text are enough to find them; hashing every
# shingle of a 30,000-word sample would cost the engine ~100 ms of CPU per sample.
MAX_TOKENS = 2000


def shingles(text: str, size: int = 5) -> set[bytes]:
    """Overlapping word (or CJK character) n-grams of the lower-cased text's first MAX_TOKENS tokens."""
    tokens = " ".join(_TOKEN.findall(text[: MAX_TOKENS * 8])[:MAX_TOKENS]).lower().split()  # tokens hold no spaces
    if len(tokens) <= size:
        return {" ".join(tokens).encode()}
    return set(map(str.encode, map(" ".join, zip(*(tokens[i:] for i in range(size))))))  # no slice per shingle


@functools.cache
def _permutations() -> tuple:
    """One set of permutations for every MinHash of a run (datasketch would otherwise derive them for each one)."""
    from datasketch import MinHash

    return MinHash(num_perm=NUM_PERM, scheme=SCHEME).permutations


def _hash_function(name: str):
    if name == "crc32":
        return zlib.crc32
    raise ValueError(f"unknown shingle hash {name!r}")


def signature(text: str, size: int = 5, shingle_hash: str = SHINGLE_HASH) -> MinHash:
    from datasketch import MinHash

    minhash = MinHash(num_perm=NUM_PERM, scheme=SCHEME, permutations=_permutations(),
                      hashfunc=_hash_function(shingle_hash))
    minhash.update_batch(list(shingles(text, size)))
    return minhash


def encode(minhash: MinHash) -> str:
    """A compact text form of a signature, stored with each accepted job so a resume needs no re-hashing."""
    return base64.b64encode(minhash.hashvalues.astype(np.uint32).tobytes()).decode()


def decode(text: str) -> MinHash:
    return from_values(np.frombuffer(base64.b64decode(text), dtype=np.uint32))


def from_values(values: np.ndarray) -> LeanMinHash:
    """A MinHash from its hash values (stored, or computed in another process), in datasketch's read-only
    form: a fraction of the cost of a full one, which a resume pays for each of thousands of samples."""
    from datasketch import LeanMinHash

    return LeanMinHash(seed=1, hashvalues=values, scheme=SCHEME)  # seed 1: MinHash's default, used by signature()


@functools.cache
def _bands(threshold: float) -> tuple[int, int]:
    """datasketch's choice of b bands of r rows for a Jaccard threshold (it weighs false positives and negatives)."""
    from datasketch import MinHashLSH

    lsh = MinHashLSH(threshold=threshold, num_perm=NUM_PERM)
    return lsh.b, lsh.r


class NearDuplicates:
    """Remembers what was kept and says whether a new text is a near-duplicate (Jaccard >= threshold) of it.

    LSH banding as datasketch's MinHashLSH does it (its bands and rows; a match in any band is a candidate, as its
    query returns), holding one 64-bit hash per band: ~0.8 KB an item where MinHashLSH takes ~3.2 KB, and a build
    holds every sample it drew and every one it accepted."""

    def __init__(self, threshold: float):
        self.bands, self.rows = _bands(threshold)
        self._kept: list[set[int]] = [set() for _ in range(self.bands)]

    def _keys(self, minhash: MinHash) -> list[int]:
        values = np.asarray(minhash.hashvalues, dtype=np.uint32)[: self.bands * self.rows]
        return [hash(band.tobytes()) for band in values.reshape(self.bands, self.rows)]

    def add(self, minhash: MinHash, keys: list[int] | None = None) -> None:
        for key, kept in zip(keys or self._keys(minhash), self._kept):
            kept.add(key)

    def check_and_add(self, minhash: MinHash) -> bool:
        """True when a near-duplicate was already kept; otherwise remember this one."""
        keys = self._keys(minhash)
        if any(key in kept for key, kept in zip(keys, self._kept)):
            return True
        self.add(minhash, keys)
        return False


class SignatureCache:
    """Instruction MinHashes by content, kept in a file of the run directory (the store's RecordCache), so that a
    resumed build replays its draw (which checks every earlier instruction for near-duplicates) without hashing
    them all again.

    Fixed-size records: a digest of the text, then the signature. It is only a cache: a torn tail is dropped and
    a missing entry is recomputed. Without a path it keeps signatures in memory only (a preview of a run, which
    writes nothing), hashed as that run hashes them."""

    RECORD = np.dtype([("digest", "V16"), ("values", "<u4", (NUM_PERM,))])

    def __init__(self, path: Path | None, shingle_hash: str = SHINGLE_HASH):
        self.shingle_hash = shingle_hash
        self._file = RecordCache(path, self.RECORD.itemsize) if path is not None else None
        records = np.frombuffer(self._file.read() if self._file else b"", dtype=self.RECORD)
        self._known: dict[bytes, np.ndarray] = dict(zip(records["digest"].tolist(), records["values"]))

    def key(self, text: str, size: int) -> bytes:
        """What a signature is cached under: the text and how it was hashed."""
        return hashlib.blake2b(f"{self.shingle_hash} {size}\n{text}".encode(), digest_size=16).digest()

    def signature(self, text: str, size: int = 5) -> MinHash:
        key = self.key(text, size)
        values = self._known.get(key)
        if values is not None:
            return from_values(values)
        minhash = signature(text, size, self.shingle_hash)
        values = self._known[key] = minhash.hashvalues.astype("<u4")
        if self._file is not None:
            self._file.append(key + values.tobytes())
        return minhash

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
