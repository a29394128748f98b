"""Optimizers: update parameters from their `.grad`, exactly as PyTorch's optimizers of the same name.

Same formulas, same order of operations, same defaults, same state names, so a learner can
read PyTorch's documentation of an algorithm and find it here line by line. Updates work on
the parameters' arrays in place, outside the graph.
"""
from __future__ import annotations

import math
from collections import defaultdict
from typing import Callable, Optional

import numpy as np

from .autograd import enable_grad, grad
from .tensor import Tensor, clear_grad


class Optimizer:
    """Base class: parameter groups, `zero_grad`, `step`, and state dicts.

    `params` is an iterable of Tensors, or of dicts (parameter groups) each with a "params"
    list and options that override the defaults for that group.
    """

    def __init__(self, params, defaults: dict):
        self.defaults = defaults
        # Keyed by the parameter itself, as in PyTorch: Tensors hash by identity.
        self.state: defaultdict = defaultdict(dict)
        self.param_groups: list = []
        params = [params] if isinstance(params, Tensor) else list(params)
        if not params:
            raise ValueError(f"{type(self).__name__} got an empty parameter list")
        groups = params if isinstance(params[0], dict) else [{"params": params}]
        for group in groups:
            self.add_param_group(group)

    def add_param_group(self, group: dict) -> None:
        """Add a group of parameters with its own options (e.g. a smaller lr for some layers)."""
        group = dict(group)
        params = group["params"]
        params = [params] if isinstance(params, Tensor) else list(params)
        if params and all(isinstance(item, tuple) and len(item) == 2 for item in params):
            # model.named_parameters(), as PyTorch accepts: keep the names beside the params
            group["param_names"] = [name for name, _ in params]
            params = [param for _, param in params]
        group["params"] = params
        for param in params:
            if not isinstance(param, Tensor):
                raise TypeError(f"{type(self).__name__} can only optimize Tensors, got {type(param).__name__}")
            if not param.is_leaf:
                raise ValueError("can't optimize a non-leaf Tensor (optimize the leaves it was computed from)")
        if len({id(p) for p in params}) != len(params):
            raise ValueError("a parameter group lists the same parameter twice (it would be updated twice)")
        taken = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in taken for p in params):
            raise ValueError("some parameters appear in more than one parameter group")
        for name, default in self.defaults.items():
            group.setdefault(name, default)
        self._check_options(group)
        self.param_groups.append(group)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear the gradients of all parameters (gradients accumulate across backward calls)."""
        for group in self.param_groups:
            for param in group["params"]:
                clear_grad(param, set_to_none)

    def step(self, closure: Optional[Callable] = None):
        """Update every parameter that has a gradient; returns `closure()`'s loss if given."""
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        self._check_before_step()
        for group in self.param_groups:
            for param in group["params"]:
                grad = param._grad  # the slot behind .grad, which checked it when it was set
                if grad is None:
                    continue  # not used by this loss: no update, and no state is created
                grad = grad.data
                state = self.state.get(param, {})
                self._update(param.data, -grad if group["maximize"] else grad, state, group)
                param._bump_version()  # an in-place write: graphs that saved the old values refuse them
                if state:  # plain SGD keeps no state, and then lists none
                    self.state[param] = state
        return loss

    def _update(self, param: np.ndarray, grad: np.ndarray, state: dict, group: dict) -> None:
        raise NotImplementedError

    def _check_before_step(self) -> None:
        """Refuse what cannot update a parameter correctly before any update, so that a failed step
        changes nothing: a gradient that is not a Tensor, one of another shape (NumPy would broadcast
        it over the parameter, a silently wrong step), and a read-only parameter."""
        for group in self.param_groups:
            for param in group["params"]:
                grad = param._grad
                if grad is None:
                    continue
                if not isinstance(grad, Tensor):
                    raise TypeError(
                        f"{type(self).__name__}.step: the .grad of parameter {self._describe(param)} is a "
                        f"{type(grad).__name__}, not a Tensor; assign param.grad = Tensor(array)")
                if grad.data.shape != param.data.shape:
                    raise ValueError(
                        f"{type(self).__name__}.step: a gradient of shape {param.grad.shape} for parameter "
                        f"{self._describe(param)} of shape {param.shape}; it must have the parameter's shape")
                if not param.data.flags.writeable:
                    raise ValueError(
                        f"{type(self).__name__}.step: parameter {self._describe(param)} of shape "
                        f"{param.shape} is read-only (e.g. made from np.load(..., mmap_mode='r')), so it "
                        "cannot be updated in place; give the Tensor a writable copy (Tensor(array.copy()))")

    def _describe(self, param: Tensor) -> str:
        """The parameter's name when named_parameters() were given, else its number in state_dict()."""
        number = 0
        for group in self.param_groups:
            for index, candidate in enumerate(group["params"]):
                if candidate is param:
                    return repr(group["param_names"][index]) if "param_names" in group else str(number)
                number += 1
        return "?"

    def _check_options(self, group: dict) -> None:
        # Written `not 0.0 <= x` (as PyTorch does): NaN, for which every comparison is False, fails too.
        for name in ("lr", "eps", "weight_decay", "momentum", "alpha"):
            if name in group and not 0.0 <= group[name]:
                raise ValueError(f"invalid {name} {group[name]}: it must be >= 0")
        if "dampening" in group and not math.isfinite(group["dampening"]):
            raise ValueError(f"invalid dampening {group['dampening']}: it must be a finite number")

    # ---- state dicts ---------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """{"state": {index: {...}}, "param_groups": [{options, "params": [indices]}]}, as PyTorch.

        Parameters are numbered in group order; arrays are copies.
        """
        index, groups = {}, []
        for group in self.param_groups:
            for param in group["params"]:
                index.setdefault(id(param), len(index))
            options = {name: value for name, value in group.items() if name != "params"}
            groups.append({**options, "params": [index[id(p)] for p in group["params"]]})
        state = {
            index[id(param)]: {name: _copy(value) for name, value in values.items()}
            for param, values in self.state.items()
        }
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore options and state saved by `state_dict` (into an optimizer over the same shapes)."""
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(
                f"the state dict has {len(saved_groups)} parameter groups, this optimizer has "
                f"{len(self.param_groups)}"
            )
        by_index = {}
        for number, (saved, group) in enumerate(zip(saved_groups, self.param_groups)):
            if len(saved["params"]) != len(group["params"]):
                raise ValueError(
                    f"parameter group {number} has {len(saved['params'])} parameters in the state dict "
                    f"but {len(group['params'])} in this optimizer"
                )
            by_index.update(zip((int(i) for i in saved["params"]), group["params"]))
        state = {}
        for key, values in state_dict["state"].items():
            if int(key) not in by_index:
                raise ValueError(f"the state dict has state for parameter {key}, which no parameter group lists")
            param = by_index[int(key)]
            state[param] = {}
            for name, value in values.items():
                if isinstance(value, (np.ndarray, Tensor)):
                    value = np.asarray(value.data if isinstance(value, Tensor) else value)
                    if value.shape != param.shape:
                        raise ValueError(
                            f"state '{name}' of parameter {key} has shape {value.shape}, "
                            f"but the parameter has shape {param.shape}"
                        )
                    value = value.astype(param.dtype, copy=True)
                state[param][name] = value
        for saved, group in zip(saved_groups, self.param_groups):
            options = {name: value for name, value in saved.items() if name != "params"}
            if "betas" in options:
                options["betas"] = tuple(options["betas"])
            group.update(options)
        self.state = defaultdict(dict, state)

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for number, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {number}")
            lines += [f"    {name}: {group[name]}" for name in sorted(group) if name != "params"]
        return "\n".join(lines) + "\n)"


def _copy(value):
    return value.copy() if isinstance(value, np.ndarray) else value


class SGD(Optimizer):
    """Stochastic gradient descent, optionally with momentum (PyTorch's formulation).

    With weight decay ``g = grad + weight_decay * p``; with momentum the buffer starts as the
    first g and then ``buf = momentum * buf + (1 - dampening) * g``; the step uses
    ``g + momentum * buf`` (nesterov) or ``buf``; finally ``p -= lr * step``.
    """

    def __init__(self, params, lr: float = 1e-3, momentum: float = 0, dampening: float = 0,
                 nesterov: bool = False, weight_decay: float = 0, maximize: bool = False):
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening, nesterov=nesterov,
                        weight_decay=weight_decay, maximize=maximize)
        super().__init__(params, defaults)

    def _check_options(self, group: dict) -> None:
        super()._check_options(group)
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError("Nesterov momentum requires a momentum > 0 and zero dampening")

    def _update(self, param, grad, state, group):
        lr, momentum, weight_decay = group["lr"], group["momentum"], group["weight_decay"]
        if weight_decay != 0:
            grad = grad + weight_decay * param
        if momentum != 0:
            buffer = state.get("momentum_buffer")
            if buffer is None:
                buffer = state["momentum_buffer"] = grad.copy()  # no dampening on the first step
            else:
                buffer *= momentum
                buffer += (1 - group["dampening"]) * grad
            grad = grad + momentum * buffer if group["nesterov"] else buffer
        param -= lr * grad


class Adam(Optimizer):
    """Adam (Kingma & Ba): steps scaled by running averages of the gradient and its square.

    ``m = lerp(m, g, 1 - beta1)``, ``v = beta2 v + (1 - beta2) g**2``, and with the bias
    corrections ``c1 = 1 - beta1**t``, ``c2 = 1 - beta2**t``:
    ``p -= (lr / c1) * m / (sqrt(v) / sqrt(c2) + eps)``. Weight decay here is an L2 term added
    to the gradient; for decoupled weight decay use `AdamW`.
    """

    decoupled = False

    def __init__(self, params, lr: float = 1e-3, betas: tuple = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0, amsgrad: bool = False, maximize: bool = False):
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                        amsgrad=amsgrad, maximize=maximize)
        super().__init__(params, defaults)

    def _check_options(self, group: dict) -> None:
        super()._check_options(group)
        for i, beta in enumerate(group["betas"]):
            if not 0.0 <= beta < 1.0:
                raise ValueError(f"invalid beta parameter at index {i}: {beta} (it must be in [0, 1))")

    def _update(self, param, grad, state, group):
        lr, (beta1, beta2), weight_decay = group["lr"], group["betas"], group["weight_decay"]
        if weight_decay != 0:
            if self.decoupled:
                param *= 1 - lr * weight_decay  # AdamW: shrink the weights, outside the gradient
            else:
                grad = grad + weight_decay * param
        if not state:
            state["step"] = 0
            state["exp_avg"] = np.zeros_like(param)
            state["exp_avg_sq"] = np.zeros_like(param)
            if group["amsgrad"]:
                state["max_exp_avg_sq"] = np.zeros_like(param)
        state["step"] += 1
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        exp_avg += (1 - beta1) * (grad - exp_avg)  # lerp towards grad
        exp_avg_sq *= beta2
        exp_avg_sq += (1 - beta2) * grad * grad
        step_size = lr / (1 - beta1 ** state["step"])
        correction2_sqrt = math.sqrt(1 - beta2 ** state["step"])
        if group["amsgrad"]:
            np.maximum(state["max_exp_avg_sq"], exp_avg_sq, out=state["max_exp_avg_sq"])
            exp_avg_sq = state["max_exp_avg_sq"]
        denom = np.sqrt(exp_avg_sq) / correction2_sqrt + group["eps"]
        param -= step_size * (exp_avg / denom)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter): ``p *= 1 - lr * weight_decay``
    before the Adam step, instead of adding an L2 term to the gradient. Default weight_decay 1e-2."""

    decoupled = True

    def __init__(self, params, lr: float = 1e-3, betas: tuple = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, amsgrad: bool = False, maximize: bool = False):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         amsgrad=amsgrad, maximize=maximize)


class RMSprop(Optimizer):
    """RMSprop (Hinton): steps divided by a running root-mean-square of the gradient.

    ``v = alpha v + (1 - alpha) g**2``; centered also tracks ``a = lerp(a, g, 1 - alpha)`` and
    uses ``v - a**2``; ``avg = sqrt(v) + eps``; then ``p -= lr * g / avg``, or with momentum
    ``buf = momentum * buf + g / avg`` and ``p -= lr * buf``.
    """

    def __init__(self, params, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0, momentum: float = 0, centered: bool = False,
                 maximize: bool = False):
        defaults = dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
                        centered=centered, maximize=maximize)
        super().__init__(params, defaults)

    def _update(self, param, grad, state, group):
        alpha, momentum = group["alpha"], group["momentum"]
        if group["weight_decay"] != 0:
            grad = grad + group["weight_decay"] * param
        if not state:
            state["step"] = 0
            state["square_avg"] = np.zeros_like(param)
            if momentum > 0:
                state["momentum_buffer"] = np.zeros_like(param)
            if group["centered"]:
                state["grad_avg"] = np.zeros_like(param)
        state["step"] += 1
        square_avg = state["square_avg"]
        square_avg *= alpha
        square_avg += (1 - alpha) * grad * grad
        if group["centered"]:
            grad_avg = state["grad_avg"]
            grad_avg += (1 - alpha) * (grad - grad_avg)
            avg = np.sqrt(square_avg - grad_avg * grad_avg)  # variance, not raw second moment
        else:
            avg = np.sqrt(square_avg)
        avg += group["eps"]
        if momentum > 0:
            buffer = state["momentum_buffer"]
            buffer *= momentum
            buffer += grad / avg
            param -= group["lr"] * buffer
        else:
            param -= group["lr"] * (grad / avg)


# ---- the SciPy bridge ---------------------------------------------------------------------------
def minimize(closure: Callable, params, method: str = "L-BFGS-B", maxiter: int = 100, tol=None,
             callback: Optional[Callable] = None, **options):
    """Train full-batch with ``scipy.optimize.minimize``: the parameters become one vector.

    This is how the first learner's course trains its network (``fmincg``: conjugate
    gradients, 50 iterations). Quasi-Newton methods such as L-BFGS use the history of
    gradients to choose both the direction and the step, so they usually reach a given loss in
    far fewer iterations than plain gradient descent, with no learning rate to tune.

    Parameters
    ----------
    closure : callable
        ``closure()`` computes and returns the scalar loss Tensor from the parameters' current
        values (the whole batch: the function SciPy minimises must not change between calls).
    params : iterable of Tensor, or nn.Module
        The tensors to optimise; each must require grad.
    method : str
        Any gradient-based method of ``scipy.optimize.minimize``: 'L-BFGS-B' (default), 'CG',
        'BFGS', 'Newton-CG', 'TNC', 'SLSQP', ...
    maxiter : int
        Iterations at most (passed in `options`).
    tol : float, optional
        SciPy's tolerance for termination.
    callback : callable, optional
        Called with no argument after each iteration, while the parameters hold that
        iteration's values (e.g. to record an accuracy).
    **options
        More method options for SciPy (e.g. ``gtol=1e-8``).

    Returns
    -------
    scipy.optimize.OptimizeResult
        ``.fun`` (the final loss), ``.nit`` (iterations), ``.nfev`` (loss evaluations),
        ``.success``, ``.message``. The parameters hold the result ``.x``.

    The gradient comes from ``tg.grad(loss, params)`` (``.grad`` is left untouched) and is
    handed to SciPy with the loss (``jac=True``), in float64; float32 parameters get the result
    rounded to float32.

    Examples
    --------
    >>> import tinygrad_edu as tg
    >>> from tinygrad_edu import optim
    >>> w = tg.Tensor([3.0, -2.0], requires_grad=True, dtype="float64")
    >>> result = optim.minimize(lambda: ((w - 1.0) ** 2).sum(), [w])
    >>> result.success, w.data.round(6).tolist()
    (True, [1.0, 1.0])
    """
    import scipy.optimize

    params = _optimisable(params)
    sizes = [p.data.size for p in params]
    bounds = np.cumsum([0] + sizes)

    def write(vector: np.ndarray) -> None:
        for p, start, stop in zip(params, bounds[:-1], bounds[1:]):
            p.data[...] = vector[start:stop].reshape(p.shape)  # in place: the caller's arrays

    def loss_and_gradient(vector: np.ndarray):
        write(vector)
        with enable_grad():
            loss = closure()
        if not isinstance(loss, Tensor) or loss.size != 1:
            shape = f"a Tensor of shape {loss.shape}" if isinstance(loss, Tensor) else type(loss).__name__
            raise ValueError(f"minimize: the closure must return the loss as a one-element Tensor, got {shape}")
        if not loss.requires_grad:
            raise ValueError("minimize: the loss does not depend on the parameters (it does not require grad)")
        gradients = grad(loss, params, allow_unused=True)
        flat = np.concatenate([
            np.zeros(size) if g is None else g.data.ravel() for g, size in zip(gradients, sizes)
        ]).astype(np.float64)
        return float(loss.item()), flat

    start = np.concatenate([p.data.ravel() for p in params]).astype(np.float64)
    result = scipy.optimize.minimize(
        loss_and_gradient, start, jac=True, method=method, tol=tol,
        callback=None if callback is None else (lambda vector, *rest: (write(vector), callback())),
        options={"maxiter": maxiter, **options},
    )
    write(result.x)
    return result


def _optimisable(params) -> list:
    """The parameters as a list of distinct floating Tensors that require grad."""
    if hasattr(params, "parameters") and callable(params.parameters):
        params = params.parameters()
    params = [params] if isinstance(params, Tensor) else list(params)
    if not params:
        raise ValueError("minimize got an empty parameter list")
    seen = set()
    for i, p in enumerate(params):
        if not isinstance(p, Tensor) or not p.requires_grad:
            what = "does not require grad" if isinstance(p, Tensor) else f"is a {type(p).__name__}, not a Tensor"
            raise ValueError(f"minimize: parameter {i} {what}")
        if id(p) in seen:
            raise ValueError(f"minimize: parameter {i} appears twice in the list")
        seen.add(id(p))
    return params
