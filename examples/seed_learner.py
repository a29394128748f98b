"""The first learner's code from shared/seeds/000_61f219713567044a.txt, verbatim except for
Python 3's print and PEP 8 spacing: the one copy, which examples/first_learner.py and the
tests (tests/conftest.py puts examples/ on the path) import and run on arrays and on Tensors.

It trains a 400-25-10 sigmoid network with a hand-derived backward pass. Its gradients are
right; its `predict` compares a (200, 1) column with a (200,) row, which broadcasts to a
(200, 200) table and keeps the accuracy near 10% (the bug the broadcast guard catches).
Their `costPrime` reads the module's `alpha`: set `seed_learner.alpha` to change the rate.
"""
import numpy as np
from scipy.special import expit

alpha = 0.12
lmda = 1


def feedForward(p, x):
    a1 = x
    z2 = np.dot(a1, p[0]) + p[1]
    a2 = g(z2)
    z3 = np.dot(a2, p[2]) + p[3]
    a3 = g(z3)
    return [a1, a2, a3], [z2, z3]


def g(z):
    return expit(z)


def gPrime(z):
    s = g(z)
    return np.multiply(s, (1 - s))


def cost(p, x, y):
    [a, z] = feedForward(p, x)
    h = a[-1]
    lmda_sum = (lmda * 0.5 / x.shape[0]) * (sum(sum(np.square(p[0]))) + sum(sum(np.square(p[2]))))
    return sum(sum(np.square(y - h))) * 0.5 / x.shape[0] + lmda_sum


def backpropagate(p, x, y):
    [a, z] = feedForward(p, x)
    h = a[-1]
    dz = []
    m = x.shape[0]
    dz4 = np.divide((-(y - h)), m)
    dz3 = np.multiply(dz4, gPrime(z[-1]))
    dw2 = np.dot(a[-2].T, dz3) + np.multiply(lmda / m, p[2])
    dw2b = np.sum(dz3, 0)
    dz2 = np.multiply(np.dot(dz3, p[2].T), gPrime(z[-2]))
    dw1 = np.dot(a[-3].T, dz2) + np.multiply(lmda / m, p[0])
    dw1b = np.sum(dz2, 0)
    return [dw1, dw1b, dw2, dw2b]


def costPrime(p, x, y):
    grad = backpropagate(p, x, y)
    p[0] = p[0] - np.multiply(alpha, grad[0])
    p[1] = p[1] - np.multiply(alpha, grad[1])
    p[2] = p[2] - np.multiply(alpha, grad[2])
    p[3] = p[3] - np.multiply(alpha, grad[3])
    return p


def train(p, x, y, iteration):
    E = []
    for i in range(iteration):
        E.append(cost(p, x, y))
        p = costPrime(p, x, y)
    return p, E


def predict(p, x, y):
    [pred, z] = feedForward(p, x)
    a = pred[-1].argmax(axis=1)
    a = np.reshape(a, (y.shape[0], 1))
    b = np.argmax(y, axis=1)  # gets index of max element for every row
    return a, np.mean(a == b) * 100


def randomInitialize(params):
    epsilion = 0.12
    m = len(params)
    for i in range(m):
        s = params[i].shape
        params[i] = np.multiply(np.random.rand(s[0], s[1]), 2 * epsilion) - epsilion
    return params
