"""Active learning with a person in the loop: label your own images in the browser.

The package is layered one way; each module imports only from those above it:

1. :mod:`skal.label.store` durable plain files; :mod:`skal.label.access`
   who may reach the server; :mod:`skal.label.plot` the learning curve;
   :mod:`skal.label.why` why each image was picked.
2. :mod:`skal.label.network` the project's network, built or loaded.
3. :mod:`skal.label.project` a labeling project: a folder of plain files
   and the state they describe (answers, batches, model, curve).
4. :mod:`skal.label.loop` train on the labels and query the next batch
   (modAL's ``ActiveLearner`` with skal's estimator and query function),
   synchronously or one batch ahead.
5. :mod:`skal.label.worker` the loop in a background thread.
6. :mod:`skal.label.server` the page's JSON API; :mod:`skal.label.cli`
   ``skal label ...``.

``tests/test_label_project.py`` holds the package to this order.
"""

from skal.label.project import LabelError, Project, ProjectBusyError, create_project

__all__ = ["Project", "LabelError", "ProjectBusyError", "create_project"]
