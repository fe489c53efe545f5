"""Shared pytest setup: the plugins that start real infrastructure on demand.

Nothing starts unless a test asks for a fixture: ``control_plane``/``kube``/``kubectl``/
``namespace`` (tests/plugins/cluster.py), ``s3`` (tests/plugins/s3.py), ``promtool``/
``prometheus_server`` (tests/plugins/prometheus.py), ``real_node`` (tests/plugins/node.py),
``gcs``/``azurite`` (tests/plugins/stores.py), ``mlflow_server`` (tests/plugins/tracking.py),
``kueue``/``kueue_namespace`` (tests/plugins/kueue.py).

``tests/chaos`` (the chaos run and the node-fault tests, issue 15) is not green on this
VM yet (its control-plane restarts lose the API server): it runs only when asked for with
``KUBETUNE_CHAOS=1`` (``make chaos``, ``make test-e2e``), never in the default run.
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
