"""The training engine every trainer uses: mesh and shardings, sharded init or restore, Orbax
checkpoints with the Grain iterator state, run folders, preemption, logging and the loop."""
