"""Registry names the command line needs before anything heavy is imported, and the one lookup.

The registries themselves (:data:`skal.query.STRATEGIES`,
:data:`skal.protocols.PRESETS`, :data:`skal.models.MODELS`,
:data:`skal.data.FLAGS_2D`) live with what they register and import torch,
skorch, modAL or medmnist. ``skal --help`` lists their names without paying
for those imports (seconds), so the names are also here;
``tests/test_cli.py`` checks that each tuple equals its registry.
:data:`COLORS` has no registry elsewhere: it is declared here only.
This module imports nothing but the standard library.
"""

from __future__ import annotations

__all__ = ["METHODS", "INITIALS", "PRESETS", "MODELS", "DATASETS", "SIZES", "COLORS",
           "lookup"]

#: Keys of :data:`skal.query.STRATEGIES`, in its order.
METHODS = ("random", "least_confidence", "margin", "entropy", "bald", "ll4al", "coreset",
           "typiclust", "badge", "scal", "cluster_margin")
#: Keys of :data:`skal.query.INITIAL_STRATEGIES` (the first batch), in its order.
INITIALS = ("random", "typiclust", "probcover")
#: Keys of :data:`skal.protocols.PRESETS`, in its order.
PRESETS = ("paper", "fast")
#: Keys of :data:`skal.models.MODELS`, sorted.
MODELS = ("resnet18", "small_cnn")
#: :data:`skal.data.FLAGS_2D`: the MedMNIST 2D flags, in medmnist's order.
DATASETS = ("pathmnist", "chestmnist", "dermamnist", "octmnist", "pneumoniamnist",
            "retinamnist", "breastmnist", "bloodmnist", "tissuemnist", "organamnist",
            "organcmnist", "organsmnist")
#: Image sides of the 2D files (``skal.data.dataset_info(flag).sizes``): MedMNIST's
#: 28 (the study's) and MedMNIST+'s 64, 128 and 224.
SIZES = (28, 64, 128, 224)
#: ``color`` of :func:`skal.image_folder.load_image_folder` (declared here only, so
#: the command lines offer them without importing it).
COLORS = ("auto", "grayscale", "rgb")


def lookup(registry, name, kind):
    """``registry[name]``, or a ValueError listing the valid names.

    Parameters
    ----------
    registry : mapping
    name : hashable
    kind : str
        What the registry holds, singular (``'query strategy'``, ``'preset'``).

    Raises
    ------
    ValueError
        ``"Unknown <kind> '<name>'; valid names are: a, b, c."``
    """
    try:
        return registry[name]
    except (KeyError, TypeError):
        raise ValueError(f"Unknown {kind} {name!r}; valid names are: "
                         f"{', '.join(map(str, registry))}.") from None
