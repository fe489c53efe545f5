"""Shared pytest setup: the plugins that start real infrastructure on demand.

Nothing starts unless a test asks for a fixture: ``control_plane``/``kube``/``kubectl``/
``namespace`` (tests/plugins/cluster.py), ``s3`` (tests/plugins/s3.py), ``promtool``/
``prometheus_server`` (tests/plugins/prometheus.py), ``real_node`` (tests/plugins/node.py),
``gcs``/``azurite`` (tests/plugins/stores.py), ``mlflow_server`` (tests/plugins/tracking.py),
``kueue``/``kueue_namespace`` (tests/plugins/kueue.py).

The packages that start a real node of their own (``tests/chaos``,
``tests/chart_upgrade``, ``tests/day_two``, ``tests/dev``) sort before ``tests/e2e``,
whose node lives until the session ends: the image store admits one node at a time.
"""

pytest_plugins = [
    "tests.plugins.cluster",
    "tests.plugins.node",
    "tests.plugins.s3",
    "tests.plugins.prometheus",
    "tests.plugins.stores",
    "tests.plugins.tracking",
    "tests.plugins.kueue",
]
