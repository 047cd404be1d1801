"""Records: bytes of an object in, records out (DESIGN layer 5).

Streaming framers, one instance per object, fed chunks of any size::

    f = framer("tfrecord", url)
    for chunk in chunks:
        for record in f.feed(chunk):   # memoryviews, valid until the next feed()
            use(record)
    for record in f.finish():          # raises RecordError if truncated
        use(record)

Formats: "recordio", "tfrecord", "lines", "raw" (``framer_names()``);
Parquet, which needs random access, through ``iter_parquet_batches``; gzip
streams through ``GzipDecoder`` / ``gunzip_stream`` before framing.
Writers: ``encode_tfrecord``, ``encode_recordio`` and ``RecordIOWriter``
(dmlc-core's rule: split at an aligned magic word), and ``wrap_recordio`` /
``RecordIOStreamEncoder`` / ``iter_encode_recordio`` for Pipe mode's RecordIO
wrapper (one whole record per object, as AWS's RecordIOReader needs).
"""

from channels.records.base import (
    MEMORY_URL,
    Framer,
    as_byte_view,
    frame_bytes,
    frame_stream,
    framer,
    framer_names,
    register_framer,
)
from channels.records.gunzip import GzipDecoder, gunzip_stream
from channels.records.lines import LinesFramer
from channels.records.parquet import iter_parquet_batches
from channels.records.raw import RawFramer
from channels.records.recordio import (
    MAGIC,
    MAX_LENGTH,
    RecordIOFramer,
    RecordIOWriter,
    encode_recordio,
    find_aligned_magic,
    recordio_header,
    recordio_padding,
)
from channels.records.recordio_stream import RecordIOStreamEncoder, iter_encode_recordio, wrap_recordio
from channels.records.tfrecord import TFRecordFramer, encode_tfrecord, masked_crc32c

__all__ = [
    "MAGIC",
    "MAX_LENGTH",
    "MEMORY_URL",
    "Framer",
    "GzipDecoder",
    "LinesFramer",
    "RawFramer",
    "RecordIOFramer",
    "RecordIOStreamEncoder",
    "RecordIOWriter",
    "TFRecordFramer",
    "as_byte_view",
    "encode_recordio",
    "encode_tfrecord",
    "find_aligned_magic",
    "frame_bytes",
    "frame_stream",
    "framer",
    "framer_names",
    "gunzip_stream",
    "iter_encode_recordio",
    "iter_parquet_batches",
    "masked_crc32c",
    "recordio_header",
    "recordio_padding",
    "register_framer",
    "wrap_recordio",
]
