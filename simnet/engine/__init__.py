"""The simulation: world, nodes, network and its sharing models, flows, max-min solver,
SimPy runtime, faults."""
