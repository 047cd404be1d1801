"""The benchmark harness (a surface, DESIGN layer 7): how users choose a mode.

Modules, each one concept:

* :mod:`~channels.testing.profiles`: latency profiles (``local``, ``s3-like``...).
* :mod:`~channels.testing.proxy`: the loopback proxy that applies a profile
  (first-byte delay, bandwidth per connection and per host, fault hooks).
* :mod:`~channels.testing.services`: endpoint and proxies in their own processes.
* :mod:`~channels.bench.datasets`: generated datasets, reused when present.
* :mod:`~channels.bench.runners` and :mod:`~channels.bench.peers`: the
  registry of what is measured: our modes and the baseline clients.
* :mod:`~channels.bench.harness`: the throughput suite (interleaved repeats).
* :mod:`~channels.bench.imbalance`: N host processes downloading at once.
* :mod:`~channels.bench.report`: machine, versions, medians, ratios, tables.
* :mod:`~channels.bench.suite`: ``channels bench`` as one call, and its JSON.
* :mod:`~channels.bench.plots`: the notebooks' figures.

Nothing heavy is imported here: ``import channels.bench`` is cheap.
"""
