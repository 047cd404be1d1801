"""Parquet row batches through pyarrow.

Parquet is not framed as a stream: the footer at the end of the file holds
the schema and where each row group lies, so a reader needs random access.
``framer("parquet")`` therefore refuses (pointing here); give
``iter_parquet_batches`` a seekable file object instead: a FastFile object
(ranged reads), a local file, or ``io.BytesIO`` of an object in memory.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq

from channels.errors import ChannelsError, RecordError
from channels.records.base import MEMORY_URL

DEFAULT_BATCH_SIZE = 65536


def iter_parquet_batches(source: BinaryIO | pa.NativeFile, *, url: str = MEMORY_URL,
                         batch_size: int = DEFAULT_BATCH_SIZE,
                         columns: Sequence[str] | None = None) -> Iterator[pa.RecordBatch]:
    """The rows of one Parquet object as record batches, row group by row group.

    Args:
        source: a seekable binary file object (``read``, ``seek``, ``tell``).
        url: the object, for errors.
        batch_size: the most rows in one batch.
        columns: the columns to read (all when None).

    Raises:
        RecordError: the bytes are not valid Parquet (bad footer, corrupt
            page); names the url, and ``cause`` is pyarrow's error. Errors
            of this library raised by ``source`` (TransportError) pass
            through unchanged.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1 row, not {batch_size}")
    try:
        parquet = pq.ParquetFile(source)
    except ChannelsError:
        raise
    except (pa.ArrowException, OSError) as exc:
        raise RecordError(f"cannot read the Parquet footer of {url}: {exc}; the object is "
                          "corrupt, truncated, or not Parquet", url=url, offset=None) from exc
    batches = parquet.iter_batches(batch_size=batch_size,
                                   columns=list(columns) if columns is not None else None)
    rows = 0
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            return
        except ChannelsError:
            raise
        except (pa.ArrowException, OSError) as exc:
            raise RecordError(f"corrupt Parquet data in {url} after row {rows}: {exc}",
                              url=url, offset=None, row=rows) from exc
        rows += batch.num_rows
        yield batch
