"""Test helpers: copy a built TFRS / Keras layer's weights into its torchrs twin, run both, compare.

torchrs layers name their Dense sub-layers after the TFRS attributes (``_dense``, ``_dense_u``,
``_dense_v``, ``_dense_u_kernels.{i}``, ``_sublayers.{i}``), so the TF sub-layer behind a torch
:class:`~torchrs.layers.dense.Dense` is found by walking the same attribute path. Keras
kernels are ``[in, out]``; torch weights are ``[out, in]``. TensorFlow is never imported here: the
functions only use the TF objects they are given.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from torchrs.layers.dense import KerasDense


def _tf_sublayer(tf_layer: Any, path: str) -> Any:
    """``"_dense_u_kernels.1"`` -> ``tf_layer._dense_u_kernels[1]``."""
    obj = tf_layer
    for part in path.split("."):
        obj = obj[int(part)] if part.isdigit() else getattr(obj, part)
    return obj


def tf_variables(tf_layer: Any, torch_module: nn.Module) -> dict[str, tuple[Any, bool]]:
    """``{torch parameter name: (TF variable, transposed)}`` for every Dense weight of the layer."""
    pairs: dict[str, tuple[Any, bool]] = {}
    for path, module in torch_module.named_modules():
        if not isinstance(module, KerasDense):
            continue
        tf_dense = _tf_sublayer(tf_layer, path)
        prefix = f"{path}." if path else ""
        pairs[prefix + "weight"] = (tf_dense.kernel, True)
        if module.use_bias:
            pairs[prefix + "bias"] = (tf_dense.bias, False)
    return pairs


def to_torch(value: Any, transpose: bool = False) -> torch.Tensor:
    """A TF tensor / variable as a torch tensor, transposed when it is a Keras kernel."""
    array = np.asarray(value)
    tensor = torch.from_numpy(array.T.copy() if transpose else array.copy())
    return tensor


def copy_keras_weights(tf_layer: Any, torch_module: nn.Module) -> int:
    """Loads the built TF layer's Dense weights into ``torch_module`` (built or not).

    Goes through ``load_state_dict(strict=True)``, so an unbuilt torch layer is materialised with the
    TF shapes and any missing or extra parameter fails loudly.

    Returns:
        The number of tensors copied.
    """
    params = dict(torch_module.named_parameters())
    state = {
        name: to_torch(variable.numpy(), transpose).to(params[name].dtype)
        for name, (variable, transpose) in tf_variables(tf_layer, torch_module).items()
    }
    torch_module.load_state_dict(state, strict=True)
    return len(state)


def randomize_tf_weights(tf_layer: Any, seed: int) -> None:
    """Gives every variable of a built TF layer random values (kernels ~ N(0, 1/fan_in), biases
    ~ N(0, 0.1^2)), so zero-initialised biases are exercised too."""
    rng = np.random.default_rng(seed)
    for variable in tf_layer.weights:
        shape = tuple(variable.shape)
        scale = 1.0 / np.sqrt(shape[0]) if len(shape) == 2 else 0.1
        variable.assign(rng.standard_normal(shape).astype(variable.dtype.as_numpy_dtype) * scale)


@dataclass(frozen=True)
class Run:
    """One forward/backward pass: output, d(loss)/d(inputs), d(loss)/d(weights) by torch name."""

    output: np.ndarray
    input_grads: list[np.ndarray]
    weight_grads: dict[str, np.ndarray]


def tf_run(
    tf: Any,
    tf_layer: Any,
    call: Callable[[Any, list[Any]], Any],
    inputs: list[np.ndarray],
    cotangent: np.ndarray,
    torch_module: nn.Module,
) -> Run:
    """Runs ``call(tf_layer, inputs)`` under a tape; the loss is ``sum(output * cotangent)``.

    Weight gradients are keyed and laid out like ``torch_module``'s parameters (kernels transposed).
    """
    tf_inputs = [tf.constant(a) for a in inputs]
    with tf.GradientTape() as tape:
        tape.watch(tf_inputs)
        output = call(tf_layer, tf_inputs)
        loss = tf.reduce_sum(output * tf.constant(cotangent))
    pairs = tf_variables(tf_layer, torch_module)
    variables = [variable for variable, _ in pairs.values()]
    grads = tape.gradient(loss, tf_inputs + variables)
    weight_grads = {
        name: (g.numpy().T if transpose else g.numpy())
        for (name, (_, transpose)), g in zip(pairs.items(), grads[len(inputs) :], strict=True)
    }
    return Run(output.numpy(), [g.numpy() for g in grads[: len(inputs)]], weight_grads)


def torch_run(
    module: nn.Module,
    call: Callable[[nn.Module, list[torch.Tensor]], torch.Tensor],
    inputs: list[np.ndarray],
    cotangent: np.ndarray,
) -> Run:
    """The torch counterpart of :func:`tf_run`."""
    module.zero_grad(set_to_none=True)
    tensors = [torch.tensor(a, requires_grad=True) for a in inputs]
    output = call(module, tensors)
    (output * torch.from_numpy(cotangent)).sum().backward()
    weight_grads = {name: p.grad.numpy() for name, p in module.named_parameters()}
    return Run(output.detach().numpy(), [t.grad.numpy() for t in tensors], weight_grads)


# float32: TF (oneDNN/Eigen) and torch sum dot products in different orders, so results differ by a
# few ulps of the largest accumulated magnitude; measured at most ~7 ulps of max|reference| for
# dims <= 256, so we allow 1e-6 relative plus 16 ulps of the tensor's largest entry.
FLOAT32_RTOL = 1e-6
FLOAT32_ULPS_OF_MAX = 16
# float64: the same formulas agree to ~1e-14 absolute (measured); 1e-12 proves identical math.
FLOAT64_RTOL = 1e-12
FLOAT64_ATOL = 1e-12


def assert_matches_tf(actual: np.ndarray, expected: np.ndarray, what: str) -> None:
    """Elementwise ``|a - e| <= rtol * |e| + atol`` with the dtype's tolerance (see above)."""
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != TF {expected.shape}"
    assert actual.dtype == expected.dtype, f"{what}: dtype {actual.dtype} != TF {expected.dtype}"
    if expected.dtype == np.float32:
        scale = float(np.abs(expected).max()) if expected.size else 0.0
        rtol, atol = FLOAT32_RTOL, FLOAT32_ULPS_OF_MAX * float(np.finfo(np.float32).eps) * scale
    else:
        rtol, atol = FLOAT64_RTOL, FLOAT64_ATOL
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol, err_msg=what)


def assert_runs_match(actual: Run, expected: Run) -> None:
    """Compares output, input gradients and every weight gradient of two runs."""
    assert_matches_tf(actual.output, expected.output, "output")
    for i, (a, e) in enumerate(zip(actual.input_grads, expected.input_grads, strict=True)):
        assert_matches_tf(a, e, f"d loss / d input {i}")
    assert sorted(actual.weight_grads) == sorted(expected.weight_grads)
    for name, grad in expected.weight_grads.items():
        assert_matches_tf(actual.weight_grads[name], grad, f"d loss / d {name}")
