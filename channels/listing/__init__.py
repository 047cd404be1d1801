"""Data sources become ordered lists of object refs (listing layer).

* :mod:`~channels.listing.refs`: :class:`ObjectRef`, :class:`Listing` and the data source types;
* :mod:`~channels.listing.sources`: prefixes, manifests and augmented manifests listed;
* :mod:`~channels.listing.fanout`: an S3 prefix listed by LIST streams fanned out
  over its common prefixes, merged into key order;
* :mod:`~channels.listing.progress`: a long listing's progress line;
* :mod:`~channels.listing.ahead`: a listing made on its own thread while the caller works on;
* :mod:`~channels.listing.s3api`: one ListObjectsV2 page, signed by :mod:`channels.sigv4`, parsed
  without botocore.
"""

from channels.listing.ahead import ListingAhead
from channels.listing.fanout import ListConfig, ListStats, list_s3_keys
from channels.listing.progress import ListProgress
from channels.listing.refs import AUGMENTED_MANIFEST_FILE, DATA_TYPES, MANIFEST_FILE, S3_PREFIX, Listing, ObjectRef
from channels.listing.sources import iter_keys, list_augmented_manifest, list_manifest, list_prefix, list_source

__all__ = [
    "ListingAhead",
    "AUGMENTED_MANIFEST_FILE", "DATA_TYPES", "MANIFEST_FILE", "S3_PREFIX", "ListConfig", "ListProgress",
    "ListStats", "Listing", "ObjectRef", "iter_keys", "list_augmented_manifest", "list_manifest", "list_prefix",
    "list_s3_keys", "list_source",
]
