import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import odeness
from odeness._models import (
    ConvField1d,
    ConvField2d,
    MLPField,
    _conv1d_k3,
    _conv2d_k3,
    _conv2d_k3_matmul,
)


@pytest.fixture(autouse=True)
def full_precision():
    """GPUs multiply float32 in TF32 by default (errors ~1e-3); these tests compare
    layouts against XLA's convolution, not precision."""
    with jax.default_matmul_precision("highest"):
        yield


@pytest.mark.parametrize("length", [1, 2, 3, 4, 10, 900])
def test_conv1d_k3_matches_lax_conv(length, getkey):
    h = jax.random.normal(getkey(), (5, length, 8))
    w = jax.random.normal(getkey(), (6, 8, 3))
    ours = _conv1d_k3(h, w)
    # PyTorch semantics: cross-correlation, NCW input, OIW kernel, padding 1.
    ref = jax.lax.conv_general_dilated(
        jnp.transpose(h, (0, 2, 1)),
        w,
        window_strides=(1,),
        padding=[(1, 1)],
        dimension_numbers=("NCH", "OIH", "NCH"),
    )
    np.testing.assert_allclose(ours, jnp.transpose(ref, (0, 2, 1)), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dim", [2, 3, 10])
def test_conv_field_is_the_papers_layer_stack(dim, getkey):
    field = ConvField1d(dim, 32, key=getkey())
    y = jax.random.normal(getkey(), (7, dim))
    conv = lambda x, w, p: jax.lax.conv_general_dilated(  # noqa: E731
        x, w, (1,), [(p, p)], dimension_numbers=("NCH", "OIH", "NCH")
    )
    h = jax.nn.relu(conv(y[:, None, :], field.w1, 0) + field.b1[:, None])
    h = jax.nn.relu(conv(h, field.w2, 1) + field.b2[:, None])
    ref = (conv(h, field.w3, 0) + field.b3[:, None])[:, 0, :]
    np.testing.assert_allclose(field(0.0, y), ref, rtol=1e-5, atol=1e-5)


def test_kaiming_normal_init_and_zero_biases(getkey):
    field = ConvField1d(2, 256, key=getkey())
    assert np.std(field.w2) == pytest.approx(np.sqrt(2 / (256 * 3)), rel=0.02)
    assert np.std(field.w1) == pytest.approx(np.sqrt(2.0), rel=0.15)
    mlp = MLPField(10, 512, key=getkey())
    assert np.std(mlp.w2) == pytest.approx(np.sqrt(2 / 512), rel=0.02)
    for b in (field.b1, field.b2, field.b3, mlp.b1, mlp.b2, mlp.b3):
        assert not np.any(b)


def test_classifier_shapes_and_integrator_argument(getkey):
    model = odeness.make_classifier("mlp", (10,), 3, channels=16, key=getkey())
    x = jax.random.normal(getkey(), (4, 10))
    logits, stats = model(x, odeness.Integrator(odeness.solver("rk4"), steps=3))
    assert logits.shape == (4, 3) and int(stats.nfe) == 12
    with pytest.raises(ValueError, match="unknown field 'cnn'"):
        odeness.make_classifier("cnn", (10,), 3, channels=16, key=getkey())
    with pytest.raises(ValueError, match=r"'mlp' takes flat inputs \(d,\), got"):
        odeness.make_classifier("mlp", (28, 28, 1), 10, channels=16, key=getkey())
    with pytest.raises(ValueError, match=r"flat inputs \(d,\) or images \(H, W, C\)"):
        odeness.make_classifier("conv", (28, 28), 10, channels=16, key=getkey())


@pytest.mark.parametrize("conv", [_conv2d_k3, _conv2d_k3_matmul])
def test_image_field_is_the_papers_layer_stack(conv, getkey):
    field = ConvField2d(3, 16, key=getkey())
    y = jax.random.normal(getkey(), (2, 4, 32, 32, 3))  # any leading batch axes
    # PyTorch semantics: NCHW input, OIHW kernels, padding 0, 1, 0.
    ref_conv = lambda x, w, p: jax.lax.conv_general_dilated(  # noqa: E731
        x, w, (1, 1), [(p, p), (p, p)], dimension_numbers=("NCHW", "OIHW", "NCHW")
    )
    x = jnp.transpose(y.reshape(8, 32, 32, 3), (0, 3, 1, 2))
    h = jax.nn.relu(ref_conv(x, field.w1, 0) + field.b1[:, None, None])
    h = jax.nn.relu(ref_conv(h, field.w2, 1) + field.b2[:, None, None])
    ref = ref_conv(h, field.w3, 0) + field.b3[:, None, None]
    ref = jnp.transpose(ref, (0, 2, 3, 1)).reshape(y.shape)
    np.testing.assert_allclose(field(0.0, y), ref, rtol=2e-4, atol=2e-4)
    kernel = jnp.transpose(field.w2, (2, 3, 1, 0))
    h = jax.random.normal(getkey(), (2, 5, 7, 16))
    np.testing.assert_allclose(conv(h, kernel), _conv2d_k3(h, kernel), rtol=2e-4, atol=2e-4)


def test_image_classifier(getkey):
    model = odeness.make_classifier("conv", (28, 28, 1), 10, channels=8, key=getkey())
    assert isinstance(model.field, ConvField2d) and model.field.w2.shape == (8, 8, 3, 3)
    x = jax.random.uniform(getkey(), (3, 28, 28, 1))
    logits, stats = model(x, odeness.Integrator(odeness.solver("euler"), steps=2))
    assert logits.shape == (3, 10) and int(stats.nfe) == 2


class _FieldLayer(odeness.resnet_ode.AbstractResidual):
    """`f(x, θ) = θ(x)`: a residual layer whose weights are one of the paper's fields."""

    def __call__(self, x, theta):
        return theta(None, x)

    def init(self, key):
        return ConvField1d(2, 8, key=key)


def test_a_residual_stage_of_identical_layers_is_euler(getkey):
    depth = 6
    model = odeness.make_classifier("conv", (2,), 2, channels=8, key=getkey())
    weights = jax.tree.map(lambda a: jnp.stack([a] * depth), model.field)
    stage = odeness.resnet_ode.ResidualStage(_FieldLayer(), weights)
    assert stage.depth == depth
    x = jax.random.normal(getkey(), (5, 2))
    euler, _ = model.flow(x, odeness.Integrator(odeness.solver("euler"), steps=depth))
    np.testing.assert_allclose(stage(x), euler, rtol=1e-5, atol=1e-6)
    built = odeness.resnet_ode.ResidualStage.init(_FieldLayer(), depth, key=getkey())
    assert built(x).shape == (5, 2)
    leaves = jax.tree.leaves(eqx.filter(built.weights, eqx.is_array))
    assert all(leaf.shape[0] == depth for leaf in leaves)
