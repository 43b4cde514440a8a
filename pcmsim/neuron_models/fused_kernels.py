"""The numba kernels of :mod:`pcmsim.neuron_models.fused` (imported on first use).

Each kernel writes into output arrays allocated by the caller (torch tensors' numpy views) and
keeps the plain loop's order of operations; constants (``one``, ``zero``, ``slope``, ``threshold``)
arrive in the arrays' dtype so that float32 stays float32 (a Python float literal would be
float64 in numba). ``cache=True``: the machine code is cached beside this file, compiled once per
machine.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def snu_forward(u, decay, bias, s0, y0, soft, leaky, slope, one, zero, s_out, y_out, pre_out, d_out):
    steps, batch, n = u.shape
    for t in range(steps):
        for b in range(batch):
            for i in range(n):
                if t == 0:
                    sp = s0[b, i]
                    yp = y0[b, i]
                else:
                    sp = s_out[t - 1, b, i]
                    yp = y_out[t - 1, b, i]
                d = u[t, b, i] + decay[i] * sp * (one - yp)
                if d > zero:
                    s = d
                elif leaky:
                    s = d * slope
                else:
                    s = zero
                pre = s + bias[i]
                if soft:
                    y = one / (one + np.exp(-pre))
                elif pre > zero:
                    y = one
                else:
                    y = zero
                s_out[t, b, i] = s
                y_out[t, b, i] = y
                pre_out[t, b, i] = pre
                d_out[t, b, i] = d

@njit(cache=True)
def snu_backward(g_y, g_pre, g_s, hprime, s, y, d, s0, y0, decay, leaky, slope, one, zero,
                 g_u, g_decay, g_bias, g_s0, g_y0):
    steps, batch, n = g_y.shape
    gs_next = g_s0  # the gradients flowing back from step t+1 (reused: they end as g_s0, g_y0)
    gy_next = g_y0
    for b in range(batch):
        for i in range(n):
            gs_next[b, i] = zero
            gy_next[b, i] = zero
    for t in range(steps - 1, -1, -1):
        for b in range(batch):
            for i in range(n):
                gy = g_y[t, b, i] + gy_next[b, i]
                gpre = g_pre[t, b, i] + gy * hprime[t, b, i]
                gs = g_s[t, b, i] + gpre + gs_next[b, i]
                g_bias[i] += gpre
                if d[t, b, i] > zero:
                    gd = gs
                elif leaky:
                    gd = gs * slope
                else:
                    gd = zero
                g_u[t, b, i] = gd
                if t == 0:
                    sp = s0[b, i]
                    yp = y0[b, i]
                else:
                    sp = s[t - 1, b, i]
                    yp = y[t - 1, b, i]
                keep = one - yp
                gs_next[b, i] = gd * decay[i] * keep
                gy_next[b, i] = -(gd * decay[i] * sp)
                g_decay[i] += gd * sp * keep

@njit(cache=True)
def lif_forward(u, leak, v0, r0, threshold, refractory, one, zero, v_out, s_out, d_out, r_out):
    steps, batch, n = u.shape
    for t in range(steps):
        for b in range(batch):
            for i in range(n):
                if t == 0:
                    vp = v0[b, i]
                    rp = r0[b, i]
                else:
                    vp = v_out[t - 1, b, i]
                    rp = r_out[t - 1, b, i]
                keep = one if vp < threshold else zero
                d = u[t, b, i] + (one - leak[i]) * vp * keep
                v = d if d > zero else zero
                if refractory > zero and not rp <= zero:
                    v = zero
                spiked = v - threshold >= zero
                v_out[t, b, i] = v
                s_out[t, b, i] = one if spiked else zero
                d_out[t, b, i] = d
                if refractory > zero:
                    if spiked:
                        r_out[t, b, i] = refractory
                    else:
                        r = rp - one
                        r_out[t, b, i] = r if r > zero else zero
                else:
                    r_out[t, b, i] = rp

@njit(cache=True)
def lif_backward(g_v, g_spk, hprime, v, d, r, v0, r0, leak, threshold, refractory, one, zero,
                 g_u, g_leak, g_v0):
    steps, batch, n = g_v.shape
    gv_next = g_v0
    for b in range(batch):
        for i in range(n):
            gv_next[b, i] = zero
    for t in range(steps - 1, -1, -1):
        for b in range(batch):
            for i in range(n):
                gv = g_v[t, b, i] + g_spk[t, b, i] * hprime[t, b, i] + gv_next[b, i]
                if t == 0:
                    vp = v0[b, i]
                    rp = r0[b, i]
                else:
                    vp = v[t - 1, b, i]
                    rp = r[t - 1, b, i]
                if refractory > zero and not rp <= zero:
                    gv = zero
                gd = gv if d[t, b, i] > zero else zero
                g_u[t, b, i] = gd
                keep = one if vp < threshold else zero
                gv_next[b, i] = gd * (one - leak[i]) * keep
                g_leak[i] -= gd * vp * keep

