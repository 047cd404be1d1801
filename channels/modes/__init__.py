"""Input modes (layer 6): how a channel's objects reach the training script.

Three sibling packages that never import each other, each moving bytes
through :mod:`channels.transport`:

* :mod:`channels.modes.pipe`: stream records in process, or into FIFOs per epoch;
* :mod:`channels.modes.file`: download this host's share to a volume;
* :mod:`channels.modes.fastfile`: a lazy read-only tree, in process or mounted (FUSE).
"""
