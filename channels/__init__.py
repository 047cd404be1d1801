"""channels: the data path of a training job, from object storage to the script.

Layers (each imports only those above it in this list):
spec, listing, sharding, transport, records, modes, surfaces.
"""

__version__ = "0.1.0"
