"""An outsider's parity campaign: the PyTorch options that ported code passes most often.

Each option is checked against values PyTorch 2.13.0 (CPU, float64) computed for the same inputs,
written here as literals (the suite never imports torch), and its gradient against central
differences on random shapes.
"""
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinygrad_edu as tg
import tinygrad_edu.functional as F
from tinygrad_edu import nn

# ---- cross_entropy(weight=, ignore_index=, label_smoothing=) ------------------------------------
X = np.array([[1.0, -2.0, 0.5], [0.3, 0.2, -1.0], [2.0, 1.0, 0.0], [-0.5, 0.5, 1.5]])
W = np.array([0.2, 1.0, 3.0])
LABELS = np.array([0, 2, -100, 1])  # the third sample is ignored (PyTorch's default ignore_index)
PROBS = np.array([[0.5, 0.5, 0.0], [0.1, 0.2, 0.7], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
OPTIONS = {
    "weight": (LABELS, dict(weight=W)),
    "ignored": (LABELS, {}),
    "smoothing": (LABELS, dict(label_smoothing=0.25)),
    "weight_smoothing": (LABELS, dict(weight=W, label_smoothing=0.1)),
    "ignore_in_range": (np.array([1, 2, 0, 1]), dict(ignore_index=1, weight=W, label_smoothing=0.3)),
    "probs_weight": (PROBS, dict(weight=W)),
    "probs_weight_smoothing": (PROBS, dict(weight=W, label_smoothing=0.2)),
}
# PyTorch 2.13.0: F.cross_entropy(X, target, reduction=r, **options) and X.grad after backward
# (of the loss; for 'none', of the losses weighted 1, 2, 3, 4)
PYTORCH_2_13 = {
    "weight": {
        "mean": (1.84354224698,
                 [[-0.0188691001834, 0.00143137559855, 0.0174377245848],
                  [0.3280498827, 0.296831808849, -0.624881691549],
                  [0.0, 0.0, 0.0],
                  [0.0214358507549, -0.179826554511, 0.158390703756]]),
        "sum": (7.74287743733,
                 [[-0.0792502207703, 0.00601177751391, 0.0732384432564],
                  [1.37780950734, 1.24669359717, -2.62450310451],
                  [0.0, 0.0, 0.0],
                  [0.0900305731704, -0.755271528945, 0.665240955775]]),
        "none": ([0.100919380468, 6.23435209241, 0.0, 1.40760596444],
                 [[-0.0792502207703, 0.00601177751391, 0.0732384432564],
                  [2.75561901468, 2.49338719433, -5.24900620901],
                  [0.0, 0.0, 0.0],
                  [0.360122292682, -3.02108611578, 2.6609638231]]),
    },
    "ignored": {
        "mean": (1.33010674364,
                 [[-0.132083701284, 0.0100196291899, 0.122064072094],
                  [0.15308994526, 0.138521510796, -0.291611456056],
                  [0.0, 0.0, 0.0],
                  [0.0300101910568, -0.251757176315, 0.221746985258]]),
        "sum": (3.99032023092,
                 [[-0.396251103851, 0.0300588875696, 0.366192216282],
                  [0.45926983578, 0.415564532389, -0.874834368169],
                  [0.0, 0.0, 0.0],
                  [0.0900305731704, -0.755271528945, 0.665240955775]]),
        "none": ([0.504596902342, 2.07811736414, 0.0, 1.40760596444],
                 [[-0.396251103851, 0.0300588875696, 0.366192216282],
                  [0.91853967156, 0.831129064778, -1.74966873634],
                  [0.0, 0.0, 0.0],
                  [0.360122292682, -3.02108611578, 2.6609638231]]),
    },
    "smoothing": {
        "mean": (1.35788452142,
                 [[-0.0765281457282, -0.0177581485879, 0.0942862943162],
                  [0.125312167482, 0.110743733018, -0.236055900501],
                  [0.0, 0.0, 0.0],
                  [0.00223241327902, -0.19620162076, 0.19396920748]]),
        "sum": (4.07365356426,
                 [[-0.229584437185, -0.0532744457638, 0.282858882948],
                  [0.375936502446, 0.332231199055, -0.708167701502],
                  [0.0, 0.0, 0.0],
                  [0.00669723983705, -0.588604862279, 0.581907622441]]),
        "none": ([0.796263569009, 1.8697840308, 0.0, 1.40760596444],
                 [[-0.229584437185, -0.0532744457638, 0.282858882948],
                  [0.751873004893, 0.664462398111, -1.416335403],
                  [0.0, 0.0, 0.0],
                  [0.0267889593482, -2.35441944911, 2.32763048977]]),
    },
    "weight_smoothing": {
        "mean": (1.79410345855,
                 [[0.00155547145259, -0.00564630697883, 0.00409083552623],
                  [0.308966587369, 0.273064271107, -0.582030858476],
                  [0.0, 0.0, 0.0],
                  [0.0207059831977, -0.161622791294, 0.140916808097]]),
        "sum": (7.53523452592,
                 [[0.00653298010089, -0.0237144893111, 0.0171815092102],
                  [1.29765966695, 1.14686993865, -2.4445296056],
                  [0.0, 0.0, 0.0],
                  [0.0869651294305, -0.678815723436, 0.591850594006]]),
        "none": ([0.31147100875, 5.85318664749, 0.0, 1.37057686969],
                 [[0.00653298010089, -0.0237144893111, 0.0171815092102],
                  [2.5953193339, 2.2937398773, -4.8890592112],
                  [0.0, 0.0, 0.0],
                  [0.347860517722, -2.71526289375, 2.36740237602]]),
    },
    "ignore_in_range": {
        "mean": (1.88097346804,
                 [[0.0, 0.0, 0.0],
                  [0.355424995677, 0.296007069256, -0.651432064933],
                  [0.0664171672606, 0.0115774824346, -0.0779946496952],
                  [0.0, 0.0, 0.0]]),
        "sum": (6.01911509772,
                 [[0.0, 0.0, 0.0],
                  [1.13735998616, 0.94722262162, -2.08458260778],
                  [0.212534935234, 0.0370479437907, -0.249582879025],
                  [0.0, 0.0, 0.0]]),
        "none": ([0.0, 5.09085575763, 0.928259340089, 0.0],
                 [[0.0, 0.0, 0.0],
                  [2.27471997233, 1.89444524324, -4.16916521557],
                  [0.637604805702, 0.111143831372, -0.748748637074],
                  [0.0, 0.0, 0.0]]),
    },
    "probs_weight": {
        "mean": (1.91558237811,
                 [[0.0655623344223, -0.120491166865, 0.0549288324423],
                  [0.261376504752, 0.191027428785, -0.452403933538],
                  [-0.0167379522113, 0.0122364235527, 0.00450152865852],
                  [0.0675229298778, 0.183546353291, -0.251069283169]]),
        "sum": (7.66232951243,
                 [[0.262249337689, -0.481964667458, 0.219715329769],
                  [1.04550601901, 0.764109715142, -1.80961573415],
                  [-0.066951808845, 0.048945694211, 0.0180061146341],
                  [0.270091719511, 0.734185413164, -1.00427713268]]),
        "none": ([1.80275814141, 4.5552322848, 0.0815211928889, 1.22281789333],
                 [[0.262249337689, -0.481964667458, 0.219715329769],
                  [2.09101203802, 1.52821943028, -3.6192314683],
                  [-0.200855426535, 0.146837082633, 0.0540183439022],
                  [1.08036687804, 2.93674165266, -4.0171085307]]),
    },
    "probs_weight_smoothing": {
        "mean": (1.96098740283,
                 [[0.0913789569349, -0.110955478028, 0.0195765210935],
                  [0.237916758973, 0.165244793629, -0.403161552602],
                  [0.0298431718019, 0.0102534651494, -0.0400966369513],
                  [0.0569871506908, 0.14730140894, -0.204288559631]]),
        "sum": (7.84394961131,
                 [[0.36551582774, -0.443821912114, 0.0783060843742],
                  [0.951667035892, 0.660979174516, -1.61264621041],
                  [0.119372687208, 0.0410138605974, -0.160386547805],
                  [0.227948602763, 0.58920563576, -0.817154238523]]),
        "none": ([1.88349364578, 4.12872535647, 0.646013291022, 1.18571731804],
                 [[0.36551582774, -0.443821912114, 0.0783060843742],
                  [1.90333407178, 1.32195834903, -3.22529242082],
                  [0.358118061623, 0.123041581792, -0.481159643415],
                  [0.911794411053, 2.35682254304, -3.26861695409]]),
    },
}


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("case", sorted(OPTIONS))
def test_cross_entropy_options_match_pytorch(case, reduction):
    target, options = OPTIONS[case]
    expected_loss, expected_grad = PYTORCH_2_13[case][reduction]
    x = tg.Tensor(X, requires_grad=True)
    loss = F.cross_entropy(x, target, reduction=reduction, **options)
    loss.backward(np.arange(1.0, 5.0) if reduction == "none" else None)
    np.testing.assert_allclose(loss.data, expected_loss, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(x.grad.data, expected_grad, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("case", sorted(OPTIONS))
def test_cross_entropy_loss_module_passes_every_option(case):
    target, options = OPTIONS[case]
    loss_fn = nn.CrossEntropyLoss(**options)
    np.testing.assert_allclose(loss_fn(tg.Tensor(X), target).data, PYTORCH_2_13[case]["mean"][0], rtol=1e-10)


@pytest.mark.parametrize("weight", [None, W])
def test_every_sample_ignored_gives_nan_mean_and_zero_gradient_as_pytorch(weight):
    # PyTorch 2.13.0: mean nan (0 / 0), sum 0, none zeros; the gradient is 0 in each case
    for reduction, expected in (("mean", np.nan), ("sum", 0.0), ("none", np.zeros(4))):
        x = tg.Tensor(X, requires_grad=True)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no "invalid value" warning either
            loss = F.cross_entropy(x, np.full(4, -100), reduction=reduction, weight=weight)
            loss.sum().backward()
        np.testing.assert_array_equal(loss.data, expected)
        np.testing.assert_array_equal(x.grad.data, np.zeros((4, 3)))


def test_cross_entropy_options_on_spatial_and_single_sample_logits_match_pytorch():
    # PyTorch 2.13.0, weight W, label_smoothing 0.1, classes on axis 1 of (N, C, d)
    x = tg.Tensor([[[1.0, -1.0], [0.5, 2.0], [0.0, 0.3]], [[-2.0, 0.1], [1.5, 1.0], [0.2, -0.7]]],
                  dtype=np.float64, requires_grad=True)
    loss = F.cross_entropy(x, np.array([[0, -100], [2, 1]]), weight=W, label_smoothing=0.1)
    loss.backward()
    np.testing.assert_allclose(loss.item(), 1.28727417511, rtol=1e-10)
    np.testing.assert_allclose(x.grad.data, [
        [[-0.00585546226878, 0.0], [0.0154688928801, 0.0], [-0.00961343061136, 0.0]],
        [[0.0140868565148, 0.0617596798518], [0.511120321688, -0.0664137895922],
         [-0.525207178203, 0.00465410974045]]], rtol=1e-10)
    # one unbatched sample: logits (C,), a 0-d class index; weight W, label_smoothing 0.2
    x = tg.Tensor(np.array([0.5, -1.0, 2.0]), requires_grad=True)
    loss = F.cross_entropy(x, np.array(1), weight=W, label_smoothing=0.2)
    loss.backward()
    np.testing.assert_allclose(loss.item(), 2.88061620039, rtol=1e-10)
    np.testing.assert_allclose(x.grad.data, [0.175980290178, -0.824425087534, 0.648444797356], rtol=1e-10)


def test_cross_entropy_options_stay_exact_for_huge_float32_logits():
    # PyTorch 2.13.0 in float32: 18777.7773438 and these gradients (the ignored row: zeros)
    x = tg.Tensor(np.array([[1e4, 0.0, -1e4], [0.0, 1e4, 0.0]], dtype=np.float32), requires_grad=True)
    loss = F.cross_entropy(x, np.array([2, -100]), weight=W.astype(np.float32), label_smoothing=0.1)
    loss.backward()
    assert loss.dtype == np.float32 and x.grad.dtype == np.float32
    np.testing.assert_allclose(loss.item(), 18777.7773438, rtol=1e-6)
    np.testing.assert_allclose(x.grad.data, [[0.944444417953, -0.0111111113802, -0.933333337307], [0, 0, 0]],
                               rtol=1e-6, atol=1e-7)


def test_a_float64_weight_does_not_turn_float32_logits_into_float64():
    x = tg.Tensor(X.astype(np.float32), requires_grad=True)
    loss = F.cross_entropy(x, LABELS, weight=W, label_smoothing=0.1)
    loss.backward()
    assert loss.dtype == np.float32 and x.grad.dtype == np.float32


@settings(deadline=None, max_examples=30)
@given(samples=st.integers(1, 4), classes=st.integers(1, 4), extra=st.integers(0, 2),
       smoothing=st.sampled_from([0.0, 0.3, 1.0]), reduction=st.sampled_from(["mean", "sum", "none"]),
       weighted=st.booleans(), probabilities=st.booleans(), seed=st.integers(0, 2**16))
def test_cross_entropy_option_gradients_match_central_differences(samples, classes, extra, smoothing,
                                                                    reduction, weighted, probabilities, seed):
    rng = np.random.default_rng(seed)
    shape = (samples, classes) + (3,) * extra
    x = tg.Tensor(rng.standard_normal(shape), requires_grad=True)
    # the weight may require grad too (PyTorch refuses that for class indices; here it is differentiable)
    weight = tg.Tensor(rng.uniform(0.1, 2.0, classes), requires_grad=True) if weighted else None
    if probabilities:
        target = tg.Tensor(rng.dirichlet(np.ones(classes), size=(samples,) + (3,) * extra).swapaxes(1, -1),
                           requires_grad=True)
    else:
        target = rng.integers(0, classes, (samples,) + (3,) * extra)
        target[rng.random(target.shape) < 0.3] = -100
        if reduction == "mean":
            target.flat[0] = 0  # at least one sample counts: a mean over none is nan
    inputs = [t for t in (x, weight, target) if isinstance(t, tg.Tensor)]

    def loss(*tensors):
        found = dict(zip([id(t) for t in inputs], tensors))
        return F.cross_entropy(found[id(x)], found.get(id(target), target), reduction=reduction,
                               weight=found.get(id(weight)), label_smoothing=smoothing)

    assert tg.gradcheck(loss, inputs)


def test_cross_entropy_option_errors_are_clear():
    x = tg.Tensor(X)
    with pytest.raises(ValueError, match=r"weight must hold one value for each of the 3 classes.*\(2,\)"):
        F.cross_entropy(x, LABELS, weight=[1.0, 2.0])
    with pytest.raises(ValueError, match="label_smoothing must be between 0.0 and 1.0, got 1.5"):
        F.cross_entropy(x, LABELS, label_smoothing=1.5)
    with pytest.raises(ValueError, match="label_smoothing must be between 0.0 and 1.0"):
        nn.CrossEntropyLoss(label_smoothing=2.0)
    # PyTorch 2.13.0: "ignore_index is not supported for floating point target"
    with pytest.raises(ValueError, match="ignore_index=0 applies to class indices"):
        F.cross_entropy(x, PROBS, ignore_index=0)
    # PyTorch 2.13.0: IndexError "Target 5 is out of bounds."; the message names both ways out
    with pytest.raises(IndexError, match=r"must lie in \[0, 3\), got -7, 5 \(labels equal to "
                                         r"ignore_index=-100 are skipped\)"):
        F.cross_entropy(x, np.array([0, 5, -100, -7]))
    # PyTorch's third positional parameter is weight; ours is reduction (kept): say how to pass weight
    with pytest.raises(TypeError, match="weight=w"):
        F.cross_entropy(x, LABELS, W)


def test_cross_entropy_loss_weight_is_a_buffer_as_in_pytorch():
    assert list(nn.CrossEntropyLoss().state_dict()) == []
    loss_fn = nn.CrossEntropyLoss(W, ignore_index=1, label_smoothing=0.3)
    assert list(loss_fn.state_dict()) == ["weight"] and list(loss_fn.parameters()) == []
    assert repr(loss_fn) == "CrossEntropyLoss()"  # as PyTorch prints it
    np.testing.assert_allclose(loss_fn(tg.Tensor(X), np.array([1, 2, 0, 1])).data,
                               PYTORCH_2_13["ignore_in_range"]["mean"][0], rtol=1e-10)


def test_cross_entropy_options_compile_to_the_eager_step():
    weight = tg.Tensor(W)
    layer = nn.Linear(3, 3, dtype=np.float64)

    def step(x, labels):
        return F.cross_entropy(layer(x), labels, weight=weight, label_smoothing=0.1)

    compiled = tg.compile(step)
    for labels in (np.array([0, 2, -100, 1]), np.array([1, -100, -100, 2])):
        layer.zero_grad()
        eager = step(tg.Tensor(X), labels)
        eager.backward()
        expected = layer.weight.grad.data.copy()
        layer.zero_grad()
        np.testing.assert_allclose(compiled(tg.Tensor(X), labels).data, eager.data, rtol=1e-12)
        np.testing.assert_allclose(layer.weight.grad.data, expected, rtol=1e-12)


# PyTorch 2.13.0: F.nll_loss(X, target, reduction=r, **options) (X as log-probabilities), X.grad
NLL_PYTORCH_2_13 = {
    "weight": ((LABELS, dict(weight=W)), {
        "mean": (0.547619047619, [[-0.047619047619, 0, 0], [0, 0, -0.714285714286], [0, 0, 0],
                                  [0, -0.238095238095, 0]]),
        "sum": (2.3, [[-0.2, 0, 0], [0, 0, -3.0], [0, 0, 0], [0, -1.0, 0]]),
        "none": ([-0.2, 3.0, 0.0, -0.5], [[-0.2, 0, 0], [0, 0, -6.0], [0, 0, 0], [0, -4.0, 0]])}),
    "ignore_in_range": ((np.array([1, 2, 0, 1]), dict(ignore_index=1, weight=W)), {
        "mean": (0.8125, [[0, 0, 0], [0, 0, -0.9375], [-0.0625, 0, 0], [0, 0, 0]]),
        "sum": (2.6, [[0, 0, 0], [0, 0, -3.0], [-0.2, 0, 0], [0, 0, 0]]),
        "none": ([0.0, 3.0, -0.4, 0.0], [[0, 0, 0], [0, 0, -6.0], [-0.6, 0, 0], [0, 0, 0]])}),
    "ignored": ((LABELS, {}), {
        "mean": (-0.166666666667, [[-1 / 3, 0, 0], [0, 0, -1 / 3], [0, 0, 0], [0, -1 / 3, 0]]),
        "sum": (-0.5, [[-1.0, 0, 0], [0, 0, -1.0], [0, 0, 0], [0, -1.0, 0]]),
        "none": ([-1.0, 1.0, 0.0, -0.5], [[-1.0, 0, 0], [0, 0, -2.0], [0, 0, 0], [0, -4.0, 0]])}),
}


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("case", sorted(NLL_PYTORCH_2_13))
def test_nll_loss_options_match_pytorch(case, reduction):
    (target, options), expected = NLL_PYTORCH_2_13[case]
    expected_loss, expected_grad = expected[reduction]
    x = tg.Tensor(X, requires_grad=True)
    loss = F.nll_loss(x, target, reduction=reduction, **options)
    loss.backward(np.arange(1.0, 5.0) if reduction == "none" else None)
    np.testing.assert_allclose(loss.data, expected_loss, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(x.grad.data, expected_grad, rtol=1e-10, atol=1e-12)
    module_loss = nn.NLLLoss(options.get("weight"), ignore_index=options.get("ignore_index", -100),
                             reduction=reduction)(tg.Tensor(X), target)
    np.testing.assert_allclose(module_loss.data, expected_loss, rtol=1e-10, atol=1e-12)


def test_nll_loss_with_every_sample_ignored_and_a_weight_that_requires_grad():
    x = tg.Tensor(X, requires_grad=True)
    loss = F.nll_loss(x, np.full(4, -100), weight=W)  # PyTorch 2.13.0: nan, and a zero gradient
    loss.backward()
    assert np.isnan(loss.item()) and not x.grad.data.any()
    weight = tg.Tensor(W, requires_grad=True)
    inputs = [tg.Tensor(X, requires_grad=True), weight]
    assert tg.gradcheck(lambda x, w: F.nll_loss(x, LABELS, weight=w), inputs)
    with pytest.raises(TypeError, match="weight=w"):
        F.nll_loss(tg.Tensor(X), LABELS, W)


# ---- nn.Embedding and F.embedding --------------------------------------------------------------
TABLE = np.arange(12.0).reshape(4, 3) * 0.5 - 1
POSITIONS = np.array([[0, 2, 0], [3, 1, 2]])


def test_embedding_values_and_gradients_match_pytorch():
    # PyTorch 2.13.0: F.embedding(POSITIONS, TABLE, padding_idx=2), backward of arange(18) weights
    weight = tg.Tensor(TABLE, requires_grad=True)
    out = F.embedding(POSITIONS, weight, padding_idx=2)
    out.backward(np.arange(18.0).reshape(2, 3, 3))
    assert out.tolist() == [[[-1.0, -0.5, 0.0], [2.0, 2.5, 3.0], [-1.0, -0.5, 0.0]],
                            [[3.5, 4.0, 4.5], [0.5, 1.0, 1.5], [2.0, 2.5, 3.0]]]
    # row 0 is used twice (its two gradients add up); row 2 is padding: no gradient
    assert weight.grad.tolist() == [[6.0, 8.0, 10.0], [12.0, 13.0, 14.0], [0.0, 0.0, 0.0], [9.0, 10.0, 11.0]]
    weight = tg.Tensor(TABLE, requires_grad=True)
    F.embedding(POSITIONS, weight, padding_idx=-1).sum().backward()  # -1: the last row
    assert weight.grad.tolist() == [[2.0] * 3, [1.0] * 3, [2.0] * 3, [0.0] * 3]


def test_embedding_module_is_pytorchs():
    tg.manual_seed(0)
    table = nn.Embedding(10, 3, padding_idx=0)
    assert repr(table) == "Embedding(10, 3, padding_idx=0)"  # PyTorch 2.13.0's repr
    assert repr(nn.Embedding(10, 3)) == "Embedding(10, 3)"
    assert repr(nn.Embedding(10, 3, padding_idx=-2)) == "Embedding(10, 3, padding_idx=8)"
    assert list(table.state_dict()) == ["weight"] and table.weight.dtype == tg.get_default_dtype()
    assert table.weight.data[0].tolist() == [0.0, 0.0, 0.0]  # the padding row starts at zeros
    big = nn.Embedding(2000, 50).weight.data  # N(0, 1), as PyTorch initialises it
    assert abs(big.mean()) < 0.01 and abs(big.std() - 1) < 0.01
    tokens = tg.Tensor([[1, 0, 4], [0, 0, 9]])  # a float32 Tensor of whole numbers works as indices
    out = table(tokens)
    assert out.shape == (2, 3, 3)
    out.sum().backward()
    assert table.weight.grad.data[0].tolist() == [0.0, 0.0, 0.0]
    assert table.weight.grad.data[1].tolist() == [1.0, 1.0, 1.0]


def test_embedding_errors_name_the_range():
    weight = tg.Tensor(TABLE)
    # PyTorch 2.13.0: IndexError "index out of range in self", for 4 and for -1
    for bad in ([0, 4], [-1, 2]):
        with pytest.raises(IndexError, match=r"indices must lie in \[0, 4\) \(the rows of a weight of shape "
                                             r"\(4, 3\)\), got -?\d"):
            F.embedding(np.array(bad), weight)
    # PyTorch 2.13.0: AssertionError "Padding_idx must be within num_embeddings"
    with pytest.raises(ValueError, match=r"must be within num_embeddings: in \[-10, 10\), got 10"):
        nn.Embedding(10, 3, padding_idx=10)
    with pytest.raises(ValueError, match="padding_idx must be within num_embeddings"):
        F.embedding([0], weight, padding_idx=-5)
    with pytest.raises(ValueError, match="embedding: indices must be integers"):
        F.embedding(np.array([0.5]), weight)
    with pytest.raises(ValueError, match=r"weight must have shape \(num_embeddings, embedding_dim\)"):
        F.embedding([0], tg.Tensor(np.zeros(3)))


def test_embedding_trains_in_a_compiled_step():
    tg.manual_seed(0)
    table = nn.Embedding(5, 2, padding_idx=0, dtype=np.float64)

    def step(tokens):
        return (table(tokens) ** 2).sum()

    compiled = tg.compile(step)
    for tokens in (np.array([[0, 1, 1]]), np.array([[4, 0, 3]])):
        table.zero_grad()
        step(tokens).backward()
        expected = table.weight.grad.data.copy()
        table.zero_grad()
        compiled(tokens)
        np.testing.assert_array_equal(table.weight.grad.data, expected)


# ---- F.pad(mode='reflect' | 'replicate' | 'circular') -------------------------------------------
ROWS = np.arange(1.0, 13.0).reshape(1, 3, 4)
# PyTorch 2.13.0: F.pad(ROWS, pad, mode) (4-pair pads on ROWS[None]); the first row of the result
# (of its first image for 4-pair pads) and ROWS.grad after backward of arange(out.numel()) weights
PADDED = {
    ("reflect", (2, 1)): ([3.0, 2.0, 1.0, 2.0, 3.0, 4.0, 3.0],
                          [[2.0, 4.0, 10.0, 5.0], [9.0, 18.0, 31.0, 12.0], [16.0, 32.0, 52.0, 19.0]]),
    ("replicate", (2, 3)): ([1.0, 1.0, 1.0, 2.0, 3.0, 4.0, 4.0, 4.0, 4.0],
                            [[3.0, 3.0, 4.0, 26.0], [30.0, 12.0, 13.0, 62.0], [57.0, 21.0, 22.0, 98.0]]),
    ("circular", (3, 1)): ([2.0, 3.0, 4.0, 1.0, 2.0, 3.0, 4.0, 1.0],
                           [[10.0, 4.0, 6.0, 8.0], [26.0, 20.0, 22.0, 24.0], [42.0, 36.0, 38.0, 40.0]]),
    ("reflect", (1, 2, 2, 1)): ([10.0, 9.0, 10.0, 11.0, 12.0, 11.0, 10.0],
                                [[15.0, 50.0, 36.0, 18.0], [66.0, 213.0, 150.0, 75.0],
                                 [30.0, 100.0, 72.0, 36.0]]),
    ("replicate", (1, 0, 2, 1)): ([1.0, 1.0, 2.0, 3.0, 4.0],
                                  [[33.0, 21.0, 24.0, 27.0], [31.0, 17.0, 18.0, 19.0],
                                   [92.0, 49.0, 51.0, 53.0]]),
    ("circular", (1, 2, 3, 1)): ([4.0, 1.0, 2.0, 3.0, 4.0, 1.0, 2.0],
                                 [[144.0, 150.0, 72.0, 138.0], [82.0, 86.0, 41.0, 78.0],
                                  [110.0, 114.0, 55.0, 106.0]]),
}


@pytest.mark.parametrize("mode, amounts", sorted(PADDED))
def test_pad_modes_match_pytorch(mode, amounts):
    expected_row, expected_grad = PADDED[mode, amounts]
    x = tg.Tensor(ROWS, requires_grad=True)
    out = F.pad(x if len(amounts) == 2 else x.unsqueeze(0), amounts, mode=mode)
    out.backward(np.arange(float(out.size)).reshape(out.shape))
    assert out.data.reshape(-1, out.shape[-1])[0].tolist() == expected_row
    assert x.grad.tolist() == [expected_grad]


@pytest.mark.parametrize("mode, amounts, first_row", [
    # PyTorch 2.13.0: negative amounts crop; reflect counts from the input's own ends
    ("reflect", (3, -2), [4.0, 3.0, 2.0, 1.0, 2.0]),
    ("reflect", (-3, 2), [4.0, 3.0, 2.0]),
    ("reflect", (-2, 2), [3.0, 4.0, 3.0, 2.0]),
    ("replicate", (-1, 2), [2.0, 3.0, 4.0, 4.0, 4.0]),
    ("circular", (-1, 3), [2.0, 3.0, 4.0, 2.0, 3.0, 4.0]),
    ("circular", (-2, 3), [3.0, 4.0, 3.0, 4.0, 3.0]),
    ("circular", (4, 0), [1.0, 2.0, 3.0, 4.0, 1.0, 2.0, 3.0, 4.0]),
    ("reflect", (3, 3), [4.0, 3.0, 2.0, 1.0, 2.0, 3.0, 4.0, 3.0, 2.0, 1.0]),
])
def test_pad_modes_with_negative_and_largest_amounts_match_pytorch(mode, amounts, first_row):
    assert F.pad(tg.Tensor(ROWS), amounts, mode=mode).data[0, 0].tolist() == first_row


def test_pad_mode_limits_are_pytorchs_as_clear_errors():
    x = tg.Tensor(ROWS)
    # PyTorch 2.13.0: "Padding size should be less than the corresponding input dimension, but got:
    # padding (4, 0) at dimension 2 of input [1, 3, 4]"
    with pytest.raises(ValueError, match=r"mode='reflect' needs each amount to be less than the axis' size.*"
                                         r"\(4, 0\) for axis 2 of an input of shape \(1, 3, 4\)"):
        F.pad(x, (4, 0), mode="reflect")
    with pytest.raises(ValueError, match=r"\(3, 0\) for axis 1"):
        F.pad(x, (0, 0, 3, 0), mode="reflect")
    # PyTorch 2.13.0: "Padding value causes wrapping around more than once."
    with pytest.raises(ValueError, match="mode='circular' wraps around at most once"):
        F.pad(x, (5, 0), mode="circular")
    # PyTorch 2.13.0: 'Padding mode "reflect" doesn't take in value argument' (value 0 is accepted)
    with pytest.raises(ValueError, match="takes no value, got 2.0"):
        F.pad(x, (1, 1), mode="reflect", value=2.0)
    assert F.pad(x, (1, 1), mode="reflect", value=0).shape == (1, 3, 6)
    with pytest.raises(ValueError, match="mode must be one of .*'circular'.*, got 'wrap'"):
        F.pad(x, (1, 1), mode="wrap")
    with pytest.raises(ValueError, match="there are none for axis 2 of an input of shape \\(1, 2, 0\\)"):
        F.pad(tg.zeros(1, 2, 0), (1, 1), mode="replicate")


# ---- F.max_pool2d(return_indices=True) ----------------------------------------------------------
PLANES = np.array([[[[1., 5., 5., 2., 0.], [3., 0., 4., 4., 1.], [2., 2., 7., 1., 7.], [0., 6., 1., 6., 3.]]],
                   [[[-1.] * 5, [-1.] * 5, [-2.] * 5, [9., 8., 7., 6., 5.]]]])


@pytest.mark.parametrize("options, indices", [
    # PyTorch 2.13.0: F.max_pool2d(PLANES, return_indices=True, **options)[1] (ties: the first maximum)
    (dict(kernel_size=2), [[[[1, 2], [16, 12]]], [[[0, 2], [15, 17]]]]),
    (dict(kernel_size=3, stride=1, padding=1),
     [[[[1, 1, 1, 2, 8], [1, 12, 12, 12, 14], [16, 12, 12, 12, 14], [16, 12, 12, 12, 14]]],
      [[[0, 0, 1, 2, 3], [0, 0, 1, 2, 3], [15, 15, 16, 17, 18], [15, 15, 16, 17, 18]]]]),
    (dict(kernel_size=2, stride=2, ceil_mode=True),
     [[[[1, 2, 9], [16, 12, 14]]], [[[0, 2, 4], [15, 17, 19]]]]),
    (dict(kernel_size=2, stride=1, dilation=2), [[[[12, 1, 12], [7, 16, 7]]], [[[0, 1, 2], [15, 16, 17]]]]),
])
def test_max_pool2d_indices_are_pytorchs_flat_positions_per_plane(options, indices):
    x = tg.Tensor(PLANES, requires_grad=True)
    out, found = F.max_pool2d(x, return_indices=True, **options)
    assert found.dtype == np.int64 and found.tolist() == indices and not found.requires_grad
    np.testing.assert_array_equal(out.data, F.max_pool2d(tg.Tensor(PLANES), **options).data)
    out.sum().backward()  # the gradient goes to the cells the indices name
    expected = np.zeros(PLANES.size // 2 * 2).reshape(2, -1)
    for plane, places in enumerate(np.reshape(indices, (2, -1))):
        np.add.at(expected[plane], places, 1.0)
    np.testing.assert_array_equal(x.grad.data.reshape(2, -1), expected)


def test_max_pool2d_indices_with_nan_and_unbatched_and_the_module():
    # PyTorch 2.13.0: a window holding NaNs points at its last NaN: indices [[[3, 1]]]
    image = tg.Tensor(np.array([[[1.0, np.nan, 3.0], [np.nan, 0.0, 2.0]]]))
    out, indices = F.max_pool2d(image, 2, 1, return_indices=True)
    assert out.shape == indices.shape == (1, 1, 2) and indices.tolist() == [[[3, 1]]]
    pool = nn.MaxPool2d(2, None, 0, 1, True)  # PyTorch's fifth positional parameter is return_indices
    assert repr(pool) == "MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)"
    assert pool(tg.Tensor(PLANES))[1].tolist() == [[[[1, 2], [16, 12]]], [[[0, 2], [15, 17]]]]


# ---- Module: add_module, get_submodule, get_parameter, get_buffer, to / float / double ----------
def test_module_lookup_methods_are_pytorchs():
    net = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3))
    assert net.get_submodule("0") is net[0] and net.get_submodule("") is net
    assert net.get_parameter("0.weight") is net[0].weight
    assert net.get_buffer("1.running_mean") is net[1].running_mean
    # PyTorch 2.13.0's messages
    for call, message in [(lambda: net.get_submodule("2"), "Sequential has no attribute `2`"),
                          (lambda: net.get_submodule("0.weight"), "`weight` is not an nn.Module"),
                          (lambda: net.get_parameter("1.running_mean"),
                           "`running_mean` is not an nn.Parameter"),
                          (lambda: net.get_parameter("0.nothing"), "Linear has no attribute `nothing`"),
                          (lambda: net.get_parameter("weight"), "Sequential has no attribute `weight`"),
                          (lambda: net.get_buffer("0.weight"), "`weight` is not a buffer")]:
        with pytest.raises(AttributeError, match=message):
            call()


def test_add_module_registers_as_pytorch_does():
    net = nn.Module()
    net.add_module("layer-1", nn.Linear(2, 2))
    net.add_module("spare", None)
    assert [name for name, _ in net.named_children()] == ["layer-1"] and net.spare is None
    assert list(net.state_dict()) == ["layer-1.weight", "layer-1.bias"]
    net.add_module("layer-1", nn.Linear(2, 4))  # a sub-module may be replaced
    assert net.get_submodule("layer-1").out_features == 4
    # PyTorch 2.13.0: KeyError for '.', '' and an existing attribute; TypeError for a non-module
    for name in ("x.y", "", "training"):
        with pytest.raises(KeyError):
            net.add_module(name, nn.ReLU())
    with pytest.raises(TypeError, match="int is not a Module subclass"):
        net.add_module("act", 3)
    with pytest.raises(TypeError, match="module name should be a string. Got int"):
        net.add_module(3, nn.ReLU())


def test_to_float_double_cast_parameters_buffers_and_grads_in_place():
    net = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3))
    weight = net[0].weight
    net(tg.randn(4, 2)).sum().backward()
    optimizer = tg.optim.SGD(net.parameters(), lr=0.1)
    assert net.double() is net
    assert net[0].weight is weight and weight.dtype == np.float64 and weight.grad.dtype == np.float64
    assert net[1].running_var.dtype == np.float64 and net[1].num_batches_tracked.dtype == np.int64
    assert net(tg.Tensor(np.ones((4, 2)))).dtype == np.float64
    optimizer.step()  # the optimizer made before holds the same (now float64) parameters
    assert weight.dtype == np.float64
    assert net.float()[0].bias.dtype == np.float32
    assert net.to(np.float64)[0].bias.dtype == np.float64
    assert net.to("cpu", "float32")[0].bias.dtype == np.float32
    assert net.to(device="cpu", dtype=np.float64)[0].bias.dtype == np.float64
    assert net.to(tg.zeros(1, dtype=np.float32))[0].bias.dtype == np.float32
    assert net.to("cpu") is net
    # PyTorch 2.13.0: "nn.Module.to only accepts floating point or complex dtypes, but got desired
    # dtype=torch.int64"
    with pytest.raises(TypeError, match="only accepts floating point dtypes"):
        net.to(np.int64)
    with pytest.raises(ValueError, match="runs on the CPU"):
        net.to("cuda")
