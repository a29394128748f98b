"""Module and Parameter: how a network keeps track of its weights and its sub-networks.

A Module registers every Parameter and sub-Module assigned to it as an attribute, so that
`parameters()`, `state_dict()`, `train()`/`eval()` and `repr` can walk the whole tree.
It holds no math: layers compute with Tensor operations and `functional`.
"""
from __future__ import annotations

from collections import namedtuple
from typing import Callable, Iterator, Optional

import numpy as np

from ..autograd import node_of
from ..tensor import Tensor, clear_grad, conversion_dtype


class Parameter(Tensor):
    """A Tensor that a Module registers as one of its weights: a leaf with ``requires_grad=True``.

    >>> import numpy as np
    >>> w = Parameter(np.zeros((2, 3), dtype=np.float32))
    >>> w.requires_grad, w.is_leaf
    (True, True)
    """

    __slots__ = ()

    def __init__(self, data, requires_grad: bool = True):
        super().__init__(data, requires_grad=requires_grad)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()


class StateDictError(RuntimeError, ValueError):
    """A state dict that does not fit the model: missing or unexpected keys, or wrong shapes.

    A RuntimeError, as in PyTorch, and a ValueError, as any other bad input here.
    """


IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


class Module:
    """Base class of every layer and network.

    Subclasses call ``super().__init__()`` first, assign their Parameters and sub-Modules as
    attributes (they register themselves, in order), and define ``forward``.

    >>> import tinygrad_edu as tg
    >>> from tinygrad_edu import nn
    >>> class TwoLayer(nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.hidden = nn.Linear(4, 3)
    ...         self.out = nn.Linear(3, 2)
    ...     def forward(self, x):
    ...         return self.out(self.hidden(x).sigmoid())
    >>> [name for name, _ in TwoLayer().named_parameters()]
    ['hidden.weight', 'hidden.bias', 'out.weight', 'out.bias']
    """

    def __init__(self):
        # object.__setattr__: our own __setattr__ needs these registries to exist first.
        object.__setattr__(self, "_parameters", {})
        object.__setattr__(self, "_modules", {})
        object.__setattr__(self, "_buffers", {})
        object.__setattr__(self, "_non_persistent_buffers", set())  # names kept out of state_dict()
        object.__setattr__(self, "_forward_hooks", {})
        object.__setattr__(self, "training", True)

    # Counts assignments of parameters, sub-modules, buffers and the training flag in every Module: a
    # compiled step (tg.compile) looks again for the Tensors its function uses, and their modes, when it
    # moves.
    structure_changes = 0

    # ---- registration ----------------------------------------------------------------------
    def __setattr__(self, name: str, value) -> None:
        parameters = self.__dict__.get("_parameters")
        if isinstance(value, (Parameter, Module)) and parameters is None:
            raise AttributeError(
                f"cannot assign {type(value).__name__} '{name}' before Module.__init__() was called; "
                f"call super().__init__() first in {type(self).__name__}.__init__"
            )
        if isinstance(value, Parameter):
            self._modules.pop(name, None)
            parameters[name] = value
        elif isinstance(value, Module):
            parameters.pop(name, None)
            self._modules[name] = value
        elif name in self.__dict__.get("_buffers", ()):
            value = _as_buffer(name, value)
            self._buffers[name] = value
        elif parameters is not None and (name in parameters or name in self._modules):
            kind = "parameter" if name in parameters else "sub-module"
            if value is not None:
                wrap = " (wrap it: nn.Parameter(...))" if kind == "parameter" else ""
                raise TypeError(f"cannot assign a {type(value).__name__} to {kind} '{name}'{wrap}")
            (parameters if kind == "parameter" else self._modules)[name] = None
        if parameters is not None and (name == "training" or name in parameters or name in self._modules
                                       or name in self._buffers):
            Module.structure_changes += 1
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        Module.structure_changes += 1
        self._parameters.pop(name, None)
        self._modules.pop(name, None)
        self._buffers.pop(name, None)
        self._non_persistent_buffers.discard(name)
        object.__delattr__(self, name)

    def register_buffer(self, name: str, tensor, persistent: bool = True) -> None:
        """Keep `tensor` (an array or Tensor, or None) as state that is not a parameter: it is in
        ``state_dict()`` and loaded by ``load_state_dict``, but not in ``parameters()``, so no
        optimizer updates it (BatchNorm's running statistics). Stored as a Tensor without grad.
        With ``persistent=False`` (PyTorch's meaning) it is a buffer (``buffers()``, moved along
        with the module) that ``state_dict()`` leaves out: state computed again, not saved.

        >>> from tinygrad_edu import nn
        >>> layer = nn.Module()
        >>> layer.register_buffer("count", np.zeros(()))
        >>> layer.register_buffer("scratch", np.zeros(3), persistent=False)
        >>> list(layer.state_dict()), list(layer.parameters()), [name for name, _ in layer.named_buffers()]
        (['count'], [], ['count', 'scratch'])
        """
        if "_buffers" not in self.__dict__:
            raise AttributeError(f"cannot register buffer '{name}' before Module.__init__() was called")
        if not isinstance(name, str) or not name or "." in name:
            raise KeyError(f"a buffer name must be a non-empty string without '.', got {name!r}")
        if name in self._parameters or name in self._modules:
            raise KeyError(f"'{name}' is already a parameter or sub-module of {type(self).__name__}")
        if not isinstance(persistent, bool):
            raise TypeError(f"register_buffer: persistent must be True or False, got {persistent!r}")
        self._buffers[name] = None
        (self._non_persistent_buffers.discard if persistent else self._non_persistent_buffers.add)(name)
        setattr(self, name, tensor)

    def add_module(self, name: str, module: Optional["Module"]) -> None:
        """Register `module` (or None) as the sub-module `name`: the same as assigning it as an
        attribute, for names that are not identifiers (PyTorch's checks and errors).

        >>> from tinygrad_edu import nn
        >>> net = nn.Module()
        >>> net.add_module("layer-1", nn.Linear(2, 2))
        >>> [name for name, _ in net.named_parameters()]
        ['layer-1.weight', 'layer-1.bias']
        """
        if not isinstance(module, Module) and module is not None:
            raise TypeError(f"{type(module).__name__} is not a Module subclass")
        if not isinstance(name, str):
            raise TypeError(f"module name should be a string. Got {type(name).__name__}")
        if not name or "." in name:
            raise KeyError(f"a module name must be a non-empty string without '.', got {name!r}")
        if hasattr(self, name) and name not in self._modules:
            raise KeyError(f"attribute '{name}' already exists")
        if module is None:
            self._modules[name] = None
            object.__setattr__(self, name, None)
        else:
            setattr(self, name, module)

    def named_buffers(self, prefix: str = "") -> Iterator:
        """(dotted name, buffer) pairs for this module and every module below it (None buffers skipped)."""
        for module_name, module in self.named_modules(prefix):
            for name, buffer in module._buffers.items():
                if buffer is not None:
                    yield (f"{module_name}.{name}" if module_name else name), buffer

    def buffers(self) -> Iterator[Tensor]:
        """Every buffer of this module and the modules below it."""
        for _, buffer in self.named_buffers():
            yield buffer

    def _named_state(self) -> Iterator:
        """What a state dict holds, in PyTorch's order: per module, its parameters, then its buffers."""
        for module_name, module in self.named_modules(remove_duplicate=False):
            for name, value in (*module._parameters.items(), *module._buffers.items()):
                if value is not None and name not in module._non_persistent_buffers:
                    yield (f"{module_name}.{name}" if module_name else name), value

    # ---- calling -----------------------------------------------------------------------------
    def forward(self, *inputs):
        """The module's computation, defined by each subclass; call the module (``module(x)``),
        not ``forward``, so that forward hooks run.
        """
        raise NotImplementedError(f"{type(self).__name__} must define forward(...)")

    def __call__(self, *inputs, **kwargs):
        """Run ``forward`` then the forward hooks (which may replace the output), and return it.

        The call is also noted on the output's graph node, so ``viz.draw_graph`` can show the module.
        """
        out = self.forward(*inputs, **kwargs)
        if self._forward_hooks:
            for hook in tuple(self._forward_hooks.values()):
                result = hook(self, inputs, out)
                if result is not None:
                    out = result
        ctx = getattr(out, "_ctx", None)
        if ctx is not None:
            # Lets viz.draw_graph fold this call into one node: which module made `out` from which
            # inputs, as graph items (a Tensor's node, or the leaf or array itself; ids are enough:
            # they stay alive as long as the graph that uses them).
            ids = tuple([id(node_of(x)) if isinstance(x, Tensor) else id(x) for x in inputs])
            ctx.module_calls = (*(ctx.module_calls or ()), (self, ids))  # innermost first
        return out

    def register_forward_hook(self, fn: Callable) -> "HookHandle":
        """Call ``fn(module, inputs, output)`` after every forward; a returned value replaces the output.

        Returns a handle whose ``.remove()`` takes the hook off again.
        """
        handle = HookHandle(self._forward_hooks)
        self._forward_hooks[handle.id] = fn
        return handle

    # ---- walking the tree ---------------------------------------------------------------------
    def named_modules(self, prefix: str = "", remove_duplicate: bool = True,
                      _seen: Optional[set] = None) -> Iterator:
        """(dotted name, module) for this module (name "") and every module below it; a module
        used in two places comes once unless remove_duplicate=False."""
        seen = set() if _seen is None else _seen
        if remove_duplicate:
            if id(self) in seen:
                return
            seen.add(id(self))
        yield prefix, self
        for name, child in self._modules.items():
            if child is not None:
                yield from child.named_modules(f"{prefix}.{name}" if prefix else name, remove_duplicate, seen)

    def get_submodule(self, target: str) -> "Module":
        """The module at the dotted path `target` (``"0"``, ``"block.fc"``; ``""`` is this module).

        >>> from tinygrad_edu import nn
        >>> nn.Sequential(nn.Linear(2, 3), nn.ReLU()).get_submodule("1")
        ReLU()
        """
        module = self
        for name in target.split(".") if target else ():
            if name not in module._modules and not hasattr(module, name):
                raise AttributeError(f"{type(module).__name__} has no attribute `{name}`")
            module = getattr(module, name)
            if not isinstance(module, Module):
                raise AttributeError(f"`{name}` is not an nn.Module")
        return module

    def get_parameter(self, target: str) -> "Parameter":
        """The parameter at the dotted path `target`, e.g. ``"0.weight"`` (as in ``named_parameters``)."""
        module, name = self._owner_of(target)
        if not isinstance(getattr(module, name), Parameter):
            raise AttributeError(f"`{name}` is not an nn.Parameter")
        return getattr(module, name)

    def get_buffer(self, target: str) -> Tensor:
        """The buffer at the dotted path `target`, e.g. ``"1.running_mean"`` (as in ``named_buffers``)."""
        module, name = self._owner_of(target)
        if name not in module._buffers:
            raise AttributeError(f"`{name}` is not a buffer")
        return getattr(module, name)

    def _owner_of(self, target: str) -> tuple:
        """(module, attribute name) for a dotted path to an attribute, which must exist."""
        module_path, _, name = target.rpartition(".")
        module = self.get_submodule(module_path)
        if not hasattr(module, name):
            raise AttributeError(f"{type(module).__name__} has no attribute `{name}`")
        return module, name

    def modules(self) -> Iterator["Module"]:
        """This module and every module below it, each once."""
        for _, module in self.named_modules():
            yield module

    def named_children(self) -> Iterator:
        """(name, module) pairs for the direct sub-modules, in the order they were assigned; a module
        assigned under two names comes once, under the first (so `apply` visits it once, as in PyTorch)."""
        seen = set()
        for name, child in self._modules.items():
            if child is not None and id(child) not in seen:
                seen.add(id(child))
                yield name, child

    def children(self) -> Iterator["Module"]:
        """The direct sub-modules, in the order they were assigned."""
        for _, child in self.named_children():
            yield child

    def named_parameters(self, prefix: str = "", recurse: bool = True,
                         remove_duplicate: bool = True) -> Iterator:
        """(dotted name, parameter) pairs, e.g. ``("0.weight", w)``; a shared parameter comes once."""
        seen = set()
        modules = self.named_modules(prefix, remove_duplicate) if recurse else [(prefix, self)]
        for module_name, module in modules:
            for name, param in module._parameters.items():
                if param is None or (remove_duplicate and id(param) in seen):
                    continue
                seen.add(id(param))
                yield (f"{module_name}.{name}" if module_name else name), param

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        """Every parameter of this module and the modules below it, each once (what an optimizer takes)."""
        for _, param in self.named_parameters(recurse=recurse):
            yield param

    def apply(self, fn: Callable[["Module"], None]) -> "Module":
        """Call ``fn`` on every sub-module and then on this one (e.g. to initialise weights)."""
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    # ---- training state -------------------------------------------------------------------------
    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear every parameter's gradient (gradients accumulate across backward calls)."""
        for param in self.parameters():
            clear_grad(param, set_to_none)

    def train(self, mode: bool = True) -> "Module":
        """Put this module and all below it in training mode (dropout active); returns self."""
        if not isinstance(mode, bool):
            raise ValueError(f"training mode must be True or False, got {mode!r}")
        for module in self.modules():
            module.training = mode
        return self

    def eval(self) -> "Module":
        """Evaluation mode (dropout off); the same as ``train(False)``."""
        return self.train(False)

    # ---- dtype ----------------------------------------------------------------------------------------
    def to(self, *args, dtype=None, device=None) -> "Module":
        """Cast every floating parameter and buffer (and the gradients they hold) to a float dtype, in
        place, as PyTorch's ``module.to(torch.float64)``; returns self. Parameters stay the same
        objects, so an optimizer made before still holds them (make it after a cast, as in PyTorch,
        if its state has a dtype). Integer buffers (``num_batches_tracked``) keep theirs.

        Arguments as in PyTorch: a dtype (``np.float64``, ``"float64"``), a Tensor (its dtype), or a
        device, which can only be the CPU (``"cpu"``): everything here is NumPy.

        >>> from tinygrad_edu import nn
        >>> nn.Linear(2, 2).to(np.float64).weight.dtype
        dtype('float64')
        """
        dtype = conversion_dtype(args, dtype, device)
        if dtype is None:
            return self
        if dtype.kind != "f":
            raise TypeError(f"Module.to only accepts floating point dtypes, but got desired dtype={dtype}")
        for tensor in (*self.parameters(), *self.buffers()):
            if tensor.dtype.kind == "f" and tensor.dtype != dtype:
                tensor.data = tensor.data.astype(dtype)
                if tensor.grad is not None:
                    tensor.grad.data = tensor.grad.data.astype(dtype)
        return self

    def float(self) -> "Module":
        """Cast floating parameters and buffers to float32 (``to(np.float32)``); returns self."""
        return self.to(np.float32)

    def double(self) -> "Module":
        """Cast floating parameters and buffers to float64 (``to(np.float64)``); returns self."""
        return self.to(np.float64)

    def half(self) -> "Module":
        """Cast floating parameters and buffers to float16 (``to(np.float16)``); returns self."""
        return self.to(np.float16)

    # ---- state dicts --------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Every parameter and buffer as a NumPy array copy, keyed by its dotted name (``"0.weight"``).

        Copies, so the dict is a snapshot: training on afterwards does not change it.
        """
        return {name: value.data.copy() for name, value in self._named_state()}

    def load_state_dict(self, state_dict: dict, strict: bool = True) -> IncompatibleKeys:
        """Copy values from `state_dict` into this module's parameters and buffers (each keeps its identity).

        With ``strict=True`` every key must match; a shape mismatch is always an error. On an
        error nothing is changed. Returns the missing and unexpected keys.
        """
        own = dict(self._named_state())
        missing = [key for key in own if key not in state_dict]
        unexpected = [key for key in state_dict if key not in own]
        problems, values = [], {}
        for key in own.keys() & state_dict.keys():
            value = state_dict[key]
            value = np.asarray(value.data if isinstance(value, Tensor) else value)
            if value.shape != own[key].shape:
                problems.append(
                    f"size mismatch for '{key}': the state dict has shape {value.shape}, "
                    f"the parameter in this model has shape {own[key].shape}"
                )
            elif value.dtype.kind not in "biuf":
                problems.append(f"'{key}' holds {value.dtype} data, not numbers")
            elif not own[key].data.flags.writeable:
                problems.append(f"the parameter '{key}' holds a read-only array, which cannot be loaded into")
            else:
                # Cast now, not while assigning: whatever the cast raises (e.g. an overflow turned
                # into an error by a warnings filter) must come before any parameter changes.
                values[key] = value.astype(own[key].dtype, copy=False)
        if strict and missing:
            problems.insert(0, "missing key(s): " + ", ".join(repr(key) for key in missing))
        if strict and unexpected:
            problems.insert(0, "unexpected key(s): " + ", ".join(repr(key) for key in unexpected))
        if problems:
            raise StateDictError(
                f"cannot load this state dict into {type(self).__name__}:\n  " + "\n  ".join(problems)
            )
        for key, value in values.items():  # nothing below can fail: every check is done
            own[key].data[...] = value
            own[key]._bump_version()
        return IncompatibleKeys(missing, unexpected)

    # ---- printing -------------------------------------------------------------------------------------
    def extra_repr(self) -> str:
        """The text inside this module's parentheses, e.g. ``in_features=4, out_features=2``."""
        return ""

    def __repr__(self) -> str:
        lines = [self.extra_repr()] if self.extra_repr() else []
        for name, child in self._modules.items():
            lines.append(f"({name}): " + repr(child).replace("\n", "\n  "))
        if not self._modules:
            return f"{type(self).__name__}({''.join(lines)})"
        return type(self).__name__ + "(\n  " + "\n  ".join(lines) + "\n)"


class HookHandle:
    """What `register_forward_hook` returns: ``.remove()`` takes the hook off."""

    _next_id = 0

    def __init__(self, hooks: dict):
        self._hooks = hooks
        self.id = HookHandle._next_id
        HookHandle._next_id += 1

    def remove(self) -> None:
        self._hooks.pop(self.id, None)

    def __enter__(self) -> "HookHandle":
        return self

    def __exit__(self, *exc_info) -> None:
        self.remove()


class Sequential(Module):
    """Modules applied one after another; indexable (``net[0]``, ``net[-1]``, ``net[1:]``), iterable.

    Takes modules (named "0", "1", ...) or one dict of name -> module.

    >>> from tinygrad_edu import nn
    >>> nn.Sequential(nn.Linear(400, 25), nn.Sigmoid())
    Sequential(
      (0): Linear(in_features=400, out_features=25, bias=True)
      (1): Sigmoid()
    )
    """

    def __init__(self, *modules):
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], dict):
            named = modules[0].items()
        else:
            named = ((str(i), module) for i, module in enumerate(modules))
        for name, module in named:
            _check_module(module, f"{type(self).__name__} item {name}")
            setattr(self, name, module)

    def forward(self, x):
        for module in self._modules.values():
            x = module(x)
        return x

    def __getitem__(self, index):
        """``net[i]`` is the i-th module; a slice gives a Sequential that keeps the modules' names."""
        items = list(self._modules.items())
        if isinstance(index, slice):
            return type(self)(dict(items[index]))
        return items[index][1]

    def __len__(self) -> int:
        """The number of modules."""
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        """The modules, in order."""
        return iter(self._modules.values())

    def append(self, module: Module) -> "Sequential":
        """Add `module` at the end, named one past the largest numeric name; returns the Sequential."""
        _check_module(module, f"{type(self).__name__}.append")
        setattr(self, _next_index_name(self._modules), module)
        return self


class ModuleList(Module):
    """A list of modules that registers them (a plain Python list would hide their parameters)."""

    def __init__(self, modules=()):
        super().__init__()
        for module in modules:
            self.append(module)

    def __getitem__(self, index):
        """The i-th module; a slice gives a new ModuleList."""
        values = list(self._modules.values())
        return ModuleList(values[index]) if isinstance(index, slice) else values[index]

    def __len__(self) -> int:
        """The number of modules."""
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        """The modules, in order."""
        return iter(self._modules.values())

    def append(self, module: Module) -> "ModuleList":
        """Add `module` at the end; returns the ModuleList."""
        _check_module(module, "ModuleList.append")
        setattr(self, _next_index_name(self._modules), module)
        return self

    def extend(self, modules) -> "ModuleList":
        """Add each of `modules` at the end; returns the ModuleList."""
        for module in modules:
            self.append(module)
        return self


def _as_buffer(name: str, value):
    """A buffer's value: a Tensor that requires no grad (an array is wrapped), or None."""
    if value is None or (isinstance(value, Tensor) and not value.requires_grad):
        return value
    if isinstance(value, Tensor):
        raise TypeError(f"buffer '{name}' must not require grad (it is state, not a parameter)")
    return Tensor(np.asarray(value))


def _check_module(module, where: str) -> None:
    if not isinstance(module, Module):
        raise TypeError(f"{where}: expected an nn.Module, got {type(module).__name__}")


def _next_index_name(modules: dict) -> str:
    """The name for an appended module: one past the largest numeric name, never one in use
    (a slice such as net[1:] keeps the names "1" and "2", so len() would repeat "2")."""
    numbers = [int(name) for name in modules if name.isdigit()]
    return str(max(numbers, default=-1) + 1)


def named_tensors(params) -> list:
    """(name, tensor) pairs from what the seeing tools (draw_graph, explain) accept as `params`:
    a Module (its ``named_parameters()``), a dict of name -> Tensor, or a list of Tensors (named
    by their ``.name``, else ``params[i]``); None gives no pairs."""
    if params is None:
        return []
    if isinstance(params, Module):
        return list(params.named_parameters())
    if isinstance(params, dict):
        return [(str(name), tensor) for name, tensor in params.items()]
    if isinstance(params, (list, tuple)):
        return [
            (tensor.name if isinstance(tensor, Tensor) and tensor.name else f"params[{i}]", tensor)
            for i, tensor in enumerate(params)
        ]
    # model.parameters() is a generator: its tensors have no names, and it can be used only once.
    hint = " (pass the module itself, not .parameters())" if hasattr(params, "__next__") else ""
    raise TypeError(
        "params must be an nn.Module, a dict of name -> Tensor or a list of Tensors, got "
        f"{type(params).__name__}{hint}"
    )
