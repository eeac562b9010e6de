"""A compact map of meeting id -> encoded state value, compressed with a trained dictionary.

The state view keeps every tracked meeting's encoded state record in memory, and reads one
back only when that meeting shows up again; at a million meetings the values are most of
the connector's memory. Each value alone compresses poorly (zstd without a dictionary gets
a simulator meeting from ~590 to ~430 bytes), but the values share almost everything: the
single-object header, field layout, statuses, hall names, companies, e-mail domains. A
zstd dictionary trained from the first values captures that and gets them to ~140 bytes.

Values are kept as they are until ``train_after`` of them are held (a small event never
pays for a dictionary); then a dictionary is trained from those, they are compressed, and
so is every value stored from then on. Only ``get`` (and ``pop``) decompress. A restore
defers that (``defer_bytes``): the values stay raw up to that many bytes, and the event
trains and compresses them once it runs, in slices (``compress_steps``), rather than on the
path from a restart to its first commit. Should
training fail (samples too few or too alike: zstd refuses), values are compressed without
a dictionary instead. A value that would not get smaller is kept as it is: raw and
compressed values live in two separate dicts, so the two can never be confused.

Not thread-safe; each ``EventState`` owns one, and with it its own dictionary.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from itertools import chain, islice

import zstandard

log = logging.getLogger("connector.state_values")

#: Values held before a dictionary is trained from them (~2.4 MB of simulator meetings).
TRAIN_AFTER = 4096
#: Dictionary size: 16-64 KiB compress simulator meetings within 3% of each other.
DICT_BYTES = 32 * 1024
#: zstd level: 3 costs ~2 us per value, like 1, and gets values 6% smaller; 5 takes twice as
#: long for another 6%.
LEVEL = 3
#: Typical value size the compression parameters are tuned for (a simulator meeting).
_TYPICAL_VALUE = 600
#: zstd's COVER parameters (segment size ``k``, d-mer size ``d``), given rather than searched
#: for: without them ``train_dictionary`` tries many pairs, ~80 % of its time, and training
#: sits on the path of every restart (the restore trains each event's dictionary before its
#: first cycle). These are what the search picks for 4,096 simulator meetings: 20,006 values
#: compress to 138.9 bytes each with either, training took 85 ms instead of 360-410 ms (740 ms
#: on a loaded 2-core machine, half of a 20,000-meeting restore; issue 30 item 3). Other
#: pairs cost ~2 % (k=200 or 1024: 141 bytes).
COVER_K = 537
COVER_D = 8
#: Raw bytes a restore may hold per restore (shared by its events) before it trains as it
#: reads: training and compressing 20,000 values took ~0.1 s of a 0.21 s restore (issue 30
#: item 3); past this (~55,000 simulator meetings) memory matters more than that.
RESTORE_DEFER_BYTES = 32 * 1024 * 1024


class StateValues:
    """Meeting id -> encoded state value, as a dict would hold them, in less memory."""

    __slots__ = (
        "_compress",
        "_decompress",
        "_packed",
        "_raw",
        "_stored",
        "defer_bytes",
        "train_after",
    )

    def __init__(self, train_after: int = TRAIN_AFTER, defer_bytes: int = 0) -> None:
        """``defer_bytes``: a due training waits for :meth:`compress_steps` while the raw
        values hold fewer bytes than this (0: it never waits)."""
        self.train_after = train_after
        self.defer_bytes = defer_bytes
        self._raw: dict[int, bytes] = {}  # values kept as they are
        self._packed: dict[int, bytes] = {}  # zstd frames (magicless)
        self._stored = 0
        self._compress: zstandard.ZstdCompressor | None = None  # set once trained
        self._decompress = zstandard.ZstdDecompressor(format=zstandard.FORMAT_ZSTD1_MAGICLESS)

    @property
    def stored_bytes(self) -> int:
        """Bytes of every value as held (compressed or not), without per-entry overhead."""
        return self._stored

    @property
    def trained(self) -> bool:
        """Whether values are compressed now (with a dictionary, or without if that failed)."""
        return self._compress is not None

    def get(self, key: int) -> bytes | None:
        """The value of ``key`` as it was stored, or None."""
        packed = self._packed.get(key)
        if packed is not None:
            return self._decompress.decompress(packed)
        return self._raw.get(key)

    def __setitem__(self, key: int, value: bytes) -> None:
        compress = self._compress
        if compress is None:
            self._forget(key)
            self._raw[key] = value
            self._stored += len(value)
            if len(self._raw) >= self.train_after and self._stored >= self.defer_bytes:
                self._train()
            return
        # A copy: compress() shrinks a bound-sized block in place, which would pin a hole of
        # ~450 bytes in the heap per value; the exact-size copy comes from the small-object pool.
        packed = bytes(memoryview(compress.compress(value)))
        if len(packed) < len(value):
            old = self._packed.get(key)
            if old is not None:
                self._stored -= len(old)
            elif key in self._raw:
                self._stored -= len(self._raw.pop(key))
            self._packed[key] = packed
            self._stored += len(packed)
        else:
            self._forget(key)
            self._raw[key] = value
            self._stored += len(value)

    def pop(self, key: int, default: bytes | None = None) -> bytes | None:
        """Remove ``key``; return its value, or ``default`` if it was not there."""
        value = self.get(key)
        if value is None:
            return default
        self._forget(key)
        return value

    def __contains__(self, key: object) -> bool:
        return key in self._packed or key in self._raw

    def __iter__(self) -> Iterator[int]:
        return chain(self._packed, self._raw)

    def __len__(self) -> int:
        return len(self._packed) + len(self._raw)

    def __repr__(self) -> str:
        state = "compressed" if self.trained else "raw"
        return f"<StateValues {len(self):,} values, {self._stored:,} bytes, {state}>"

    def compress_steps(self, per_step: int = 2_000) -> Iterator[None]:
        """End a deferral (``defer_bytes``): train the dictionary that is due (one step,
        ~40-85 ms at ``TRAIN_AFTER`` values), then compress the values held raw, ``per_step``
        a step; values stored between steps are compressed as they come. Nothing to do when
        trained already or fewer than ``train_after`` values are held."""
        self.defer_bytes = 0
        if self._compress is not None or len(self._raw) < self.train_after:
            return
        self._train(compress_held=False)
        yield
        keys = list(self._raw)
        for start in range(0, len(keys), per_step):
            for key in keys[start : start + per_step]:
                value = self._raw.get(key)
                if value is not None:  # not changed nor removed since (those are compressed)
                    self[key] = value
            yield

    def _forget(self, key: int) -> None:
        old = self._packed.pop(key, None)
        if old is None:
            old = self._raw.pop(key, None)
        if old is not None:
            self._stored -= len(old)

    def _train(self, *, compress_held: bool = True) -> None:
        """Train a dictionary from the raw values, then compress them all (unless
        ``compress_held`` is False: the caller does, a slice at a time)."""
        params = zstandard.ZstdCompressionParameters.from_level(
            LEVEL,
            source_size=_TYPICAL_VALUE,
            dict_size=DICT_BYTES,
            format=zstandard.FORMAT_ZSTD1_MAGICLESS,  # 4 bytes less per value
            write_checksum=False,
            write_content_size=True,  # lets decompress() size its output
            write_dict_id=False,
        )
        # the first ``train_after`` values, also when a deferral held more (as without one)
        samples: list[bytes | bytearray | memoryview] = list(
            islice(self._raw.values(), self.train_after)
        )
        try:
            dictionary = zstandard.train_dictionary(DICT_BYTES, samples, k=COVER_K, d=COVER_D)
            dictionary.precompute_compress(compression_params=params)
        except zstandard.ZstdError as exc:
            # Too few or too uniform samples: plain zstd still shares nothing across
            # values, but never loses one.
            log.info("state values: no dictionary, compressing without one (%s)", exc)
            dictionary = None
        self._compress = zstandard.ZstdCompressor(dict_data=dictionary, compression_params=params)
        self._decompress = zstandard.ZstdDecompressor(
            dict_data=dictionary, format=zstandard.FORMAT_ZSTD1_MAGICLESS
        )
        if not compress_held:
            return
        raw, self._raw, self._stored = self._raw, {}, 0
        for key, value in raw.items():
            self[key] = value
