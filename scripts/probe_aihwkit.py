"""Probe aihwkit's C++ simulator: one pulsed SGD step on a tiny AnalogLinear.

Exit 0 when the update changed the weights, 1 otherwise (with the reason on stderr).
"""

from __future__ import annotations

import sys


def main() -> int:
    try:
        import torch
        from aihwkit.nn import AnalogLinear
        from aihwkit.optim import AnalogSGD
        from aihwkit.simulator.configs import SingleRPUConfig
        from aihwkit.simulator.configs.devices import ConstantStepDevice

        torch.manual_seed(0)
        layer = AnalogLinear(4, 2, bias=False, rpu_config=SingleRPUConfig(device=ConstantStepDevice()))
        before = layer.get_weights()[0].clone()
        opt = AnalogSGD(layer.parameters(), lr=0.1)
        opt.regroup_param_groups(layer)
        loss = layer(torch.ones(3, 4)).pow(2).sum()
        loss.backward()
        opt.step()
        after = layer.get_weights()[0]
        if torch.equal(before, after):
            print("aihwkit probe: pulsed update left the weights unchanged", file=sys.stderr)
            return 1
    except Exception as exc:  # noqa: BLE001 - any failure means the simulator is unusable
        print(f"aihwkit probe failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
