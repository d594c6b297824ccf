"""sin and cos as float32 polynomials (Cephes' sinf / cosf scheme), for the Snake activations.

XLA:CPU evaluates `jnp.sin` / `jnp.cos` at about 4 ns per element on this project's CPUs; these
multiply-adds vectorise and fuse, about 5x faster for both together (docs/performance.md), which
matters because every Snake evaluates one per activation element, forward and backward.

u is reduced to r = u - k pi/2 in [-pi/4, pi/4] (pi/2 split in three float32 parts, Cody-Waite),
then sin r and cos r are degree-7 and degree-8 minimax polynomials and the quadrant k mod 4 picks
the signs. Absolute error about 1e-7 for |u| <= 8192 (tested against float64); beyond that the
reduction loses precision (jnp.sin stays exact there), so this is for activations, not phases.
"""
import jax.numpy as jnp
import numpy as np

_TWO_OVER_PI = np.float32(2.0 / np.pi)
_HALF_PI_PARTS = (np.float32(1.5703125), np.float32(4.837512969970703125e-4), np.float32(7.549789948768648e-8))
_SIN = (np.float32(-1.6666654611e-1), np.float32(8.3321608736e-3), np.float32(-1.9515295891e-4))
_COS = (np.float32(4.166664568298827e-2), np.float32(-1.388731625493765e-3), np.float32(2.443315711809948e-5))


def sincos(u):
    """u [...] float -> (sin u, cos u), each [...] float32."""
    u = jnp.asarray(u, jnp.float32)
    k = jnp.round(u * _TWO_OVER_PI)
    r = u
    for part in _HALF_PI_PARTS:
        r = r - k * part
    r2 = r * r
    s = r + r * r2 * (_SIN[0] + r2 * (_SIN[1] + r2 * _SIN[2]))
    c = 1.0 - 0.5 * r2 + r2 * r2 * (_COS[0] + r2 * (_COS[1] + r2 * _COS[2]))
    quadrant = k.astype(jnp.int32) & 3
    sin = jnp.where(quadrant == 0, s, jnp.where(quadrant == 1, c, jnp.where(quadrant == 2, -s, -c)))
    cos = jnp.where(quadrant == 0, c, jnp.where(quadrant == 1, -s, jnp.where(quadrant == 2, -c, s)))
    return sin, cos
