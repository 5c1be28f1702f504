"""The task flows, one module per concern; tasks.py calls one function of one of them.

``deploy`` (deploy + status), ``aws_tasks`` (publish-layer, attach, rollback, prune-layers),
``checks`` (verify, doctor, layer-report) are the flows; ``layer_source`` says where a layer comes
from (built, cached, fetched, published), ``infra`` is Terraform, the emulator and the lock, and
``show`` is what the user sees. Nothing under deploy/aws, deploy/verify or deploy/terraform imports
this package (tests/unit/test_import_graph.py).
"""
