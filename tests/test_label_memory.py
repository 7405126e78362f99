"""What bounds a labeling server's memory on a large folder (benchmarks/results/label_scale.md).

The project's images stay on disk (memory-mapped).
"""

import numpy as np
from label_support import make_project

from skal.label.project import Project


def test_project_images_are_memory_mapped_read_only(tmp_path):
    from PIL import Image

    project, _ = make_project(tmp_path, n=10)
    Image.fromarray(np.full((12, 12), 77, np.uint8)).save(tmp_path / "images" / "new.png")
    synced = Project(project.path)
    assert synced.sync_images()["added"] == ["new.png"]  # images.npy rewritten
    for opened in (project, synced, Project(project.path)):
        assert isinstance(opened.images, np.memmap) and opened.images.mode == "r"
        assert not opened.images.flags.writeable
    assert synced.images.shape == (11, 12, 12) and (synced.images[10] == 77).all()
    # A selection of rows is an ordinary array in memory (what the network gets).
    rows = Project(project.path).images[[1, 3]]
    assert type(rows) is np.ndarray and rows.shape == (2, 12, 12)
