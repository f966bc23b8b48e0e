"""A training run that can stop and resume, for tests/test_checkpoints.py.

Usage: python resume_job.py MODE DIR START STOP
  runtime: the nnabla loop; state in DIR/params.npz + DIR/states.npz
  module:  the generated module alone (DIR/model.py); state in DIR/checkpoint.npz
Runs updates START..STOP-1 (loading the saved state first when START > 0) and saves.
"""

import sys

import numpy as np


def batch(step):
    rng = np.random.default_rng(1000 + step)
    x = rng.standard_normal((16, 5)).astype(np.float32)
    t = rng.integers(0, 3, (16, 1)).astype(np.float32)
    return x, t


def build():
    import symcompile as nn
    import symcompile.functions as F
    import symcompile.parametric_functions as PF

    nn.seed(0)
    x = nn.Variable((16, 5))
    t = nn.Variable((16, 1))
    h = F.tanh(PF.affine(x, 8, name="hidden"))
    loss = F.mean(F.softmax_cross_entropy(PF.affine(h, 3, name="out"), t))
    return loss, x, t


def main(mode, folder, start, stop):
    if mode == "runtime":
        import symcompile as nn
        import symcompile.solvers as S

        loss, x, t = build()
        solver = S.Adam(alpha=0.05)
        solver.set_parameters(nn.get_parameters())
        if start > 0:
            nn.load_parameters(f"{folder}/params.npz")
            solver.load_states(f"{folder}/states.npz")
        for step in range(start, stop):
            x.d, t.d = batch(step)
            loss.forward()
            solver.zero_grad()
            loss.backward()
            solver.weight_decay(1e-4)
            solver.update()
        nn.save_parameters(f"{folder}/params.npz")
        solver.save_states(f"{folder}/states.npz")
    elif mode == "module":
        import importlib.util

        spec = importlib.util.spec_from_file_location("model", f"{folder}/model.py")
        m = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(m)
        if start > 0:
            params, state, done = m.load_checkpoint(f"{folder}/checkpoint.npz")
            assert done == start, (done, start)
        else:
            params, state = m.init_parameters(seed=0), m.init_state()
        for step in range(start, stop):
            x, t = batch(step)
            m.adam_step(x, t, **params, **state, step=step + 1, alpha=0.05)
        m.save_checkpoint(f"{folder}/checkpoint.npz", params, state, stop)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
