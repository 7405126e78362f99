"""Active learning with a person in the loop: label your own images in the browser.

A labeling project (:mod:`skal.label.project`) is a folder of plain files;
:mod:`skal.label.loop` trains on its labels and queries the next batch
(modAL's ``ActiveLearner`` with skal's estimator and query function);
:mod:`skal.label.why` says why each image was picked; :mod:`skal.label.server`
is the web page and its API; :mod:`skal.label.cli` is ``skal label ...``.
"""

from skal.label.project import LabelError, Project, ProjectBusyError, create_project

__all__ = ["Project", "LabelError", "ProjectBusyError", "create_project"]
