"""The floor: each workload's training step hand-written in NumPy, as a careful programmer would.

Same math as the tinygrad_edu versions (same loss, same gradients, same update), written with
the fewest copies: activations computed in place (`+=` bias, `expit(z, out=z)`), gradients
of sigmoid/tanh from the saved outputs, the fused softmax-minus-one-hot gradient of
cross-entropy, transposed operands handed to BLAS as views, updates in place, and (W5)
dead activation buffers reused for the gradients that replace them.
"""
from __future__ import annotations

import numpy as np
from scipy.special import expit


class _Floor:
    def __init__(self, problem):
        self.params = [p.copy() for p in problem.params]
        self.batches = problem.batches
        self.warmup_batch = problem.warmup_batch
        self.lr = problem.hyper.get("lr", 0.0)
        self._count = 0
        self._rows = {}

    def _next_batch(self):
        batch = self.batches[self._count % len(self.batches)]
        self._count += 1
        return batch

    def rows(self, n: int) -> np.ndarray:
        """0..n-1, cached: the row index that picks each sample's class."""
        if n not in self._rows:
            self._rows[n] = np.arange(n)
        return self._rows[n]

    def loss_and_grads(self, batch=None):
        return self._loss_and_grads(self.batches[0] if batch is None else batch)

    def step(self, batch=None) -> None:
        _, grads = self._loss_and_grads(self._next_batch() if batch is None else batch)
        lr = self.lr
        for param, grad in zip(self.params, grads):
            grad *= lr  # the gradient is ours to scratch on: no temporary for lr * grad
            param -= grad

    def reset(self) -> None:
        """Nothing persists between steps except the parameters."""

    def parameter_arrays(self) -> list:
        return self.params


def _sigmoid_backward(grad, out):
    """grad *= out * (1 - out), in place; `out` (the sigmoid's output) is used as scratch."""
    grad *= out
    np.subtract(1, out, out=out)
    grad *= out


def _tanh_backward(grad, out):
    """grad *= 1 - out**2, in place; `out` (the tanh's output) is used as scratch."""
    np.multiply(out, out, out=out)
    np.subtract(1, out, out=out)
    grad *= out


def _softmax_cross_entropy_(scores, labels, rows) -> float:
    """Mean cross-entropy of integer `labels`; turns `scores` into dL/dscores = (softmax - onehot) / n."""
    n = scores.shape[0]
    scores -= scores.max(axis=1, keepdims=True)
    picked = scores[rows, labels]  # the true class's shifted score, copied before exp
    np.exp(scores, out=scores)
    sums = scores.sum(axis=1, keepdims=True)
    loss = (float(np.log(sums).sum()) - float(picked.sum())) / n
    scores /= sums
    scores[rows, labels] -= 1
    scores *= 1.0 / n  # a Python float keeps float32 arrays float32
    return loss


class W1Floor(_Floor):
    """The learner's network: sigmoid(sigmoid(X W1 + b1) W2 + b2), cost 0.5/m |Y-h|^2 + L2."""

    def __init__(self, problem):
        super().__init__(problem)
        self.lam = problem.hyper["lam"]

    def _loss_and_grads(self, batch):
        X, Y = batch
        W1, b1, W2, b2 = self.params
        m = X.shape[0]
        a2 = X @ W1
        a2 += b1
        expit(a2, out=a2)
        h = a2 @ W2
        h += b2
        expit(h, out=h)
        d3 = h - Y
        decay = self.lam / m
        loss = (0.5 / m) * float(np.vdot(d3, d3)) + 0.5 * decay * float(np.vdot(W1, W1) + np.vdot(W2, W2))
        d3 *= 1.0 / m
        _sigmoid_backward(d3, h)
        gW2 = a2.T @ d3
        gW2 += decay * W2
        gb2 = d3.sum(axis=0)
        d2 = d3 @ W2.T
        _sigmoid_backward(d2, a2)
        gW1 = X.T @ d2  # X.T is a view: BLAS reads it transposed, no copy
        gW1 += decay * W1
        gb1 = d2.sum(axis=0)
        return loss, [gW1, gb1, gW2, gb2]


class W2Floor(_Floor):
    """784-128-128-10 sigmoid MLP, softmax + cross-entropy, float32."""

    def _loss_and_grads(self, batch):
        x, labels = batch
        W1, b1, W2, b2, W3, b3 = self.params
        a1 = x @ W1.T
        a1 += b1
        expit(a1, out=a1)
        a2 = a1 @ W2.T
        a2 += b2
        expit(a2, out=a2)
        d3 = a2 @ W3.T
        d3 += b3
        loss = _softmax_cross_entropy_(d3, labels, self.rows(x.shape[0]))
        gW3 = d3.T @ a2
        gb3 = d3.sum(axis=0)
        d2 = d3 @ W3
        _sigmoid_backward(d2, a2)
        gW2 = d2.T @ a1
        gb2 = d2.sum(axis=0)
        d1 = d2 @ W2
        _sigmoid_backward(d1, a1)
        gW1 = d1.T @ x
        gb1 = d1.sum(axis=0)
        return loss, [gW1, gb1, gW2, gb2, gW3, gb3]


class W3Floor(_Floor):
    """10-16-16-1 tanh MLP, mean squared error, float64."""

    def _loss_and_grads(self, batch):
        x, y = batch
        W1, b1, W2, b2, W3, b3 = self.params
        a1 = x @ W1.T
        a1 += b1
        np.tanh(a1, out=a1)
        a2 = a1 @ W2.T
        a2 += b2
        np.tanh(a2, out=a2)
        d3 = a2 @ W3.T
        d3 += b3
        d3 -= y
        loss = float(np.vdot(d3, d3)) / d3.size
        d3 *= 2.0 / d3.size
        gW3 = d3.T @ a2
        gb3 = d3.sum(axis=0)
        d2 = d3 @ W3
        _tanh_backward(d2, a2)
        gW2 = d2.T @ a1
        gb2 = d2.sum(axis=0)
        d1 = d2 @ W2
        _tanh_backward(d1, a1)
        gW1 = d1.T @ x
        gb1 = d1.sum(axis=0)
        return loss, [gW1, gb1, gW2, gb2, gW3, gb3]


class W4Floor(_Floor):
    """h = x; repeat: h = tanh(h * scale) + shift; loss = sum(h); dloss/dx. No update."""

    def __init__(self, problem):
        super().__init__(problem)
        self.cycles = problem.hyper["cycles"]
        self.scale, self.shift = problem.hyper["scale"], problem.hyper["shift"]

    def _loss_and_grads(self, batch):
        (x,) = self.params
        scale, shift = self.scale, self.shift
        outs = []
        h = x
        for _ in range(self.cycles):
            t = h * scale
            np.tanh(t, out=t)
            outs.append(t)  # tanh's output is all its backward needs
            h = t + shift
        loss = float(h.sum())
        grad = np.ones_like(x)  # d sum / dh; +shift passes it through unchanged
        scratch = np.empty_like(x)
        for t in reversed(outs):
            np.multiply(t, t, out=scratch)
            np.subtract(1, scratch, out=scratch)
            grad *= scratch
            grad *= scale
        return loss, [grad]

    def step(self, batch=None) -> None:
        self._loss_and_grads(None)  # the workload is forward + backward; x is not updated


class W5Floor(_Floor):
    """784-2048-2048-10 ReLU MLP, softmax + cross-entropy, float32, written for least memory.

    Each ReLU's output becomes its mask, then its buffer receives the gradient flowing into
    that layer; weights are updated only after the gradient through them has been taken.
    """

    def _loss_and_grads(self, batch):
        x, labels = batch
        W1, b1, W2, b2, W3, b3 = self.params
        a1 = x @ W1.T
        a1 += b1
        np.maximum(a1, 0, out=a1)
        a2 = a1 @ W2.T
        a2 += b2
        np.maximum(a2, 0, out=a2)
        d3 = a2 @ W3.T
        d3 += b3
        loss = _softmax_cross_entropy_(d3, labels, self.rows(x.shape[0]))
        gW3 = d3.T @ a2
        gb3 = d3.sum(axis=0)
        mask = a2 > 0
        d2 = np.matmul(d3, W3, out=a2)  # a2 is dead once its mask exists: reuse its buffer
        d2 *= mask
        del a2, mask
        gW2 = d2.T @ a1
        gb2 = d2.sum(axis=0)
        mask = a1 > 0
        d1 = np.matmul(d2, W2, out=a1)
        d1 *= mask
        del a1, mask, d2
        gW1 = d1.T @ x
        gb1 = d1.sum(axis=0)
        return loss, [gW1, gb1, gW2, gb2, gW3, gb3]


def _im2col(padded: np.ndarray, k: int) -> np.ndarray:
    """(N, H, W, C) padded channels-last images -> (N * OH * OW, C * k * k): one row per output
    pixel, its window in the weight's (C, kh, kw) order (one copy, from a strided view)."""
    windows = np.lib.stride_tricks.sliding_window_view(padded, (k, k), axis=(1, 2))  # N, OH, OW, C, k, k
    n, out_h, out_w = windows.shape[:3]
    return windows.reshape(n * out_h * out_w, -1)


def _col2im_add(cols: np.ndarray, padded_shape: tuple, k: int) -> np.ndarray:
    """The adjoint of _im2col: (N, OH, OW, C, k, k) window gradients added back into (N, H, W, C)."""
    out = np.zeros(padded_shape, dtype=cols.dtype)
    out_h, out_w = cols.shape[1:3]
    for i in range(k):
        for j in range(k):
            out[:, i:i + out_h, j:j + out_w, :] += cols[:, :, :, :, i, j]
    return out


def _max_pool_2x2(a: np.ndarray):
    """2x2 max-pool of channels-last (N, H, W, C) by a reshape; returns the pooled values and the
    mask of maxima (ties share the gradient equally, as tinygrad_edu's Max does)."""
    n, h, w, c = a.shape
    blocks = a.reshape(n, h // 2, 2, w // 2, 2, c)
    pooled = blocks.max(axis=(2, 4))
    mask = blocks == pooled[:, :, None, :, None, :]
    share = mask / mask.sum(axis=(2, 4), keepdims=True, dtype=a.dtype)
    return pooled, share


class W6Floor(_Floor):
    """Two (conv 3x3 pad 1, ReLU, 2x2 max-pool) blocks and a Linear, float32, by im2col + GEMM.

    Channels-last inside (a window's pixels are then one row of the im2col matrix after a
    single copy); the flattened features are put back in NCHW order for the Linear layer.
    """

    def _conv_relu_forward(self, x, W, b):
        k = W.shape[-1]
        padded = np.pad(x, ((0, 0), (k // 2, k // 2), (k // 2, k // 2), (0, 0)))
        cols = _im2col(padded, k)
        out = cols @ W.reshape(W.shape[0], -1).T  # (N*OH*OW, O)
        out += b
        np.maximum(out, 0, out=out)
        return out.reshape(x.shape[:3] + (W.shape[0],)), cols, padded.shape

    def _loss_and_grads(self, batch):
        x, labels = batch
        W1, b1, W2, b2, W3, b3 = self.params
        n, k = x.shape[0], W1.shape[-1]
        a1, cols1, _ = self._conv_relu_forward(x.transpose(0, 2, 3, 1), W1, b1)
        p1, share1 = _max_pool_2x2(a1)
        a2, cols2, padded2_shape = self._conv_relu_forward(p1, W2, b2)
        p2, share2 = _max_pool_2x2(a2)
        features = p2.transpose(0, 3, 1, 2).reshape(n, -1)  # NCHW flatten order, as nn.Flatten
        scores = features @ W3.T
        scores += b3
        loss = _softmax_cross_entropy_(scores, labels, self.rows(n))
        gW3 = scores.T @ features
        gb3 = scores.sum(axis=0)
        d_p2 = (scores @ W3).reshape(n, W2.shape[0], p2.shape[1], p2.shape[2]).transpose(0, 2, 3, 1)
        d_a2 = (share2 * d_p2[:, :, None, :, None, :]).reshape(a2.shape)
        d_a2 *= a2 > 0
        d_a2 = d_a2.reshape(-1, W2.shape[0])
        gW2 = (d_a2.T @ cols2).reshape(W2.shape)
        gb2 = d_a2.sum(axis=0)
        d_cols2 = (d_a2 @ W2.reshape(W2.shape[0], -1)).reshape(a2.shape[:3] + (W2.shape[1], k, k))
        d_p1 = _col2im_add(d_cols2, padded2_shape, k)[:, k // 2:-(k // 2), k // 2:-(k // 2), :]
        d_a1 = (share1 * d_p1[:, :, None, :, None, :]).reshape(a1.shape)
        d_a1 *= a1 > 0
        d_a1 = d_a1.reshape(-1, W1.shape[0])
        gW1 = (d_a1.T @ cols1).reshape(W1.shape)
        gb1 = d_a1.sum(axis=0)
        return loss, [gW1, gb1, gW2, gb2, gW3, gb3]


VERSIONS = {"W1": W1Floor, "W2": W2Floor, "W3": W3Floor, "W4": W4Floor, "W5": W5Floor, "W6": W6Floor}
