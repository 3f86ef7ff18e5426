"""The optimizer state torchrs can resume: one :class:`Layout` per Keras optimizer class (its slots, the
torchrs class that resumes them, its keyword arguments), for tf_keras 2.x and ``tf.keras.optimizers.legacy``.

See :mod:`converters.tfrs_to_torch.optimizer_state` for where the state lives and how it is planned.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from converters.tfrs_to_torch.errors import ConversionError

#: The attribute name under which Keras models and ``tf.train.Checkpoint`` track an optimizer.
OPTIMIZER_ATTRIBUTE = "optimizer"
# Non-trainable variables Keras layers create (never in an optimizer's var_list).
NON_TRAINABLE_NAMES = frozenset(
    {"mean", "variance", "count", "moving_mean", "moving_variance", "adapt_mean", "adapt_variance"}
)
# Object-graph children that never hold trainable variables of the model.
NOT_MODEL = frozenset({"save_counter", "optimizer", "loss", "compiled_loss", "compiled_metrics"})
# Keras's alias of a layer inside Sequential / functional models (layer_with_weights-N is the key).
LAYER_ALIAS = re.compile(r"layer-\d+")

# tf_keras 2.x optimizer base: variables every optimizer owns besides its slot lists.
NEW_BASE_VARIABLES = frozenset({"_iterations", "_learning_rate", "_current_learning_rate"})
# tf_keras 2.x optimizer base: bookkeeping children that hold nothing (or only aliases).
NEW_BOOKKEEPING = frozenset({"_variables", "_index_dict", "_update_step_xla"})
# tf_keras 2.x ``use_ema=True``: one moving average per variable, any optimizer class.
EMA_LIST = "_model_variables_moving_average"
# tf.keras.mixed_precision.LossScaleOptimizer: the child holding the dynamic loss scale.
LOSS_SCALE = "loss_scale"
# tfrs.experimental.optimizers.CompositeOptimizer tracks its optimizers as Optimizer0, Optimizer1...
COMPOSITE_CHILD = re.compile(r"Optimizer\d+")
# OptimizerV2 (legacy): the iteration counter child.
LEGACY_ITERATIONS = "iter"
# OptimizerV2 (legacy) hyperparameter variables ``_set_hyper`` creates, by class.
LEGACY_HYPER = frozenset(
    {
        "learning_rate",
        "decay",
        "beta_1",
        "beta_2",
        "momentum",
        "rho",
        "learning_rate_power",
        "l1_regularization_strength",
        "l2_regularization_strength",
        "l2_shrinkage_regularization_strength",
        "beta",
    }
)


@dataclass(frozen=True)
class Layout:
    """How one Keras optimizer class stores its state, and whether ``torchrs.optim`` resumes it.

    Attributes:
        keras_class: the Keras class (``Adam``; ``legacy.Adam`` for ``tf.keras.optimizers.legacy``).
        slots: Keras slot name -> torchrs state key (every slot kind this class may create).
        required: Keras slot names always present once the optimizer has been built.
        lists: tf_keras 2.x only: slot-list attribute -> Keras slot name.
        extra: variables (not slots) that only this class creates (Nadam's ``_u_product``).
        shared: extra variable -> the torchrs state key every parameter's state holds a copy of
            (an optimizer-wide scalar: Nadam's ``_u_product`` -> ``u_product``).
        hyper_names: Keras hyperparameter -> torchrs keyword argument, where they differ (legacy
            Nadam stores its ``schedule_decay`` as ``decay``).
        variant_of: the Keras class this one stores the same state as and resumes as when the
            optimizer's name cannot tell them apart (AdamW is Adam plus ``weight_decay``).
        torch_class: the ``torchrs.optim`` class that resumes it, or ``None`` (unsupported).
        reason: why it is unsupported.
        skipped: Keras slot name -> why it is not needed to resume (not converted).
        module: where ``torch_class`` lives.
    """

    keras_class: str
    slots: dict[str, str]
    required: frozenset[str]
    lists: dict[str, str] = field(default_factory=dict)
    extra: frozenset[str] = frozenset()
    shared: dict[str, str] = field(default_factory=dict)
    hyper_names: dict[str, str] = field(default_factory=dict)
    variant_of: str = ""
    torch_class: str | None = None
    reason: str = ""
    skipped: dict[str, str] = field(default_factory=dict)
    module: str = "torchrs.optim"


def _new(keras_class: str, lists: dict[str, str], required: set[str], **kw: Any) -> Layout:
    slots = {slot: slot for slot in lists.values()}
    slots.update(kw.pop("rename", {}))
    return Layout(keras_class, slots, frozenset(required), lists, **kw)


#: tf_keras 2.x (``tf.keras.optimizers.*``) layouts, by Keras class (the optimizer's default name).
NEW_LAYOUTS = {
    layout.keras_class: layout
    for layout in (
        _new("Adagrad", {"_accumulators": "accumulator"}, {"accumulator"}, torch_class="Adagrad"),
        _new(
            "Adam",
            {"_momentums": "m", "_velocities": "v", "_velocity_hats": "vhat"},
            {"m", "v"},
            torch_class="Adam",
        ),
        # AdamW is Adam with the base class's decoupled weight decay (default 0.004, where Adam's is None).
        _new(
            "AdamW",
            {"_momentums": "m", "_velocities": "v", "_velocity_hats": "vhat"},
            {"m", "v"},
            torch_class="AdamW",
            variant_of="Adam",
        ),
        _new("SGD", {"momentums": "m"}, {"m"}, torch_class="SGD", rename={"m": "momentum"}),
        # tfrs.experimental.optimizers.ClippyAdagrad: Adagrad's slots (+ monitoring output).
        _new(
            "ClippyAdagrad",
            {"_accumulators": "accumulator", "clipping_factors": "clipping_factor"},
            {"accumulator"},
            torch_class="ClippyAdagrad",
            module="torchrs.experimental.optimizers",
            skipped={
                "clipping_factor": "ClippyAdagrad's export_clipping_factors output: written by "
                "each step, never read by it"
            },
        ),
        _new(
            "Lion",
            {"momentums": "m"},
            {"m"},
            reason="Lion's sign-of-interpolation update has no torchrs.optim class",
        ),
        _new(
            "RMSprop",
            {
                "_velocities": "velocity",
                "_momentums": "momentum",
                "_average_gradients": "average_gradient",
            },
            {"velocity"},
            torch_class="RMSprop",
        ),
        _new(
            "Nadam",
            {"_momentums": "m", "_velocities": "v"},
            {"m", "v"},
            extra=frozenset({"_u_product"}),
            shared={"_u_product": "u_product"},
            torch_class="Nadam",
        ),
        _new("Adamax", {"_m": "m", "_u": "u"}, {"m", "u"}, torch_class="Adamax"),
        _new(
            "Ftrl",
            {"_accumulators": "accumulator", "_linears": "linear"},
            {"accumulator", "linear"},
            torch_class="Ftrl",
        ),
        _new(
            "Adadelta",
            {
                "_accumulated_grads": "accumulated_grad",
                "_accumulated_delta_vars": "accumulated_delta_var",
            },
            {"accumulated_grad", "accumulated_delta_var"},
            torch_class="Adadelta",
        ),
        _new(
            "Adafactor",
            {"_r": "r", "_c": "c", "_v": "v"},
            {"r", "c", "v"},
            reason="torchrs.optim has no Adafactor",
        ),
    )
}

#: Where the ``tf.keras.optimizers.legacy`` twins live (epsilon outside Adagrad's root, lazy sparse momentum,
#: ``decay``, the legacy clipping order: the tf_keras 2.x classes of ``torchrs.optim`` differ in all four).
LEGACY_MODULE = "torchrs.optim.legacy"


#: Legacy momentum is lazy on IndexedSlices rows, which only a sparse torch gradient can reproduce.
LEGACY_SPARSE_MOMENTUM_NOTE = (
    "Keras legacy SGD with momentum updates embedding rows lazily (a row without gradient in the "
    "batch keeps its velocity and does not move); torchrs.optim.legacy.SGD does the same for "
    "sparse gradients only, so build the Embedding layers with sparse=True (or set "
    "`embedding.sparse = True` on a module from torchrs.load): a dense gradient cannot tell a "
    "missing row from a zero gradient."
)


def _legacy(
    keras_class: str, slots: dict[str, str], required: set[str], **kw: Any
) -> tuple[str, Layout]:
    if kw.get("torch_class"):
        kw.setdefault("module", LEGACY_MODULE)
    return keras_class, Layout(f"legacy.{keras_class}", slots, frozenset(required), **kw)


# tf_keras 2.x slot-list attribute -> the slot names Keras gives its variables, over all classes.
SLOT_NAMES: dict[str, set[str]] = {EMA_LIST: {"average"}}
for _layout in NEW_LAYOUTS.values():
    for _attr, _slot in _layout.lists.items():
        SLOT_NAMES.setdefault(_attr, set()).add(_slot)

#: ``tf.keras.optimizers.legacy`` (OptimizerV2) layouts, by class (the optimizer's default name).
LEGACY_LAYOUTS = dict(
    (
        _legacy("Adam", {"m": "m", "v": "v", "vhat": "vhat"}, {"m", "v"}, torch_class="Adam"),
        _legacy("Adagrad", {"accumulator": "accumulator"}, {"accumulator"}, torch_class="Adagrad"),
        _legacy("SGD", {"momentum": "momentum"}, set(), torch_class="SGD"),
        _legacy("Adamax", {"m": "m", "v": "v"}, {"m", "v"}, torch_class="Adamax"),
        _legacy(
            "Nadam",
            {"m": "m", "v": "v"},
            {"m", "v"},
            extra=frozenset({"momentum_cache"}),
            shared={"momentum_cache": "momentum_cache"},
            # legacy Nadam's `decay` is its momentum schedule's, not a learning-rate decay
            hyper_names={"decay": "schedule_decay"},
            torch_class="Nadam",
        ),
        _legacy(
            "RMSprop",
            {"rms": "rms", "momentum": "momentum", "mg": "mg"},
            {"rms"},
            torch_class="RMSprop",
        ),
        _legacy(
            "Ftrl",
            {"accumulator": "accumulator", "linear": "linear"},
            {"accumulator", "linear"},
            torch_class="Ftrl",
        ),
        _legacy(
            "Adadelta",
            {"accum_grad": "accum_grad", "accum_var": "accum_var"},
            {"accum_grad", "accum_var"},
            torch_class="Adadelta",
        ),
    )
)

#: What the error message lists as convertible.
SUPPORTED = (
    "tf.keras.optimizers.Adadelta, Adagrad, Adam (amsgrad too), Adamax, AdamW (amsgrad too), Ftrl, "
    "Nadam, RMSprop (momentum, centered) and SGD (momentum too), with or without use_ema; "
    "tfrs.experimental.optimizers.ClippyAdagrad; tf.keras.optimizers.legacy.Adadelta, Adagrad, "
    "Adam (amsgrad too), Adamax, Ftrl, Nadam, RMSprop (momentum, centered) and SGD (momentum too), "
    "with or without decay (as torchrs.optim.legacy)"
)
# Ftrl's keyword arguments, tf_keras 2.x and legacy alike.
FTRL_ARGUMENTS = (
    "learning_rate",
    "learning_rate_power",
    "initial_accumulator_value",
    "l1_regularization_strength",
    "l2_regularization_strength",
    "l2_shrinkage_regularization_strength",
    "beta",
)
#: torchrs.optim class -> keyword arguments it takes that a Keras config / checkpoint may give.
TORCH_ARGUMENTS = {
    "Adagrad": ("learning_rate", "initial_accumulator_value", "epsilon"),
    "ClippyAdagrad": (
        "learning_rate",
        "initial_accumulator_value",
        "variable_relative_threshold",
        "accumulator_relative_threshold",
        "absolute_threshold",
        "epsilon",
        "export_clipping_factors",
        "clip_accumulator_update",
        "use_standard_accumulator_update",
    ),
    "Adam": ("learning_rate", "beta_1", "beta_2", "epsilon", "amsgrad"),
    "AdamW": ("learning_rate", "beta_1", "beta_2", "epsilon", "amsgrad"),
    "SGD": ("learning_rate", "momentum", "nesterov"),
    "RMSprop": ("learning_rate", "rho", "momentum", "epsilon", "centered"),
    "Adamax": ("learning_rate", "beta_1", "beta_2", "epsilon"),
    "Nadam": ("learning_rate", "beta_1", "beta_2", "epsilon"),
    "Adadelta": ("learning_rate", "rho", "epsilon"),
    "Ftrl": FTRL_ARGUMENTS,
}
#: torchrs.optim.legacy class -> keyword arguments a legacy Keras config / checkpoint may give.
LEGACY_TORCH_ARGUMENTS = {
    "Adagrad": ("learning_rate", "initial_accumulator_value", "epsilon", "decay"),
    "Adam": ("learning_rate", "beta_1", "beta_2", "epsilon", "amsgrad", "decay"),
    "SGD": ("learning_rate", "momentum", "nesterov", "decay"),
    "RMSprop": ("learning_rate", "rho", "momentum", "epsilon", "centered", "decay"),
    "Adamax": ("learning_rate", "beta_1", "beta_2", "epsilon", "decay"),
    "Nadam": ("learning_rate", "beta_1", "beta_2", "epsilon", "schedule_decay"),
    "Adadelta": ("learning_rate", "rho", "epsilon", "decay"),
    "Ftrl": (*FTRL_ARGUMENTS, "decay"),
}
# Keyword arguments every torchrs.optim class shares with the tf_keras 2.x base optimizer.
BASE_ARGUMENTS = (
    "weight_decay",
    "clipnorm",
    "clipvalue",
    "global_clipnorm",
    "use_ema",
    "ema_momentum",
    "ema_overwrite_frequency",
)
# Legacy OptimizerV2 keyword arguments torchrs.optim.legacy shares (no weight decay, no EMA there).
LEGACY_BASE_ARGUMENTS = ("clipnorm", "clipvalue", "global_clipnorm")


class UnsupportedOptimizerError(ConversionError):
    """Optimizer state ``torchrs.optim`` cannot resume; ``--no-strict`` turns it into a report entry.

    Attributes:
        class_name: the Keras optimizer class (``RMSprop``, ``legacy.Adagrad``) or a description.
        path: the optimizer's object path in the checkpoint.
    """

    def __init__(self, class_name: str, path: str, detail: str) -> None:
        self.class_name = class_name
        self.path = path
        self.detail = detail
        super().__init__(
            f"Unsupported optimizer state: Keras {class_name} at {path!r}: {detail}. torchrs.optim "
            f"resumes {SUPPORTED}. Pass --no-strict to convert the weights without the optimizer "
            "state (listed in report.json), then start a fresh torchrs.optim optimizer."
        )
