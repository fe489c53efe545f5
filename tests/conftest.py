"""Shared pytest setup: the plugins that start real infrastructure on demand.

Nothing starts unless a test asks for a fixture: ``control_plane``/``kube``/``kubectl``/
``namespace`` (tests/plugins/cluster.py), ``s3`` (tests/plugins/s3.py), ``promtool``/
``prometheus_server`` (tests/plugins/prometheus.py), ``real_node`` (tests/plugins/node.py),
``gcs``/``azurite`` (tests/plugins/stores.py), ``mlflow_server`` (tests/plugins/tracking.py),
``kueue``/``kueue_namespace`` (tests/plugins/kueue.py).

Not green on this VM yet, so left out of the default run and collected only with
``KUBETUNE_CHAOS=1`` (``make chaos``, ``make test-e2e``): ``tests/chaos`` (the chaos run
and the node-fault tests, issue 15).
"""

import os

collect_ignore = [] if os.environ.get("KUBETUNE_CHAOS") else ["chaos"]

pytest_plugins = [
    "tests.plugins.cluster",
    "tests.plugins.node",
    "tests.plugins.s3",
    "tests.plugins.prometheus",
    "tests.plugins.stores",
    "tests.plugins.tracking",
    "tests.plugins.kueue",
]
