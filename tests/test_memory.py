"""Peak memory of backward steps that the W5 benchmark row depends on (tracemalloc counts NumPy's buffers)."""
import tracemalloc

import numpy as np

from tinygrad_edu import Tensor
from tinygrad_edu import ops


def _peak_of(run):
    tracemalloc.start()
    try:
        result = run()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return result, peak


def test_relu_backward_allocates_only_its_result():
    x = Tensor(np.random.default_rng(0).standard_normal((512, 512)).astype(np.float32), requires_grad=True)
    out = x.relu()
    grad = np.ones(out.shape, dtype=np.float32)
    result, peak = _peak_of(lambda: ops.Relu.backward(out.grad_fn, grad))
    # A boolean mask would add a quarter of the result's bytes on top (float32).
    assert peak < 1.1 * result.nbytes, f"peak {peak} bytes for a result of {result.nbytes}"
    np.testing.assert_array_equal(result, (x.data > 0).astype(np.float32))


def test_relu_passes_the_gradient_where_its_output_is_nan_as_pytorch():
    # PyTorch's threshold_backward: 0 where the output is <= 0, else the gradient (nan is not <= 0).
    x = Tensor(np.array([np.nan, -1.0, 2.0]), requires_grad=True)
    x.relu().backward(np.array([5.0, 5.0, 5.0]))
    np.testing.assert_array_equal(x.grad.data, [5.0, 0.0, 5.0])


def test_sigmoid_backward_allocates_only_its_result():
    # W1's first layer: three (N, hidden) temporaries here grew the heap by two arrays per step.
    x = Tensor(np.random.default_rng(1).standard_normal((512, 512)), requires_grad=True)
    out = x.sigmoid()
    grad = np.random.default_rng(2).standard_normal(out.shape)
    result, peak = _peak_of(lambda: ops.Sigmoid.backward(out.grad_fn, grad))
    assert peak < 1.1 * result.nbytes, f"peak {peak} bytes for a result of {result.nbytes}"
    s = out.data
    np.testing.assert_allclose(result, grad * s * (1 - s), rtol=1e-15)


