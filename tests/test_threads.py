"""Grad mode, the broadcast guard and anomaly mode are per thread (PyTorch's semantics).

Each test makes the interleaving happen with a Barrier or Events, and joins with a timeout so
a bug shows up as a failure, never as a hung suite.
"""
import sys
import threading

import numpy as np
import pytest

import tinygrad_edu as tg
import tinygrad_edu.functional as F
from tinygrad_edu import nn, optim

TIMEOUT = 20  # seconds; generous for a busy machine, only reached when something is wrong


def run_in_thread(target):
    """Start `target` in a thread; return a join() that re-raises its exception in this thread."""
    errors = []

    def wrapped():
        try:
            target()
        except BaseException as error:  # handed to the test thread, which reports it
            errors.append(error)

    thread = threading.Thread(target=wrapped, daemon=True)
    thread.start()

    def join():
        thread.join(TIMEOUT)
        assert not thread.is_alive(), "the thread did not finish in time"
        if errors:
            raise errors[0]

    return join


def test_no_grad_in_another_thread_does_not_stop_recording_here():
    inside_no_grad, main_done = threading.Event(), threading.Event()

    def evaluate():
        with tg.no_grad():
            inside_no_grad.set()
            assert main_done.wait(TIMEOUT)
            assert not tg.is_grad_enabled()

    join = run_in_thread(evaluate)
    assert inside_no_grad.wait(TIMEOUT)
    w = tg.Tensor([1.0, 2.0], requires_grad=True)
    loss = (w * tg.Tensor([3.0, 4.0])).sum() + (w * w).sum()
    main_done.set()
    loss.backward()
    join()
    np.testing.assert_allclose(w.grad.data, [5.0, 8.0])


def test_a_new_thread_starts_with_grad_mode_on_and_the_default_guards():
    seen = {}

    def look():
        seen["grad"] = tg.is_grad_enabled()
        seen["broadcast"] = tg.get_broadcast_check()
        seen["anomaly"] = tg.is_anomaly_enabled()

    with tg.no_grad(), tg.set_broadcast_check("off"), tg.detect_anomaly():
        run_in_thread(look)()
    assert seen == {"grad": True, "broadcast": "warn", "anomaly": False}


def test_broadcast_guard_off_in_one_thread_still_raises_in_another():
    guard_off, raising_here, product_done = threading.Event(), threading.Event(), threading.Event()

    def outer_product_on_purpose():
        with tg.set_broadcast_check("off"):
            guard_off.set()
            assert raising_here.wait(TIMEOUT)
            try:
                tg.Tensor(np.ones((3, 1))) * tg.Tensor(np.ones(3))  # 'off' in this thread
            finally:
                product_done.set()

    join = run_in_thread(outer_product_on_purpose)
    assert guard_off.wait(TIMEOUT)
    with tg.set_broadcast_check("raise"):
        raising_here.set()
        assert product_done.wait(TIMEOUT)
        with pytest.raises(tg.BroadcastError):
            tg.Tensor(np.ones((3, 1))) * tg.Tensor(np.ones(3))
    join()


def test_anomaly_mode_in_another_thread_does_not_check_here():
    inside, done = threading.Event(), threading.Event()

    def watch():
        with tg.detect_anomaly():
            inside.set()
            assert done.wait(TIMEOUT)

    join = run_in_thread(watch)
    assert inside.wait(TIMEOUT)
    try:
        with np.errstate(divide="ignore"):
            y = tg.Tensor([0.0], requires_grad=True).log()  # -inf, but anomaly mode is not on here
    finally:
        done.set()
    join()
    assert np.isneginf(y.data[0])


def test_backward_does_not_switch_grad_mode_for_other_threads():
    # create_graph backward records in this thread only; another thread inside no_grad stays so.
    inside, done = threading.Event(), threading.Event()
    modes = []

    def evaluate():
        with tg.no_grad():
            inside.set()
            while not done.is_set():
                modes.append(tg.is_grad_enabled())
                if len(modes) > 100_000:
                    break

    join = run_in_thread(evaluate)
    assert inside.wait(TIMEOUT)
    x = tg.Tensor([1.0, 2.0], requires_grad=True)
    for _ in range(20):
        (dx,) = tg.grad((x ** 3).sum(), x, create_graph=True)
    done.set()
    join()
    assert modes and not any(modes)
    np.testing.assert_allclose(dx.data, [3.0, 12.0])


def train_steps(seed: int, steps: int, barrier=None, trains_first: bool = True) -> list:
    """A small model trained for `steps` steps; gradients of every step.

    With a `barrier` (two threads), each step has two phases: in one this thread trains while
    the other evaluates inside no_grad, in the other the roles swap, so every forward runs
    while the other thread is inside a no_grad block.
    """
    rng = np.random.default_rng(seed)
    model = nn.Sequential(nn.Linear(4, 8, dtype=np.float64), nn.Tanh(), nn.Linear(8, 3, dtype=np.float64))
    for p in model.parameters():
        p.data[...] = rng.normal(size=p.shape)
    optimizer = optim.SGD(model.parameters(), lr=0.1)
    x, y = rng.normal(size=(16, 4)), rng.integers(0, 3, size=16)

    def wait():
        if barrier is not None:
            barrier.wait(TIMEOUT)

    grads = []
    for _ in range(steps):
        for training in ((True, False) if trains_first else (False, True)):
            if training:
                wait()
                optimizer.zero_grad()
                F.cross_entropy(model(tg.Tensor(x)), y).backward()
                grads.append([p.grad.data.copy() for p in model.parameters()])
                optimizer.step()
                wait()
            else:
                with tg.no_grad():
                    wait()
                    model(tg.Tensor(x))  # an evaluation, while the other thread trains
                    wait()
    return grads


def test_two_threads_training_their_own_models_get_single_threaded_gradients():
    steps = 20
    expected = {seed: train_steps(seed, steps) for seed in (1, 2)}
    barrier = threading.Barrier(2)
    results = {}
    join_other = run_in_thread(lambda: results.update({2: train_steps(2, steps, barrier, trains_first=False)}))
    try:
        results[1] = train_steps(1, steps, barrier)
    except BaseException:
        barrier.abort()  # this thread failed: the other must not wait for it until the timeout
        raise
    join_other()
    for seed in (1, 2):
        assert len(results[seed]) == steps
        for step, (got, want) in enumerate(zip(results[seed], expected[seed])):
            for g, w in zip(got, want):
                np.testing.assert_array_equal(g, w, err_msg=f"thread {seed}, step {step}")


def test_one_no_grad_decorated_function_running_in_two_threads_restores_each_threads_mode():
    both_inside = threading.Barrier(2)

    @tg.no_grad
    def evaluate():
        both_inside.wait(TIMEOUT)  # both threads are inside the same decorated function
        assert not tg.is_grad_enabled()

    def in_no_grad():
        with tg.no_grad():
            evaluate()
            assert not tg.is_grad_enabled()  # restored to this thread's value, not the other's

    join = run_in_thread(in_no_grad)
    with tg.enable_grad():
        evaluate()
        assert tg.is_grad_enabled()
    join()
    assert tg.is_grad_enabled()


def hammer(work, threads: int = 4, times: int = 2000) -> int:
    """Run `work` `times` times in each of `threads` threads started together, switching threads
    every microsecond, so that a read-add-write not under a lock likely loses a sum; returns how
    many times it ran in all."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    start = threading.Barrier(threads)

    def repeat():
        start.wait(TIMEOUT)
        for _ in range(times):
            work()

    try:
        joins = [run_in_thread(repeat) for _ in range(threads)]
        for join in joins:
            join()
    finally:
        sys.setswitchinterval(previous)
    return threads * times


def test_backward_in_several_threads_into_one_leaf_loses_no_gradient():
    # Hogwild-style: threads share a weight and each runs its own backward into weight.grad
    # (8000 backwards lost about 2000 sums before .grad was added to under a lock).
    weight = tg.Tensor(np.ones(4), requires_grad=True)
    runs = hammer(lambda: (weight * 2.0).sum().backward())
    np.testing.assert_array_equal(weight.grad.data, np.full(4, 2.0 * runs))


def test_a_compiled_step_called_in_several_threads_loses_no_gradient():
    weight = tg.Tensor(np.ones(4), requires_grad=True)
    step = tg.compile(lambda x: (weight * x).sum())
    x = tg.Tensor(np.full(4, 2.0))
    step(x)  # traced here, once
    weight.grad = None
    runs = hammer(lambda: step(x))
    np.testing.assert_array_equal(weight.grad.data, np.full(4, 2.0 * runs))
