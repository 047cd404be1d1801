"""Input modes (layer 6): how a channel's objects reach the training script.

Each mode is its own module (``file``: sharded download to a volume); they all
move bytes through :mod:`channels.transport`.
"""
