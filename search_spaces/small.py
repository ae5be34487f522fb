"""Small spaces for 8-32 pixel inputs (digits, MNIST, CIFAR), so a search runs on a laptop CPU.

The small baseline is model A's layout at a quarter of its widths, for small maps:

====================  ==========================  ==================================
stage                 model A (224 px)            small baseline (16 px)
====================  ==========================  ==================================
1 (stem)              ``(7,64)/2`` then ``3/3``   ``(3,16)`` then ``2/2``
2                     ``(5,128)`` then ``2/2``    ``(5,32)`` then ``2/2``
3                     ``(3,256)x3``               ``(3,64)x3``
head                  ``spp fc4096 fc4096``       ``spp(2,1)``, classifier
====================  ==========================  ==================================

On the default 1x16x16 digits it costs 2,330,624 MACs (Eqn. (1)); one epoch over the 1,437
training digits takes about 0.1 s on 2 CPU cores (see ``docs/spaces.md``).

:class:`SmallStageSpace` is :class:`~search_spaces.stage.StageSpace` with this layout
(stages 2 and 3 searchable, an optional stage 4 after a 2/2 pool, kernels 2, 3, 5, widths
multiples of 8 from 8 to 256); :class:`~search_spaces.replacement.SmallReplacementSpace` is
the layer-replacement space of the small baseline.

Example:
    >>> from search_spaces import small
    >>> arch = small.baseline()
    >>> str(arch), arch.input_shape, arch.feature_shape
    ('(3,16) 2/2 (5,32) 2/2 (3,64)x3 spp(2,1)', (1, 16, 16), (64, 4, 4))
"""

from __future__ import annotations

from typing import Sequence

from budgetnet.graph.arch import SPP, Arch, Conv, Pool
from budgetnet.checks import check_shape
from budgetnet.errors import BudgetNetError, SearchError
from search_spaces.base import check_int, register, retarget
from budgetnet.graph.zoo import PAPER_MODELS as MODELS
from search_spaces.stage import StageSpace, StageSpec

#: Inputs with a side below this many pixels get the small baseline by default.
SMALL_INPUT_LIMIT = 64

DEFAULT_INPUT_SHAPE = (1, 16, 16)
DEFAULT_NUM_CLASSES = 10

#: Stage 1 of the small layout: one 3x3 conv of 16 filters.
SMALL_STEM = (Conv(3, 16),)
#: Stages 2 and 3: opened by 2/2 pools, widths 32 and 64 (A's 128 and 256 over 4).
SMALL_STAGES = (StageSpec(Pool(2), 32, 1, 3), StageSpec(Pool(2), 64, 1, 6))
#: Stage 4 after a 2/2 pool: width 64 * 2^2, as Eqn. (11) scales it.
SMALL_EXTRA_STAGE = StageSpec(Pool(2), 256, 1, 3)
#: The last conv's width, fixed like A's 256.
SMALL_LAST_WIDTH = 64
#: The head: SPP with 2x2 and 1x1 bins (5 bins), then the classifier. A hidden fc (fc64,
#: dropout 0.5) learned about half as fast in short trainings on digits (docs/spaces.md).
SMALL_HEAD = (SPP((2, 1)),)


def baseline(input_shape: Sequence[int] | None = None, num_classes: int | None = None) -> Arch:
    """The small baseline in the spirit of model A, for 8-32 pixel inputs (default 1x16x16, 10 classes).

    ``(3,16) 2/2 (5,32) 2/2 (3,64)x3 spp(2,1)``: a stem conv and pool, a 5x5 stage and
    pool, a stage of three 3x3 convs, SPP and the classifier (the only fc).

    Raises:
        SearchError: an input shape that is not three integers, or too small (under 4 px).

    Example:
        >>> import budgetnet
        >>> budgetnet.conv_macs(baseline((3, 32, 32), 10))
        9617408
    """
    input_shape = check_shape(SearchError, DEFAULT_INPUT_SHAPE if input_shape is None else input_shape)
    num_classes = DEFAULT_NUM_CLASSES if num_classes is None else num_classes
    check_int("small baseline", "num_classes", num_classes)
    layers = [*SMALL_STEM, SMALL_STAGES[0].pool, Conv(5, 32), SMALL_STAGES[1].pool]
    layers += [Conv(3, SMALL_LAST_WIDTH)] * 3 + list(SMALL_HEAD)
    try:
        return Arch(layers, input_shape, num_classes)
    except BudgetNetError as error:
        raise SearchError(
            f"small baseline: input_shape={input_shape!r} is too small ({error}); expected at "
            "least 4x4 pixels"
        ) from None


def default_baseline(input_shape: Sequence[int] | None = None, num_classes: int | None = None) -> Arch:
    """The baseline a layer-replacement space uses when none is given: model A, or its small cousin.

    Inputs with a side below :data:`SMALL_INPUT_LIMIT` pixels (and no input at all) get
    :func:`baseline`; larger inputs get the paper's model A.

    Example:
        >>> str(default_baseline((3, 224, 224), 1000))
        '(7,64)/2 3/3 (5,128) 2/2 (3,256)x3'
        >>> str(default_baseline((1, 28, 28), 10))
        '(3,16) 2/2 (5,32) 2/2 (3,64)x3 spp(2,1)'
    """
    if input_shape is None or min(tuple(input_shape)[1:]) < SMALL_INPUT_LIMIT:
        return baseline(input_shape, num_classes)
    return retarget(MODELS["A"], input_shape, num_classes)


def extra_stage_fits(input_shape: Sequence[int]) -> bool:
    """Whether a pool after stage 3 leaves a map of at least 2x2 (so stage 4 is worth offering).

    Example:
        >>> extra_stage_fits((1, 16, 16)), extra_stage_fits((1, 8, 8))
        (True, False)
    """
    layers = [*SMALL_STEM] + [spec.pool for spec in (*SMALL_STAGES, SMALL_EXTRA_STAGE)]
    try:
        arch = Arch(layers, check_shape(SearchError, input_shape))
    except BudgetNetError:
        return False
    return min(arch.feature_shape[1:]) >= 2


@register
class SmallStageSpace(StageSpace):
    """:class:`~search_spaces.stage.StageSpace` on the small layout (see the module text).

    Stage 4 (``pool_after_stage3``) is offered only when it would see at least a 2x2 map
    (not on 8x8 inputs). Other arguments as for StageSpace; the defaults are the small ones.

    Example:
        >>> import optuna
        >>> space = SmallStageSpace()
        >>> space.check()
        >>> study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
        >>> arch = space.suggest(study.ask())
        >>> space.budget.admits(arch)
        True
    """

    name = "small"

    def __init__(
        self,
        budget=None,
        baseline: Arch | None = None,
        *,
        tolerance: float | None = None,
        input_shape: Sequence[int] | None = None,
        num_classes: int | None = None,
        **options,
    ):
        if input_shape is None:
            input_shape = DEFAULT_INPUT_SHAPE if baseline is None else baseline.input_shape
        input_shape = check_shape(SearchError, input_shape)
        settings = dict(
            stem=SMALL_STEM,
            stages=SMALL_STAGES,
            extra_stage=SMALL_EXTRA_STAGE if extra_stage_fits(input_shape) else None,
            width_multiple=4, min_width=8,
            max_width=256,
            last_width=SMALL_LAST_WIDTH,
            head=SMALL_HEAD,
        )
        settings.update(options)
        super().__init__(
            budget, baseline, tolerance=tolerance, input_shape=input_shape, num_classes=num_classes, **settings
        )

    def default_baseline(self, input_shape, num_classes) -> Arch:
        """The small baseline on ``input_shape`` (default 1x16x16) and ``num_classes`` (default 10)."""
        return baseline(input_shape, num_classes)
