"""Shared pytest setup: the plugins that start real infrastructure on demand.

Nothing starts unless a test asks for a fixture: ``control_plane``/``kube``/``kubectl``/
``namespace`` (tests/plugins/cluster.py), ``s3`` (tests/plugins/s3.py), ``promtool``/
``prometheus_server`` (tests/plugins/prometheus.py), ``real_node`` (tests/plugins/node.py).
"""

pytest_plugins = [
    "tests.plugins.cluster",
    "tests.plugins.node",
    "tests.plugins.s3",
    "tests.plugins.prometheus",
]
