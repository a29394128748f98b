"""An outsider's campaign against this round's new surface (convolution, pooling, normalisation,
tg.compile, diagnostics): PyTorch semantics checked against formulas, odd inputs (integer
images, NaN, size-0 batches, one-pass loaders), and state that must not change when a call
is refused. Every case here failed before the fix beside it."""
import math

import numpy as np
import pytest

import tinygrad_edu as tg
import tinygrad_edu.functional as F
from tinygrad_edu import Tensor, nn, optim
from tinygrad_edu.compile import TracingError
from tinygrad_edu.diagnostics import lr_find, sanity_check


# ---- pooling on odd inputs ---------------------------------------------------------------------
def test_max_pool2d_pads_an_integer_image_with_its_smallest_value():
    image = Tensor(np.arange(16).reshape(1, 1, 4, 4))
    out = F.max_pool2d(image, 2, padding=1)
    assert out.dtype == image.dtype
    assert out.tolist() == [[[[0, 2, 3], [8, 10, 11], [12, 14, 15]]]]


def test_max_pool2d_gives_a_nan_maximum_its_gradient_as_pytorch_does():
    # NaN wins the maximum (np.maximum and PyTorch both propagate it); the gradient goes to the NaN,
    # never NaN spread over the whole window.
    x = Tensor(np.array([[[[np.nan, 1.0], [2.0, 3.0]], [[4.0, 1.0], [2.0, 3.0]]]]), requires_grad=True)
    out = F.max_pool2d(x, 2)
    assert np.isnan(out.numpy()[0, 0, 0, 0]) and out.numpy()[0, 1, 0, 0] == 4.0
    out.sum().backward()
    assert x.grad.numpy().tolist() == [[[[1.0, 0.0], [0.0, 0.0]], [[1.0, 0.0], [0.0, 0.0]]]]


def test_pooling_and_convolution_accept_an_empty_batch():
    x = Tensor(np.zeros((0, 2, 4, 4)), requires_grad=True)
    assert F.max_pool2d(x, 2).shape == (0, 2, 2, 2)
    assert F.avg_pool2d(x, 2).shape == (0, 2, 2, 2)
    conv = nn.Conv2d(2, 3, kernel_size=3, padding=1, dtype=np.float64)
    out = conv(x)
    assert out.shape == (0, 3, 4, 4)
    out.sum().backward()
    assert x.grad.shape == x.shape and conv.weight.grad.numpy().tolist() == np.zeros((3, 2, 3, 3)).tolist()


# ---- arguments checked where they are given, with messages that name them -----------------------
@pytest.mark.parametrize("bad", [3.0, "3", None])
def test_a_kernel_size_that_is_not_an_int_or_a_pair_names_the_argument(bad):
    with pytest.raises(ValueError, match=r"kernel_size must be an int or a pair of ints >= 1"):
        nn.Conv2d(3, 8, kernel_size=bad)
    with pytest.raises(ValueError, match=r"kernel_size must be an int or a pair of ints >= 1"):
        F.max_pool2d(tg.zeros(1, 1, 4, 4), bad)


def test_conv2d_refuses_a_bad_padding_at_construction_as_pytorch():
    with pytest.raises(ValueError, match=r"padding must be an int or a pair of ints >= 0, 'valid' or 'same'"):
        nn.Conv2d(3, 8, kernel_size=3, padding="full")
    with pytest.raises(ValueError, match=r"padding='same' needs stride 1"):
        nn.Conv2d(3, 8, kernel_size=3, padding="same", stride=2)
    assert nn.Conv2d(3, 8, kernel_size=3, padding="same")(tg.zeros(1, 3, 5, 5)).shape == (1, 8, 5, 5)


def test_conv2d_names_a_bias_of_the_wrong_shape():
    with pytest.raises(ValueError, match=r"conv2d: bias has shape \(3,\), expected \(2,\) \(one per output"):
        F.conv2d(tg.zeros(1, 1, 4, 4), tg.zeros(2, 1, 3, 3), tg.zeros(3))


def test_an_unbatched_image_with_the_wrong_channels_is_named_as_given():
    with pytest.raises(ValueError, match=r"Conv2d\(3, 8, kernel_size=1\) expects in_channels=3 on the "
                                         r"input's axis 0 \(an unbatched \(C, H, W\) image\), got an "
                                         r"input of shape \(4, 5, 5\)"):
        nn.Conv2d(3, 8, kernel_size=1)(tg.zeros(4, 5, 5))


@pytest.mark.parametrize("name", ["weight", "bias"])
def test_layer_norm_refuses_a_weight_or_bias_that_does_not_match_normalized_shape(name):
    # A (1,) weight would broadcast silently over 4 features; PyTorch refuses it.
    kwargs = {name: tg.ones(1)}
    with pytest.raises(ValueError, match=rf"layer_norm: {name} has shape \(1,\), expected normalized_shape \(4,\)"):
        F.layer_norm(tg.zeros(2, 4), (4,), **kwargs)


# ---- batch normalisation: nothing changes when a call is refused -------------------------------
def test_a_refused_batch_leaves_the_running_statistics_and_the_count_unchanged():
    bn = nn.BatchNorm1d(3, momentum=None)
    bn(np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32))
    before = {k: np.array(v) for k, v in bn.state_dict().items()}
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        bn(np.ones((1, 3), np.float32))
    after = bn.state_dict()
    assert all(np.array_equal(before[k], after[k]) for k in before)
    assert int(bn.num_batches_tracked.item()) == 1


def test_momentum_none_is_the_cumulative_average_of_the_batch_statistics():
    rng = np.random.default_rng(1)
    bn = nn.BatchNorm1d(2, momentum=None, dtype=np.float64)
    batches = [rng.normal(loc=3.0, size=(5, 2)) for _ in range(4)]
    for batch in batches:
        bn(batch)
    np.testing.assert_allclose(bn.running_mean.numpy(), np.mean([b.mean(0) for b in batches], axis=0))
    np.testing.assert_allclose(bn.running_var.numpy(), np.mean([b.var(0, ddof=1) for b in batches], axis=0))
    assert int(bn.num_batches_tracked.item()) == 4


# ---- tg.compile: never a silently frozen random mask or running statistic -----------------------
def test_compile_refuses_a_step_that_draws_random_numbers_instead_of_freezing_the_mask():
    tg.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 50, dtype=np.float64), nn.Dropout(0.5))
    step = tg.compile(lambda x: model(x).sum())
    with pytest.raises(TracingError, match=r"random numbers.*same numbers on every call.*eval\(\)"):
        step(np.ones((8, 3)))
    model.eval()  # without dropout the same step compiles and replays eager mode's numbers
    loss = step(np.ones((8, 3)))
    assert loss.item() == pytest.approx(model(np.ones((8, 3))).sum().item())


def _small_cnn(momentum, dtype):
    tg.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 2, 3, dtype=dtype), nn.BatchNorm2d(2, momentum=momentum, dtype=dtype),
                         nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(2, 3, dtype=dtype),
                         nn.BatchNorm1d(3, momentum=momentum, dtype=dtype))


@pytest.mark.parametrize("momentum", [0.1, None])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_a_compiled_cnn_with_batch_norm_trains_exactly_as_eager_on_new_batches(momentum, dtype):
    # Each call gets a new batch (the trace's images must not be frozen into the program: the conv's
    # sliding windows of an array argument were a constant), and the running statistics and
    # num_batches_tracked move on every replay as in eager mode.
    rng = np.random.default_rng(0)
    batches = [rng.normal(size=(4, 1, 4, 4)).astype(dtype) for _ in range(4)]
    labels = np.array([0, 1, 2, 0])
    eager, compiled = _small_cnn(momentum, dtype), _small_cnn(momentum, dtype)
    eager_opt, compiled_opt = optim.SGD(eager.parameters(), lr=0.1), optim.SGD(compiled.parameters(), lr=0.1)
    step = tg.compile(lambda x: F.cross_entropy(compiled(x), labels))
    for x in batches:
        eager_opt.zero_grad()
        eager_loss = F.cross_entropy(eager(x), labels)
        eager_loss.backward()
        eager_opt.step()
        compiled_opt.zero_grad()
        assert step(x).item() == pytest.approx(eager_loss.item(), rel=1e-5)
        compiled_opt.step()
    tolerance = 1e-5 if dtype == np.float32 else 1e-12
    for key, value in eager.state_dict().items():
        np.testing.assert_allclose(compiled.state_dict()[key], value, rtol=tolerance, atol=tolerance, err_msg=key)
    assert int(compiled[1].num_batches_tracked.item()) == len(batches)


def test_compile_follows_running_statistics_closed_over_as_plain_arrays_and_refuses_others():
    # Arrays fn's own code reads from its closure are inputs of the program: updated as eager mode does.
    running_mean, running_var = np.zeros(2), np.ones(2)
    weight = Tensor(np.ones(2), requires_grad=True)
    step = tg.compile(lambda x: F.batch_norm(x, running_mean, running_var, weight, training=True).sum())
    batches = [np.random.default_rng(seed).normal(size=(5, 2)) for seed in range(3)]
    for x in batches:
        step(x)
    compiled = running_mean.copy(), running_var.copy()
    running_mean[:], running_var[:] = 0.0, 1.0
    for x in batches:
        F.batch_norm(x, running_mean, running_var, weight, training=True)
    np.testing.assert_array_equal(compiled[0], running_mean)
    np.testing.assert_array_equal(compiled[1], running_var)

    # Reached through an object the program cannot follow them: refused, and nothing is written.
    class Stats:
        mean, var = np.zeros(2), np.ones(2)

    stats = Stats()
    step = tg.compile(lambda x: F.batch_norm(x, stats.mean, stats.var, weight, training=True).sum())
    with pytest.raises(TracingError, match="out="):
        step(batches[0])
    assert stats.mean.tolist() == [0.0, 0.0] and stats.var.tolist() == [1.0, 1.0]


def test_learner_000_compiled_gradients_follow_each_new_batch():
    # Their np.dot(x, W1) backward takes x.mT: it read the trace's x on every replay (dW1 wrong).
    import seed_learner
    rng = np.random.default_rng(0)
    shapes = ((8, 5), (5,), (5, 4), (4,))
    params = [Tensor(rng.uniform(-0.12, 0.12, s), requires_grad=True) for s in shapes]
    step = tg.compile(lambda x, y: seed_learner.cost(params, x, y))
    for _ in range(3):
        x, y = rng.random((20, 8)), np.eye(4)[rng.integers(0, 4, 20)]
        for t in params:
            t.grad = None
        step(x, y)
        expected = seed_learner.backpropagate([t.data for t in params], x, y)
        for name, t, g in zip(("W1", "b1", "W2", "b2"), params, expected):
            np.testing.assert_allclose(t.grad.data, g, rtol=1e-10, atol=1e-14, err_msg=name)


# ---- diagnostics on odd inputs -----------------------------------------------------------------
def test_lr_find_runs_over_a_one_pass_generator_and_stops_when_it_ends():
    rng = np.random.default_rng(0)
    tg.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3))
    batches = ((rng.normal(size=(8, 4)).astype(np.float32), rng.integers(0, 3, 8)) for _ in range(5))
    result = lr_find(model, F.cross_entropy, batches, optim.SGD, steps=20)
    assert len(result.rates) == len(result.losses) == 5
    assert math.isfinite(result.suggested)


def test_sanity_check_of_a_model_without_parameters_says_so():
    with pytest.raises(ValueError, match=r"sanity_check: the model has no parameters to train"):
        sanity_check(nn.Sequential(nn.Identity()), F.cross_entropy, np.zeros((4, 3)), np.arange(4) % 3)


def test_compile_traces_again_when_a_module_switches_between_train_and_eval():
    # A program traced in eval mode (dropout off) must not be replayed silently in train mode.
    tg.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 8, dtype=np.float64), nn.Dropout(0.5))
    step = tg.compile(lambda x: model(x).sum())
    model.eval()
    eval_loss = step(np.ones((2, 3))).item()
    model.train()
    with pytest.raises(TracingError, match="random numbers"):
        step(np.ones((2, 3)))
    model.eval()  # back in eval mode, the eval program is used again
    assert step(np.ones((2, 3))).item() == pytest.approx(eval_loss)


def test_batch_norm_compiled_in_eval_then_in_train_is_never_the_eval_program():
    model = nn.Sequential(nn.Linear(3, 4, dtype=np.float64), nn.BatchNorm1d(4, dtype=np.float64))
    twin = nn.Sequential(nn.Linear(3, 4, dtype=np.float64), nn.BatchNorm1d(4, dtype=np.float64))
    twin.load_state_dict(model.state_dict())
    step = tg.compile(lambda x: (model(x) ** 2).sum())
    x = np.random.default_rng(0).normal(size=(8, 3))
    model.eval()
    step(x)
    model.train()  # the batch's statistics now, and the running ones move
    assert step(x).item() == pytest.approx((twin(x) ** 2).sum().item())
    np.testing.assert_allclose(model[1].running_mean.numpy(), twin[1].running_mean.numpy(), rtol=1e-12)


def test_a_compiled_step_called_under_no_grad_still_computes_the_gradients():
    w = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    step = tg.compile(lambda x: (x * w).sum())
    with tg.no_grad():
        loss = step(np.array([3.0, 4.0]))
        assert not tg.is_grad_enabled()
    assert loss.item() == 11.0 and w.grad.tolist() == [3.0, 4.0]


# ---- files: a folder where a checkpoint is expected ---------------------------------------------
def test_load_refuses_a_folder_with_the_documented_value_error(tmp_path):
    with pytest.raises(ValueError, match=r"is not a tinygrad_edu checkpoint: not a regular file"):
        tg.load(tmp_path)


def test_save_onto_a_folder_says_it_is_a_folder_and_leaves_nothing_behind(tmp_path):
    target = tmp_path / "checkpoints"
    target.mkdir()
    with pytest.raises(IsADirectoryError, match=r"it is a folder; give a file name"):
        tg.save({"w": np.ones(2)}, target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoints"]
    assert list(target.iterdir()) == []


@pytest.mark.skipif(not hasattr(__import__("os"), "mkfifo"), reason="needs os.mkfifo")
def test_load_mat_refuses_a_fifo_at_once_instead_of_waiting_for_a_writer(tmp_path):
    import os
    from tinygrad_edu.data import load_mat
    fifo = tmp_path / "digits.mat"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match=r"is not a regular file"):
        load_mat(fifo)
    with pytest.raises(ValueError, match=r"is not a regular file"):
        load_mat(tmp_path)


# ---- normalisation in float16 --------------------------------------------------------------------
def _normalised_rows(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    return (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-5)


def test_layer_norm_of_float16_values_past_256_is_not_zeroed_by_an_overflowing_square():
    x = (np.random.default_rng(0).normal(size=(4, 300)) * 100).astype(np.float16)
    t = Tensor(x, requires_grad=True)
    out = F.layer_norm(t, (300,))
    assert out.dtype == np.float16
    np.testing.assert_allclose(out.numpy().astype(np.float64), _normalised_rows(x), atol=2e-2)
    out.sum().backward()
    assert t.grad.dtype == np.float16 and np.isfinite(t.grad.numpy()).all()


def test_batch_norm_of_float16_values_past_256_matches_float64_and_keeps_finite_running_statistics():
    x = (np.random.default_rng(1).normal(size=(300, 2)) * 100).astype(np.float16)
    bn = nn.BatchNorm1d(2, dtype=np.float16)
    out = bn(x)
    assert out.dtype == np.float16
    np.testing.assert_allclose(out.numpy().astype(np.float64), _normalised_rows(x.T).T, atol=2e-2)
    expected_var = 0.9 + 0.1 * x.astype(np.float64).var(0, ddof=1)
    np.testing.assert_allclose(bn.running_var.numpy().astype(np.float64), expected_var, rtol=1e-2)


# ---- drawings of deep conv nets ------------------------------------------------------------------
@pytest.mark.parametrize("show_grads", [False, True])
def test_draw_graph_folds_a_deep_stack_of_conv_batchnorm_relu_blocks(show_grads):
    # The first conv takes the image as a constant (one input fewer than the later ones): folding
    # the repeated blocks indexed past its inputs (IndexError) from 8 blocks on.
    from tinygrad_edu import viz
    tg.manual_seed(0)
    blocks = [nn.Sequential(nn.Conv2d(2, 2, 3, padding=1), nn.BatchNorm2d(2), nn.ReLU()) for _ in range(8)]
    model = nn.Sequential(*blocks)
    loss = model(np.ones((2, 2, 5, 5), np.float32)).sum()
    if show_grads:
        loss.backward()
    source = viz.draw_graph(loss, params=dict(model.named_parameters()), show_grads=show_grads).source
    assert "Conv2d -> BatchNorm2d -> ReLU x 8" in source


# ---- the doctor for NumPy code never breaks the learner's loop --------------------------------------
class _LearnerNet:
    """A learner's NumPy network whose cost uses an ndarray method a Tensor does not have."""

    def __init__(self):
        rng = np.random.default_rng(0)
        self.W1, self.a0 = rng.normal(size=(3, 4)), rng.normal(size=(5, 3))
        self.Y_est, self.Y = np.full((5, 2), 0.5), np.eye(2)[[0, 1, 0, 1, 0]]

    def cost(self):
        self.J = -np.mean(self.Y * np.log(self.Y_est.round(6)))
        return self.J


def test_numpy_monitor_step_survives_a_cost_it_cannot_run_on_tensors_and_leaves_the_object_as_it_was():
    from tinygrad_edu.diagnostics import NumpyMonitor
    net = _LearnerNet()
    monitor = NumpyMonitor(net, {"W1": "a0"}, output="Y_est", cost="cost")
    monitor.step()  # raised AttributeError: 'Tensor' object has no attribute 'round'
    assert not hasattr(net, "J") and isinstance(net.Y_est, np.ndarray)
    assert "output_loss_mismatch" not in monitor.report().kinds


def test_a_compiled_eval_step_reads_the_current_running_statistics_at_every_call():
    # Buffers are state like parameters: new statistics (more training, load_state_dict) must be
    # used, never the values of the trace silently.
    rng = np.random.default_rng(0)
    model = nn.Sequential(nn.Linear(3, 4, dtype=np.float64), nn.BatchNorm1d(4, dtype=np.float64))
    step = tg.compile(lambda x: (model(x) ** 2).sum())
    x = rng.normal(size=(8, 3))
    model.eval()
    assert step(x).item() == pytest.approx((model(x) ** 2).sum().item())
    model.train()
    for _ in range(3):
        model(rng.normal(size=(8, 3)) * 3 + 2)
    model.eval()
    assert step(x).item() == pytest.approx((model(x) ** 2).sum().item())
    state = {k: np.array(v) for k, v in model.state_dict().items()}
    state["1.running_mean"] += 5
    model.load_state_dict(state)
    assert step(x).item() == pytest.approx((model(x) ** 2).sum().item())


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_prod_gradient_at_a_subnormal_is_the_product_of_the_others(dtype):
    # out / x at x = 5e-324: out underflows (1.5 * 5e-324 rounds to 1e-323), so it gave 2.0, not 1.5.
    tiny = np.nextafter(dtype(0), dtype(1))
    x = Tensor(np.array([tiny, 1.5], dtype=dtype), requires_grad=True)
    x.prod().backward()
    assert x.grad.numpy()[0] == dtype(1.5)
    assert abs(float(x.grad.numpy()[1])) <= 2 * float(tiny)
