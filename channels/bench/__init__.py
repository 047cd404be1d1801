"""The benchmark harness (a surface, DESIGN layer 7): how users choose a mode.

Modules, each one concept, imports pointing down this list:

* :mod:`~channels.bench.base`: what a runner is made of (:class:`Runner`,
  :class:`Meter`, :class:`Target`, the body), the floor the others stand on.
* :mod:`~channels.bench.ours` and :mod:`~channels.bench.peers`: our modes and
  the baseline clients, each read as its users read it.
* :mod:`~channels.bench.catalog`: the runners by name (ValueError listing the
  valid ones); it imports ours and peers, neither imports it.
* :mod:`~channels.bench.datasets`: generated datasets, reused when present.
* :mod:`~channels.bench.harness`: the throughput suite (interleaved repeats).
* :mod:`~channels.bench.imbalance`: N host processes downloading at once.
* :mod:`~channels.bench.report`: machine, versions, medians, ratios, tables.
* :mod:`~channels.bench.suite`: ``channels bench`` as one call, and its JSON.
* :mod:`~channels.bench.plots`: the notebooks' figures.

The rig they run on (latency profiles, the proxy, the endpoint and proxies
in their own processes) is :mod:`channels.testing`. The scripts and
pytest-benchmark suites in ``benchmarks/`` read through the same runners.

Nothing heavy is imported here: ``import channels.bench`` is cheap.
"""
